#!/usr/bin/env bash
# Installs vpnshop on a Debian 12 machine (or into a directory with --root): runtime packages, the vpnshop
# system user, /etc/vpnshop (settings, secrets template, the SSH key for the nodes), /var/lib/vpnshop, the
# binary, vpnshopctl and the systemd units. Safe to run again: it changes only what differs, and never
# touches an existing vpnshop.env, production.toml, plans.toml or SSH key. docs/deploy.md walks through it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ROOT=/
BINARY=""
WITH_DATABASE=0
PACKAGES=1
CHANGED=0

usage() {
  cat <<'TXT'
usage: deploy/install.sh [--binary PATH] [--with-database] [--root DIR] [--no-packages]

  --binary PATH     the vpnshop binary to install (default: target/release/vpnshop of this checkout)
  --with-database   also install PostgreSQL and Redis on this machine (a single-box shop)
  --root DIR        install into DIR instead of / (packages are skipped, systemd is not told)
  --no-packages     do not install Debian packages
TXT
}

say() { printf '%s\n' "$*" >&2; }
die() { say "install.sh: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY=$2; shift 2 ;;
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift 2 ;;
    --with-database) WITH_DATABASE=1; shift ;;
    --no-packages) PACKAGES=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root (it creates a system user and writes /etc, /var/lib and /usr/local)"
[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
ROOT=$(cd "$ROOT" && pwd)
# R is the prefix for paths on the target: "" for the running system, the directory otherwise
R=${ROOT%/}
[ -n "$BINARY" ] || BINARY="$REPO/target/release/vpnshop"
if [ ! -f "$BINARY" ] || [ ! -x "$BINARY" ]; then
  die "no vpnshop binary at $BINARY (cargo build --release --locked, or pass --binary PATH)"
fi

# ------------------------------------------------------------------ packages (only on the running system)
if [ -z "$R" ] && [ "$PACKAGES" -eq 1 ]; then
  # pg_dump for backups, age to encrypt them, ssh-keygen for the nodes' key, CA roots for every HTTPS call
  wanted=(ca-certificates postgresql-client age openssh-client)
  [ "$WITH_DATABASE" -eq 1 ] && wanted+=(postgresql redis-server)
  missing=()
  for pkg in "${wanted[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    CHANGED=1
  fi
fi

# ------------------------------------------------------------------ helpers
# put SRC at DEST with MODE and OWNER:GROUP (numeric on the target) unless an identical file is there
put() {
  local src=$1 dest=$R$2 mode=$3 owner=$4
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c '%a %u:%g' "$dest")" = "${mode#0} $owner" ]; then
    return 0
  fi
  install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$src" "$dest.new"
  mv -f "$dest.new" "$dest"
  say "installed $2"
  CHANGED=1
}

# put SRC at DEST only when DEST does not exist yet (the operator's file from then on)
put_once() {
  if [ -e "$R$2" ]; then say "kept $2"; return 0; fi
  put "$@"
}

dir() {
  local path=$R$1 mode=$2 owner=$3
  if [ -d "$path" ] && [ "$(stat -c '%a %u:%g' "$path")" = "${mode#0} $owner" ]; then return 0; fi
  install -d -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$path"
  say "made $1"
  CHANGED=1
}

# numeric id of a user or group in the target's /etc/passwd or /etc/group
id_of() { awk -F: -v n="$2" '$1 == n { print $3; found = 1 } END { exit !found }' "$R/etc/$1"; }

# ------------------------------------------------------------------ the system user
mkdir -p "$R/etc"
put "$HERE/systemd/vpnshop.sysusers" /etc/sysusers.d/vpnshop.conf 0644 0:0
if ! id_of passwd vpnshop >/dev/null 2>&1; then
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers --root="$ROOT" "$R/etc/sysusers.d/vpnshop.conf" >/dev/null
  elif [ -z "$R" ]; then
    useradd --system --user-group --home-dir /var/lib/vpnshop --no-create-home --shell /usr/sbin/nologin vpnshop
  else
    die "systemd-sysusers is needed to create the user under --root"
  fi
  say "created user vpnshop"
  CHANGED=1
fi
UID_=$(id_of passwd vpnshop) || die "user vpnshop is missing after creating it"
GID_=$(id_of group vpnshop) || die "group vpnshop is missing after creating it"

# ------------------------------------------------------------------ directories, settings, secrets
dir /etc/vpnshop 0750 "0:$GID_"
dir /var/lib/vpnshop 0750 "$UID_:$GID_"
# 0750 as systemd makes it (StateDirectoryMode= of vpnshop-backup.service); the files in it are 0600
dir /var/lib/vpnshop/backups 0750 "$UID_:$GID_"

# default.toml is the shipped defaults and follows each release; production.toml and plans.toml are yours
if [ -f "$R/etc/vpnshop/default.toml" ] && ! cmp -s "$REPO/config/default.toml" "$R/etc/vpnshop/default.toml"; then
  cp -p "$R/etc/vpnshop/default.toml" "$R/etc/vpnshop/default.toml.old"
  say "saved the previous defaults as /etc/vpnshop/default.toml.old (put your changes in production.toml)"
fi
put "$REPO/config/default.toml" /etc/vpnshop/default.toml 0640 "0:$GID_"
put_once "$REPO/config/production.toml" /etc/vpnshop/production.toml 0640 "0:$GID_"
put_once "$REPO/config/plans.toml" /etc/vpnshop/plans.toml 0640 "0:$GID_"

random_secret() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 48; }

