#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine as a vpnshop node: the core (v2ray, or an already installed xray), a
# dedicated SSH login user for the shop with a restricted key, a base config with the core's API, a sudo rule
# that only restarts the core, and sshd settings for that user. Idempotent: running it again changes only
# what differs (and restarts the core or reloads sshd only then). Downloads nothing but Debian packages.
#
# Run as root on the node:   bash setup.sh --shop-key /root/vpnshop.pub --location de
# See deploy/node/README.md for what each step is for, and `setup.sh --help` for the options.
set -euo pipefail

PROG=$(basename "$0")

usage() {
  cat <<TXT
usage: $PROG [options]          (as root, on the node)
       $PROG --print WHAT [options]   (anyone: print one generated file and change nothing)

Prepares this Debian 12 machine as a vpnshop node, then prints the \`vpnshop server add\` line to run on the shop.

options (defaults in brackets):
  --shop-key KEY|FILE   the shop's SSH public key (text, or a file with one key per line); needed the first
                        time, later runs keep the keys already installed [keep]
                        (on the shop: ssh-keygen -y -f <provision.ssh_key_path>)
  --name NAME           the node's name in the shop [this host's short name]
  --location CODE       its location code in the shop's catalogue, e.g. de [none: filled in as LOCATION_CODE]
  --public-host HOST    host or IP customers connect to [the address of the default route]
  --port PORT           port customers connect to (the client inbound) [443]
  --api-port PORT       the core's gRPC API port, on 127.0.0.1 only [10085]
  --protocol P          vmess | vless; vless needs --tls-cert or --reality (the shop refuses VLESS without
                        TLS or REALITY: nothing would encrypt it) [vmess; vless with --reality]
  --core C              v2ray | xray; xray must already be installed (Debian 12 does not package it) [v2ray]
  --inbound-tag TAG     tag of the inbound the shop adds clients to [proxy]
  --user USER           the login user the shop uses [vpnshop]
  --ssh-port PORT       the port sshd listens on, for the printed line (not changed here) [from sshd -T, or 22]
  --tls-cert FILE       the certificate chain (PEM, e.g. certbot's fullchain.pem) for TLS inbounds: installed as
                        /etc/<core>/tls/fullchain.pem; the client inbound becomes TCP+TLS on --port and a
                        WebSocket+TLS inbound is added on --ws-port (see deploy/node/README.md for certbot)
  --tls-key FILE        its private key (PEM), installed as /etc/<core>/tls/privkey.pem (mode 0640)
  --ws-port PORT        the WebSocket+TLS inbound's port, with --tls-cert [8443]
  --reality             VLESS over TCP with Xray's REALITY (--core xray only): makes an x25519 key pair with
                        \`xray x25519\` once, keeps the private key on this node only
                        (/usr/local/etc/xray/reality.key) and prints the public key for the shop
  --reality-dest HOST   the real TLS site REALITY borrows (its name is the SNI customers send) [www.microsoft.com]
  --reality-short-id HEX  the REALITY short id (up to 16 hex digits) [made once with openssl rand -hex 8, kept]
  --reset-config        replace the core's config with the base config even if it looks like ours
                        (a config that is not ours is always backed up and replaced)
  --print WHAT          print one generated file and exit: base-config, authorized-keys, sshd-config, sudoers,
                        core-dropin, inbound-flags (the --inbound flags for \`vpnshop server add\`)
  -h, --help            this text
TXT
}

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------- options

NAME=""
LOCATION=""
PUBLIC_HOST=""
PORT=443
API_PORT=10085
PROTOCOL=vmess
CORE=v2ray
INBOUND_TAG=proxy
LOGIN_USER=vpnshop
SSH_PORT=""
SHOP_KEY=""
RESET_CONFIG=0
PRINT=""
PROTOCOL_GIVEN=0
TLS_CERT=""
TLS_KEY=""
WS_PORT=8443
REALITY=0
REALITY_DEST=www.microsoft.com
REALITY_SHORT_ID=""

while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    -h | --help)
      usage
      exit 0
      ;;
    --reset-config)
      RESET_CONFIG=1
      shift
      continue
      ;;
    --reality)
      REALITY=1
      shift
      continue
      ;;
    --*=*)
      # --opt=value is the same as --opt value
      set -- "${opt%%=*}" "${opt#*=}" "${@:2}"
      continue
      ;;
    --name | --location | --public-host | --port | --api-port | --protocol | --core | --inbound-tag | --user | \
      --ssh-port | --shop-key | --print | --tls-cert | --tls-key | --ws-port | --reality-dest | --reality-short-id)
      [ $# -ge 2 ] || die "$opt needs a value (see --help)"
      ;;
    *) die "unknown option: $opt (see --help)" ;;
  esac
  value=$2
  shift 2
  case "$opt" in
    --name) NAME=$value ;;
    --location) LOCATION=$value ;;
    --public-host) PUBLIC_HOST=$value ;;
    --port) PORT=$value ;;
    --api-port) API_PORT=$value ;;
    --protocol)
      PROTOCOL=$value
      PROTOCOL_GIVEN=1
      ;;
    --core) CORE=$value ;;
    --inbound-tag) INBOUND_TAG=$value ;;
    --user) LOGIN_USER=$value ;;
    --ssh-port) SSH_PORT=$value ;;
    --shop-key) SHOP_KEY=$value ;;
    --print) PRINT=$value ;;
    --tls-cert) TLS_CERT=$value ;;
    --tls-key) TLS_KEY=$value ;;
    --ws-port) WS_PORT=$value ;;
    --reality-dest) REALITY_DEST=$value ;;
    --reality-short-id) REALITY_SHORT_ID=$value ;;
  esac
done

valid_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

valid_port "$PORT" || die "--port must be a number from 1 to 65535, not '$PORT'"
valid_port "$API_PORT" || die "--api-port must be a number from 1 to 65535, not '$API_PORT'"
[ "$PORT" != "$API_PORT" ] || die "--port and --api-port must differ (both are $PORT)"
[ -z "$SSH_PORT" ] || valid_port "$SSH_PORT" || die "--ssh-port must be a number from 1 to 65535, not '$SSH_PORT'"
case "$PROTOCOL" in vmess | vless) ;; *) die "--protocol must be vmess or vless, not '$PROTOCOL'" ;; esac
case "$CORE" in v2ray | xray) ;; *) die "--core must be v2ray or xray, not '$CORE'" ;; esac
# what secures the client inbound: nothing (VMess encrypts itself), TLS with the operator's certificate, or REALITY
SECURITY=none
if [ -n "$TLS_CERT" ] || [ -n "$TLS_KEY" ]; then
  if [ -z "$TLS_CERT" ] || [ -z "$TLS_KEY" ]; then
    die "--tls-cert and --tls-key go together (the certificate chain and its key)"
  fi
  [ "$REALITY" -eq 0 ] || die "--reality and --tls-cert exclude each other (REALITY borrows another site's certificate)"
  SECURITY=tls
  valid_port "$WS_PORT" || die "--ws-port must be a number from 1 to 65535, not '$WS_PORT'"
  if [ "$WS_PORT" = "$PORT" ] || [ "$WS_PORT" = "$API_PORT" ]; then
    die "--ws-port must differ from --port and --api-port"
  fi
fi
if [ "$REALITY" -eq 1 ]; then
  [ "$CORE" = xray ] || die "--reality needs --core xray: REALITY is Xray's (v2ray has none)"
  [ "$PROTOCOL_GIVEN" -eq 0 ] || [ "$PROTOCOL" = vless ] || die "--reality is VLESS only (leave out --protocol or say vless)"
  PROTOCOL=vless
  SECURITY=reality
  [[ $REALITY_DEST =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] || die "--reality-dest '$REALITY_DEST' is not a host name"
  [ -z "$REALITY_SHORT_ID" ] || [[ $REALITY_SHORT_ID =~ ^([0-9a-f]{2}){1,8}$ ]] ||
    die "--reality-short-id must be 2-16 lowercase hex digits, an even number of them"
fi
if [ "$PROTOCOL" = vless ] && [ "$SECURITY" = none ]; then
  die "--protocol vless needs --tls-cert/--tls-key or --reality: the shop refuses VLESS without TLS or REALITY (nothing would encrypt it); use vmess, or give a certificate"
fi
# the shop's rule for tags (they name things in the config and in stats)
if ! [[ $INBOUND_TAG =~ ^[A-Za-z0-9._@-]{1,64}$ ]] || [ "$INBOUND_TAG" = api ]; then
  die "--inbound-tag must be 1-64 of letters, digits, '.', '_', '-', '@', and not 'api'"
fi
[[ $LOGIN_USER =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "--user '$LOGIN_USER' is not a valid user name"
[ -z "$LOCATION" ] || [[ $LOCATION =~ ^[a-z0-9_-]{1,32}$ ]] || die "--location '$LOCATION' is not a location code"
[ -z "$PUBLIC_HOST" ] || [[ $PUBLIC_HOST =~ ^[A-Za-z0-9.:-]{1,253}$ ]] || die "--public-host '$PUBLIC_HOST' is not a host"
# a REALITY key made by xray; checked before anything else so a machine without Xray is told at once
if [ "$REALITY" -eq 1 ] && [ -z "$PRINT" ] && ! command -v xray >/dev/null && [ ! -x /usr/local/bin/xray ]; then
  die "--reality needs Xray (\`xray x25519\` makes the key pair), and xray is not installed; Debian has no xray package: install Xray from a source you trust first (deploy/node/README.md)"
fi

GROUP=$LOGIN_USER
CONFIG_DIR=/etc/$CORE
CONFIG=$CONFIG_DIR/config.json
KEYS_DIR=/etc/ssh/authorized_keys.d
KEYS_FILE=$KEYS_DIR/$LOGIN_USER
SSHD_DROPIN=/etc/ssh/sshd_config.d/vpnshop.conf
SUDOERS=/etc/sudoers.d/vpnshop
UNIT_DROPIN_DIR=/etc/systemd/system/$CORE.service.d
UNIT_DROPIN=$UNIT_DROPIN_DIR/vpnshop.conf
UNIT_FILE=/etc/systemd/system/$CORE.service
HOME_DIR=/var/lib/$LOGIN_USER
TLS_DIR=$CONFIG_DIR/tls
CERT_FILE=$TLS_DIR/fullchain.pem
KEY_FILE=$TLS_DIR/privkey.pem
WS_TAG=$INBOUND_TAG-ws
WS_PATH=/ws
REALITY_DIR=/usr/local/etc/xray
REALITY_KEY_FILE=$REALITY_DIR/reality.key
REALITY_SID_FILE=$REALITY_DIR/reality.short_id
# what the shop's config writer replaces with the named file's content on the node (src/provision/render.rs)
NODE_FILE_PREFIX=vpnshop-node-file:
KEY_TYPES='ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com'

# ----------------------------------------------------------------------------------- generated files

# The shop's `default_base` (src/provision/render.rs) for these parameters: API + stats + per-user stats
# policy, the API inbound on 127.0.0.1 only, an empty client inbound, freedom out, api -> api routing, and
# isolation (src/provision/isolation.rs): customers' traffic to this node itself (its core API, sshd), to
# private, link-local (cloud metadata), CGNAT and multicast networks goes to a blackhole; domains are resolved
# before matching, so `localhost` is caught too.
# A test compares this with the shop's own output, so the shop's first sync finds nothing to rewrite.
base_config() {
  cat <<JSON
{
  "log": { "loglevel": "warning" },
  "api": { "tag": "api", "services": ["HandlerService", "StatsService"] },
  "stats": {},
  "policy": {
    "levels": { "0": { "statsUserUplink": true, "statsUserDownlink": true } },
    "system": { "statsInboundUplink": true, "statsInboundDownlink": true }
  },
  "inbounds": [
    {
      "tag": "api",
      "listen": "127.0.0.1",
      "port": $API_PORT,
      "protocol": "dokodemo-door",
      "settings": { "address": "127.0.0.1" }
    },
$(client_inbounds)
  ],
  "outbounds": [
    { "tag": "direct", "protocol": "freedom", "settings": {} },
    { "tag": "block", "protocol": "blackhole", "settings": {} }
  ],
  "routing": {
    "domainStrategy": "IPOnDemand",
    "rules": [
      { "type": "field", "inboundTag": ["api"], "outboundTag": "api" },
      { "type": "field", "domain": ["domain:localhost"], "outboundTag": "block" },
      {
        "type": "field",
        "ip": [
          "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
          "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
          "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8"
        ],
        "outboundTag": "block"
      }$(own_address_rule)
    ]
  }
}
JSON
}

# The client inbound(s), as the shop renders them (render::inbound_json): plain, TCP+TLS plus WebSocket+TLS with
# the installed certificate, or VLESS over TCP with REALITY (its private key named, not written: the shop's
# write step and ours put the key in on the node).
client_inbounds() {
  local settings='"clients": []' tls
  [ "$PROTOCOL" = vless ] && settings='"clients": [], "decryption": "none"'
  tls="\"tlsSettings\": { \"certificates\": [{ \"certificateFile\": \"$CERT_FILE\", \"keyFile\": \"$KEY_FILE\" }] }"
  case "$SECURITY" in
    none)
      cat <<JSON
    { "tag": "$INBOUND_TAG", "port": $PORT, "protocol": "$PROTOCOL", "settings": { $settings } }
JSON
      ;;
    tls)
      cat <<JSON
    {
      "tag": "$INBOUND_TAG", "port": $PORT, "protocol": "$PROTOCOL", "settings": { $settings },
      "streamSettings": { "network": "tcp", "security": "tls", $tls }
    },
    {
      "tag": "$WS_TAG", "port": $WS_PORT, "protocol": "$PROTOCOL", "settings": { $settings },
      "streamSettings": { "network": "ws", "security": "tls", "wsSettings": { "path": "$WS_PATH" }, $tls }
    }
JSON
      ;;
    reality)
      cat <<JSON
    {
      "tag": "$INBOUND_TAG", "port": $PORT, "protocol": "$PROTOCOL", "settings": { $settings },
      "streamSettings": {
        "network": "tcp", "security": "reality",
        "realitySettings": {
          "show": false, "dest": "$REALITY_DEST:443", "xver": 0, "serverNames": ["$REALITY_DEST"],
          "privateKey": "$NODE_FILE_PREFIX$REALITY_KEY_FILE", "shortIds": ["$REALITY_SHORT_ID"]
        }
      }
    }
JSON
      ;;
  esac
}

# The `--inbound` flags of `vpnshop server add` for the inbounds above (docs/provisioning.md), one per line.
inbound_flags() {
  local files="cert_path=$CERT_FILE,key_path=$KEY_FILE"
  case "$SECURITY" in
    none) ;;
    tls)
      printf -- '--inbound tag=%s,protocol=%s,security=tls,port=%s,%s\n' "$INBOUND_TAG" "$PROTOCOL" "$PORT" "$files"
      printf -- '--inbound tag=%s,protocol=%s,transport=ws,security=tls,port=%s,path=%s,%s\n' \
        "$WS_TAG" "$PROTOCOL" "$WS_PORT" "$WS_PATH" "$files"
      ;;
    reality)
      printf -- '--inbound tag=%s,protocol=vless,security=reality,port=%s,reality.public_key=%s,' \
        "$INBOUND_TAG" "$PORT" "${REALITY_PUBLIC_KEY:-PUBLIC_KEY}"
      printf 'reality.private_key_file=%s,reality.short_ids=%s,reality.server_names=%s,reality.dest=%s:443\n' \
        "$REALITY_KEY_FILE" "$REALITY_SHORT_ID" "$REALITY_DEST" "$REALITY_DEST"
      ;;
  esac
}

# The base config as the node runs it: a REALITY private key put in where the shop's form names its file.
node_base_config() {
  if [ "$SECURITY" = reality ]; then
    base_config | sed "s|\"$NODE_FILE_PREFIX$REALITY_KEY_FILE\"|\"$(tr -d ' \t\r\n' <"$REALITY_KEY_FILE")\"|"
  else
    base_config
  fi
}

# A new REALITY short id: 8 random bytes in hex.
new_short_id() {
  if command -v openssl >/dev/null; then
    openssl rand -hex 8
  else
    od -An -N8 -tx1 /dev/urandom | tr -d ' \n'
  fi
}

# This node's public IPv4 address (--public-host, when it is one) is blocked too: a customer must not reach
# the node's own services through it either. The shop blocks the same address (the one it is registered with).
own_address_rule() {
  if [[ $PUBLIC_HOST =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] && ! is_private_v4 "$PUBLIC_HOST"; then
    printf ',\n      { "type": "field", "ip": ["%s"], "outboundTag": "block" }' "$PUBLIC_HOST"
  fi
}

# Whether an IPv4 address is in a network the base config blocks anyway.
is_private_v4() {
  case "$1" in
    0.* | 10.* | 127.* | 169.254.* | 192.168.* | 172.1[6-9].* | 172.2[0-9].* | 172.3[01].*) return 0 ;;
    22[4-9].* | 23[0-9].* | 24[0-9].* | 25[0-5].*) return 0 ;;
    100.6[4-9].* | 100.[7-9][0-9].* | 100.1[01][0-9].* | 100.12[0-7].*) return 0 ;;
  esac
  return 1
}

# Public keys from --shop-key (a file or the key text), one "type base64 [comment]" per line, options dropped.
shop_keys() {
  local source=$1 text line
  if [ -f "$source" ]; then text=$(cat -- "$source"); else text=$source; fi
  case "$text" in *PRIVATE\ KEY*) die "--shop-key got a private key; give the public key (ssh-keygen -y -f <key>)" ;; esac
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    # drop any options in front of the key type (e.g. an old restrict,… prefix)
    [[ $line =~ (^|[[:space:]])(($KEY_TYPES)[[:space:]]+[A-Za-z0-9+/=]+([[:space:]].*)?)$ ]] ||
      die "--shop-key: not an SSH public key: ${line:0:60}"
    printf '%s\n' "${BASH_REMATCH[2]}"
  done <<<"$text"
}

# Our keys as already installed (a re-run without --shop-key keeps them).
installed_keys() {
  [ -f "$KEYS_FILE" ] || return 0
  shop_keys "$KEYS_FILE"
}

# restrict = no pty, no agent/X11/port forwarding, no ~/.ssh/rc; port-forwarding turns local forwarding back
# on and permitopen limits it to the core's API port. Plain commands (all the shop runs) need none of these.
authorized_keys() {
  local keys=$1 key
  printf '# vpnshop: the shop logs in with these keys (written by setup.sh; re-run it to change them)\n'
  while IFS= read -r key; do
    [ -n "$key" ] || continue
    printf 'restrict,port-forwarding,permitopen="127.0.0.1:%s" %s\n' "$API_PORT" "$key"
  done <<<"$keys"
}

sshd_config() {
  cat <<CONF
# vpnshop: settings for the shop's login user only (written by deploy/node/setup.sh; re-run it to change).
# The Match block ends with this file, so nothing here changes sshd for anyone else.
Match User $LOGIN_USER
    # keys live where the user cannot edit them (it could otherwise drop the restrictions on its key)
    AuthorizedKeysFile $KEYS_DIR/%u
    AuthenticationMethods publickey
    PubkeyAuthentication yes
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    # the shop reaches the core's API through a local forward; nothing else may be forwarded
    AllowTcpForwarding local
    PermitOpen 127.0.0.1:$API_PORT
    AllowStreamLocalForwarding no
    AllowAgentForwarding no
    X11Forwarding no
    PermitTunnel no
    GatewayPorts no
    PermitTTY no
    PermitUserRC no
CONF
}

sudoers() {
  local systemctl=/usr/bin/systemctl
  cat <<CONF
# vpnshop: the shop's login user may restart the core, and nothing else (written by setup.sh).
# The shop runs \`sudo -n systemctl restart $CORE\` without a terminal; config tests run as the user itself.
Defaults:$LOGIN_USER !requiretty
$LOGIN_USER ALL=(root) NOPASSWD: $systemctl restart $CORE, /bin/systemctl restart $CORE
CONF
}

core_exec() {
  local bin=$1
  if [ "$CORE" = xray ]; then
    printf '%s run -config %s' "$bin" "$CONFIG"
  else
    printf '%s -config %s' "$bin" "$CONFIG"
  fi
}

# Drop-in for the core's unit: read the config through our group, never write it, run our config file.
core_dropin() {
  local bin=$1
  cat <<CONF
# vpnshop (written by deploy/node/setup.sh): the core reads $CONFIG through group $GROUP and may not
# write there (the shop's login user writes it).
[Service]
SupplementaryGroups=$GROUP
ReadOnlyPaths=$CONFIG_DIR
ExecStart=
ExecStart=$(core_exec "$bin")
CONF
}

# A unit for a core installed without one (an xray binary): the hardening of Debian's v2ray.service.
core_unit() {
  local bin=$1
  cat <<CONF
# written by vpnshop deploy/node/setup.sh for a $CORE installed without a systemd unit
[Unit]
Description=$CORE (vpnshop node)
After=network-online.target nss-lookup.target
Wants=network-online.target

[Service]
Type=simple
DynamicUser=true
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE
NoNewPrivileges=true
ExecStart=$(core_exec "$bin")
Restart=on-failure

[Install]
WantedBy=multi-user.target
CONF
}

core_binary() {
  local bin
  bin=$(command -v "$CORE" 2>/dev/null || true)
  if [ -z "$bin" ] && [ -x "/usr/local/bin/$CORE" ]; then bin=/usr/local/bin/$CORE; fi
  printf '%s' "${bin:-/usr/bin/$CORE}"
}

if [ -n "$PRINT" ]; then
  if [ "$SECURITY" = reality ] && [ -z "$REALITY_SHORT_ID" ]; then
    REALITY_SHORT_ID=$(cat "$REALITY_SID_FILE" 2>/dev/null || new_short_id)
  fi
  case "$PRINT" in
    base-config) base_config ;;
    inbound-flags) inbound_flags ;;
    authorized-keys)
      [ -n "$SHOP_KEY" ] || die "--print authorized-keys needs --shop-key"
      KEYS=$(shop_keys "$SHOP_KEY")
      authorized_keys "$KEYS"
      ;;
    sshd-config) sshd_config ;;
    sudoers) sudoers ;;
    core-dropin) core_dropin "$(core_binary)" ;;
    *) die "--print takes base-config, authorized-keys, sshd-config, sudoers, core-dropin or inbound-flags, not '$PRINT'" ;;
  esac
  exit 0
fi

# -------------------------------------------------------------------------------------------- install

[ "$(id -u)" -eq 0 ] || die "run this as root on the node (or use --print to only see the files)"
[ "$LOGIN_USER" != root ] || die "--user must not be root"
command -v apt-get >/dev/null || die "this script is for Debian (apt-get not found)"

HAS_SYSTEMD=0
[ -d /run/systemd/system ] && HAS_SYSTEMD=1

CHANGED_CORE=0 # the core must be restarted
CHANGED_SSHD=0 # sshd must reload its config

# Writes stdin to $1 (owner $2, mode $3) only if the content differs; sets WROTE=1 when it changed the file.
# Call it with a redirect (`write_file … < <(gen)`), not in a pipeline, so WROTE reaches the caller.
WROTE=0
write_file() {
  local path=$1 owner=$2 mode=$3 tmp
  WROTE=0
  tmp=$(mktemp "$(dirname "$path")/.vpnshop.XXXXXX")
  cat >"$tmp"
  chown "$owner" "$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    chown "$owner" "$path"
    chmod "$mode" "$path"
    return 0
  fi
  mv -f "$tmp" "$path"
  WROTE=1
  say "wrote $path"
}

apt_updated=0
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  say "installing ${missing[*]} (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# 1. packages ------------------------------------------------------------------------------------------
apt_install openssh-server openssh-client sudo iproute2
[ "$SECURITY" != reality ] || apt_install openssl
if [ "$CORE" = v2ray ]; then
  apt_install v2ray
elif ! command -v xray >/dev/null && [ ! -x /usr/local/bin/xray ]; then
  if apt-cache show xray >/dev/null 2>&1; then
    apt_install xray
  else
    die "--core xray: xray is not installed and Debian has no xray package; install it from a package you trust (this script downloads nothing else), or use --core v2ray"
  fi
fi
CORE_BIN=$(core_binary)
[ -x "$CORE_BIN" ] || die "$CORE_BIN not found after installing $CORE"

# 2. the login user --------------------------------------------------------------------------------------
if ! getent group "$GROUP" >/dev/null; then
  groupadd --system "$GROUP"
  say "created group $GROUP"
fi
if id "$LOGIN_USER" >/dev/null 2>&1; then
  uid=$(id -u "$LOGIN_USER")
  # never turn a person's account into the shop's: its shell and password would be replaced
  if [ "$uid" -eq 0 ] || [ "$uid" -ge 1000 ]; then
    die "user $LOGIN_USER exists with uid $uid (not a system user this script made); pick another --user"
  fi
else
  useradd --system --gid "$GROUP" --home-dir "$HOME_DIR" --create-home --shell /bin/sh \
    --comment "vpnshop provisioning" "$LOGIN_USER"
  say "created user $LOGIN_USER"
fi
# /bin/sh (dash) reads no rc file for the shop's commands; bash would source ~/.bashrc for them
[ "$(getent passwd "$LOGIN_USER" | cut -d: -f7)" = /bin/sh ] || usermod --shell /bin/sh "$LOGIN_USER"
id -nG "$LOGIN_USER" | tr ' ' '\n' | grep -qx "$GROUP" || usermod -a -G "$GROUP" "$LOGIN_USER"
# '*': no password can match, but the account is not locked: sshd without PAM refuses even key logins to
# accounts whose password field starts with '!' (what useradd leaves)
[ "$(getent shadow "$LOGIN_USER" | cut -d: -f2)" = '*' ] || usermod -p '*' "$LOGIN_USER"
install -d -o "$LOGIN_USER" -g "$GROUP" -m 0750 "$HOME_DIR"

# 3. the shop's key ---------------------------------------------------------------------------------------
if [ -n "$SHOP_KEY" ]; then
  KEYS=$(shop_keys "$SHOP_KEY")
else
  KEYS=$(installed_keys)
  [ -n "$KEYS" ] || die "--shop-key is needed the first time: the shop's public key (on the shop: ssh-keygen -y -f <provision.ssh_key_path>)"
fi
[ -n "$KEYS" ] || die "--shop-key holds no public key"
if command -v ssh-keygen >/dev/null; then
  while IFS= read -r key; do
    printf '%s\n' "$key" | ssh-keygen -lf - >/dev/null 2>&1 || die "--shop-key: ssh-keygen cannot read the key ${key:0:40}…"
  done <<<"$KEYS"
fi
install -d -o root -g root -m 0755 "$KEYS_DIR"
write_file "$KEYS_FILE" root:root 0644 < <(authorized_keys "$KEYS")

# the address customers reach (for the printed line, and blocked for customers in the base config)
if [ -z "$PUBLIC_HOST" ]; then
  PUBLIC_HOST=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1 || true)
  [ -n "$PUBLIC_HOST" ] || PUBLIC_HOST=$(hostname -I 2>/dev/null | awk '{print $1}' || true)
  [ -n "$PUBLIC_HOST" ] || die "cannot tell this node's address; pass --public-host"
  if is_private_v4 "$PUBLIC_HOST"; then
    warn "$PUBLIC_HOST is a private address (NAT?); pass --public-host with the address customers reach"
  fi
fi

# 4. the config directory and the base config --------------------------------------------------------
# setgid: files the shop writes there belong to the group the core reads through
install -d -o root -g "$GROUP" -m 2770 "$CONFIG_DIR"

# the operator's certificate and key: read by the core (and the shop's config test) through the group only
if [ "$SECURITY" = tls ]; then
  grep -q -- '-----BEGIN CERTIFICATE-----' "$TLS_CERT" 2>/dev/null || die "--tls-cert $TLS_CERT is not a PEM certificate"
  grep -q -- '-----BEGIN [A-Z ]*PRIVATE KEY-----' "$TLS_KEY" 2>/dev/null || die "--tls-key $TLS_KEY is not a PEM private key"
  install -d -o root -g "$GROUP" -m 0750 "$TLS_DIR"
  write_file "$CERT_FILE" "root:$GROUP" 0644 <"$TLS_CERT"
  [ "$WROTE" -eq 0 ] || CHANGED_CORE=1
  write_file "$KEY_FILE" "root:$GROUP" 0640 <"$TLS_KEY"
  [ "$WROTE" -eq 0 ] || CHANGED_CORE=1
fi

# REALITY: the key pair is made once; only the private key is kept, on this node, readable by the shop's login
# user (its config writer puts it into the config) and the core's group
if [ "$SECURITY" = reality ]; then
  install -d -o root -g root -m 0755 "$REALITY_DIR"
  if [ ! -s "$REALITY_KEY_FILE" ]; then
    pair=$("$CORE_BIN" x25519) || die "xray x25519 failed: $pair"
    private=$(printf '%s\n' "$pair" | sed -n 's/^ *Private *[Kk]ey: *//p' | head -n1)
    [ -n "$private" ] || die "cannot read the private key from xray x25519's output: $pair"
    write_file "$REALITY_KEY_FILE" "root:$GROUP" 0640 < <(printf '%s\n' "$private")
  fi
  chown "root:$GROUP" "$REALITY_KEY_FILE"
  chmod 0640 "$REALITY_KEY_FILE"
  pair=$("$CORE_BIN" x25519 -i "$(tr -d ' \t\r\n' <"$REALITY_KEY_FILE")") || die "xray x25519 -i failed: $pair"
  # Xray prints "Public key: …" (older) or "Password: …" (25.x: the same key under another name)
  REALITY_PUBLIC_KEY=$(printf '%s\n' "$pair" | sed -n 's/^ *\(Public *[Kk]ey\|Password\): *//p' | head -n1)
  [ -n "$REALITY_PUBLIC_KEY" ] || die "cannot read the public key from xray x25519's output: $pair"
  if [ -n "$REALITY_SHORT_ID" ]; then
    write_file "$REALITY_SID_FILE" root:root 0644 < <(printf '%s\n' "$REALITY_SHORT_ID")
  elif [ -s "$REALITY_SID_FILE" ]; then
    REALITY_SHORT_ID=$(tr -d ' \t\r\n' <"$REALITY_SID_FILE")
  else
    REALITY_SHORT_ID=$(new_short_id)
    write_file "$REALITY_SID_FILE" root:root 0644 < <(printf '%s\n' "$REALITY_SHORT_ID")
  fi
fi
looks_ours() {
  local flat
  flat=$(tr -d ' \t\r\n' <"$CONFIG")
  [[ $flat == *'"HandlerService"'* && $flat == *'"StatsService"'* && $flat == *'"dokodemo-door"'* ]] &&
    [[ $flat == *"\"port\":$API_PORT,"* || $flat == *"\"port\":$API_PORT}"* ]] &&
    [[ $flat == *"\"tag\":\"$INBOUND_TAG\""* ]]
}
if [ -f "$CONFIG" ] && cmp -s "$CONFIG" <(node_base_config); then
  : # exactly our base config
elif [ -f "$CONFIG" ] && [ "$RESET_CONFIG" -eq 0 ] && looks_ours; then
  say "keeping $CONFIG (it has the API on port $API_PORT and inbound $INBOUND_TAG; --reset-config replaces it)"
  if [[ $(tr -d ' \t\r\n' <"$CONFIG") != *'"blackhole"'* ]]; then
    warn "$CONFIG does not block customers from this node itself (its API, sshd) and private networks;"
    warn "the shop's next sync of this node rewrites it with the blocking rules (one core restart)"
  fi
else
  if [ -f "$CONFIG" ]; then
    # e.g. the sample config Debian's package installs: no API, so the shop could not manage its users
    backup=$CONFIG.before-vpnshop.$(date +%Y%m%d%H%M%S)
    cp -p -- "$CONFIG" "$backup"
    chmod 0600 "$backup"
    say "saved the old $CONFIG as $backup"
  fi
  write_file "$CONFIG" "root:$GROUP" 0640 < <(node_base_config)
  [ "$WROTE" -eq 0 ] || CHANGED_CORE=1
fi
chgrp "$GROUP" "$CONFIG"
chmod 0640 "$CONFIG"
# the shop tests every config it writes the same way, as the login user
if ! out=$(runuser -u "$LOGIN_USER" -- "$CORE_BIN" -test -config "$CONFIG" 2>&1); then
  die "$CORE rejects $CONFIG (as user $LOGIN_USER): $out"
fi

# 5. the core's service ------------------------------------------------------------------------------------
unit_exists=0
for dir in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
  if [ -f "$dir/$CORE.service" ]; then unit_exists=1; fi
done
if [ "$unit_exists" -eq 0 ]; then
  write_file "$UNIT_FILE" root:root 0644 < <(core_unit "$CORE_BIN")
  [ "$WROTE" -eq 0 ] || CHANGED_CORE=1
fi
install -d -o root -g root -m 0755 "$UNIT_DROPIN_DIR"
write_file "$UNIT_DROPIN" root:root 0644 < <(core_dropin "$CORE_BIN")
[ "$WROTE" -eq 0 ] || CHANGED_CORE=1

# 6. sudo: restart the core, nothing else -----------------------------------------------------------------
sudoers_tmp=$(mktemp)
sudoers >"$sudoers_tmp"
visudo -cqf "$sudoers_tmp" >/dev/null || {
  rm -f "$sudoers_tmp"
  die "visudo rejects the generated sudoers rule"
}
write_file "$SUDOERS" root:root 0440 <"$sudoers_tmp"
rm -f "$sudoers_tmp"
runuser -u "$LOGIN_USER" -- sudo -n -l /usr/bin/systemctl restart "$CORE" >/dev/null 2>&1 ||
  die "sudo does not let $LOGIN_USER run 'systemctl restart $CORE'; check /etc/sudoers and $SUDOERS"

# 7. sshd ---------------------------------------------------------------------------------------------------
grep -Eqi '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf' /etc/ssh/sshd_config ||
  die "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf (Debian's does); add that line at its top"
install -d -o root -g root -m 0755 /etc/ssh/sshd_config.d
previous_dropin=""
[ -f "$SSHD_DROPIN" ] && previous_dropin=$(cat "$SSHD_DROPIN")
write_file "$SSHD_DROPIN" root:root 0644 < <(sshd_config)
[ "$WROTE" -eq 0 ] || CHANGED_SSHD=1
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null
install -d -m 0755 /run/sshd
if ! out=$(sshd -t 2>&1); then
  # never leave sshd with a config it cannot load (that would lock everyone out at its next restart)
  if [ -n "$previous_dropin" ]; then printf '%s\n' "$previous_dropin" >"$SSHD_DROPIN"; else rm -f "$SSHD_DROPIN"; fi
  die "sshd rejects its config with our drop-in (restored the previous state): $out"
fi

# 8. services ------------------------------------------------------------------------------------------------
if [ "$HAS_SYSTEMD" -eq 1 ]; then
  systemctl daemon-reload
  systemctl enable --quiet "$CORE"
  if [ "$CHANGED_CORE" -eq 1 ] || ! systemctl is-active --quiet "$CORE"; then
    say "restarting $CORE"
    systemctl restart "$CORE"
  fi
  if systemctl is-active --quiet ssh.socket; then
    : # socket-activated sshd reads its config afresh for every connection
  elif ! systemctl is-active --quiet ssh; then
    systemctl enable --quiet ssh
    systemctl start ssh
  elif [ "$CHANGED_SSHD" -eq 1 ]; then
    say "reloading sshd"
    systemctl reload ssh
  fi
  api_up=0
  for _ in $(seq 50); do
    if ss -Hltn "sport = :$API_PORT" | grep -q .; then
      api_up=1
      break
    fi
    sleep 0.1
  done
  [ "$api_up" -eq 1 ] || die "$CORE does not listen on 127.0.0.1:$API_PORT; see: journalctl -u $CORE -n 50"
else
  warn "no systemd here: start $CORE ($(core_exec "$CORE_BIN"), as a non-root user in group $GROUP) and sshd yourself,"
  warn "and give the shop a working --restart-command (its default is 'sudo -n systemctl restart $CORE')"
fi

# 9. what to run on the shop ----------------------------------------------------------------------------------
if [ -z "$NAME" ]; then
  NAME=$(hostname -s 2>/dev/null | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9._\n-' '-' || true)
  NAME=${NAME:-node-1}
fi
if [ -z "$SSH_PORT" ]; then
  SSH_PORT=$(sshd -T 2>/dev/null | awk '$1 == "port" {print $2; exit}' || true)
  SSH_PORT=${SSH_PORT:-22}
fi
FINGERPRINT=$(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | awk '{print $2}')
ssh_port_flag=""
[ "$SSH_PORT" = 22 ] || ssh_port_flag=" --ssh-port $SSH_PORT"
inbound_args=""
while IFS= read -r flag; do
  [ -z "$flag" ] || inbound_args="$inbound_args $flag"
done < <(inbound_flags)
open_ports=$PORT
[ "$SECURITY" != tls ] || open_ports="$PORT and $WS_PORT"

cat <<TXT

This node is ready. On the shop, run:

  vpnshop server add --name $NAME --location ${LOCATION:-LOCATION_CODE} --host $PUBLIC_HOST --port $PORT$ssh_port_flag --ssh-user $LOGIN_USER --host-key $FINGERPRINT --core $CORE --protocol $PROTOCOL --inbound-tag $INBOUND_TAG --api-port $API_PORT$inbound_args
  vpnshop server test $NAME

TXT
[ -n "$LOCATION" ] || echo "(replace LOCATION_CODE with a location code from: vpnshop catalog list)"
printf 'Open TCP %s to customers and %s to the shop; the API port %s stays on 127.0.0.1.\n' "$open_ports" "$SSH_PORT" "$API_PORT"
if [ "$SECURITY" = tls ]; then
  echo "Customers' apps check the certificate against the host they connect to: --host must be a name it covers"
  echo "(or add sni=<that name> to both --inbound flags). Renewals: deploy/node/README.md (certbot deploy hook)."
fi