if [ -e "$R/etc/vpnshop/vpnshop.env" ]; then
  say "kept /etc/vpnshop/vpnshop.env"
else
  env_tmp=$(mktemp)
  trap 'rm -f "$env_tmp"' EXIT
  cat >"$env_tmp" <<ENV
# vpnshop secrets, read by systemd (vpnshop.service, vpnshop-backup.service) and vpnshopctl. root only (0600).
# KEY=value per line; values unquoted or in single quotes. Every setting: docs/configuration.md.

# PostgreSQL. Same machine, as the vpnshop user without a password (peer authentication):
#   runuser -u postgres -- createuser vpnshop && runuser -u postgres -- createdb -O vpnshop vpnshop
DATABASE_URL='postgres:///vpnshop?host=/run/postgresql&user=vpnshop'
# another machine: DATABASE_URL=postgres://vpnshop:PASSWORD@db.internal:5432/vpnshop?sslmode=require

# Redis (shared rate limits; optional for a single instance: delete the line)
REDIS_URL=redis://127.0.0.1:6379

# admin API and dashboard sessions (generated here, at least 32 characters)
VPNSHOP__SECURITY__JWT_SECRET=$(random_secret)

# the bot: the token from @BotFather, and the public address Telegram sends updates to (Caddy in front)
TELEGRAM_BOT_TOKEN=
#VPNSHOP__TELEGRAM__PUBLIC_URL=https://shop.example.com
VPNSHOP__TELEGRAM__WEBHOOK_SECRET=$(random_secret)
#VPNSHOP__TELEGRAM__ADMIN_IDS=123456789
# behind Caddy on this machine: the rate limits see the client's address from X-Forwarded-For
VPNSHOP__HTTP__TRUSTED_PROXIES=127.0.0.1

# the shop's SSH key for the nodes (made by install.sh; its .pub goes to deploy/node/setup.sh --shop-key)
VPNSHOP__PROVISION__SSH_KEY_PATH=/etc/vpnshop/id_ed25519

# backups (vpnshop-backup.timer): encrypted with age to these recipients when set (comma-separated)
#VPNSHOP__BACKUP__RECIPIENTS=age1...

# payments (each is offered only when set): docs/payments.md
#VPNSHOP__STRIPE__SECRET_KEY=
#VPNSHOP__STRIPE__WEBHOOK_SECRET=
#VPNSHOP__ZARINPAL__MERCHANT_ID=
#VPNSHOP__SENTRY__DSN=
ENV
  put "$env_tmp" /etc/vpnshop/vpnshop.env 0600 0:0
fi

if [ -e "$R/etc/vpnshop/id_ed25519" ]; then
  say "kept /etc/vpnshop/id_ed25519"
elif command -v ssh-keygen >/dev/null; then
  ssh-keygen -q -t ed25519 -N '' -C "vpnshop@$(hostname)" -f "$R/etc/vpnshop/id_ed25519"
  chown "0:$GID_" "$R/etc/vpnshop/id_ed25519" "$R/etc/vpnshop/id_ed25519.pub"
  chmod 0640 "$R/etc/vpnshop/id_ed25519"
  chmod 0644 "$R/etc/vpnshop/id_ed25519.pub"
  say "made the SSH key /etc/vpnshop/id_ed25519"
  CHANGED=1
else
  say "no ssh-keygen: make /etc/vpnshop/id_ed25519 yourself (ssh-keygen -t ed25519), root:vpnshop 0640"
fi

# ------------------------------------------------------------------ program, units, docs
put "$BINARY" /usr/local/bin/vpnshop 0755 0:0
put "$HERE/vpnshopctl" /usr/local/sbin/vpnshopctl 0755 0:0
for unit in vpnshop.service vpnshop-backup.service vpnshop-backup.timer; do
  put "$HERE/systemd/$unit" "/etc/systemd/system/$unit" 0644 0:0
done
for doc in deploy.md operations.md configuration.md; do
  put "$REPO/docs/$doc" "/usr/local/share/doc/vpnshop/$doc" 0644 0:0
done

if [ -z "$R" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$CHANGED" -eq 1 ] && systemctl is-active --quiet vpnshop.service; then
    say "vpnshop is running the old files: systemctl restart vpnshop"
  fi
else
  say "systemd is not running here: no daemon-reload"
fi

[ "$CHANGED" -eq 1 ] || say "nothing to change"
cat <<TXT

vpnshop is installed${R:+ under $ROOT}. Next:
  1. Fill in /etc/vpnshop/vpnshop.env (database, bot token, public URL) and adapt /etc/vpnshop/production.toml.
  2. Apply the migrations:          vpnshopctl migrate
  3. Start the shop and the backups: systemctl enable --now vpnshop vpnshop-backup.timer
  4. Put Caddy in front for HTTPS:   apt-get install caddy; deploy/caddy/Caddyfile → /etc/caddy/Caddyfile
     (your domain in it), then systemctl reload caddy
  5. Check:                          curl -fsS http://127.0.0.1:8080/readyz; journalctl -u vpnshop -f
  Nodes: bash deploy/node/setup.sh --shop-key /etc/vpnshop/id_ed25519.pub … on each node (deploy/node/README.md).
TXT
