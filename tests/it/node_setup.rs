//! `deploy/node/setup.sh`: it parses and lints clean, writes exactly the shop's base config, refuses bad
//! options with the reason, generates sudo and sshd settings their tools accept, and — as root, in a private
//! mount namespace with throwaway overlays on /etc, /var and /usr/local so the machine itself is untouched — prepares a
//! node for real, twice, that the real binary then adds with the printed line and tests green.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use sqlx::PgPool;
use tempfile::TempDir;
use uuid::Uuid;
use vpnshop::domain::inbound::InboundSpec;
use vpnshop::domain::server::{Core, Protocol};
use vpnshop::provision::node::NodeApi;
use vpnshop::provision::render::{self, ClientInbound, NodeParams};
use vpnshop::provision::ssh::{KeySource, SshOptions};
use vpnshop::provision::sshnode::SshNodes;
use vpnshop::provision::{NodeTarget, NodeUser};

use crate::helpers::database_url;
use crate::helpers::{have, manifest_dir};
use crate::server_cli::{text, vpnshop};
use crate::support::{SSHD, V2RAY, descendants, free_port, kill_pids, wait_for_port};

fn script() -> PathBuf {
    manifest_dir().join("deploy/node/setup.sh")
}

fn setup(args: &[&str]) -> Output {
    Command::new("bash").arg(script()).args(args).output().expect("run bash")
}

/// Whether `program` can be started (`--version`-style probe with the given args).
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok()
}

#[test]
fn setup_sh_is_valid_bash_and_passes_shellcheck() {
    let syntax = Command::new("bash").arg("-n").arg(script()).output().expect("bash");
    assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));
    if !have("shellcheck", runs("shellcheck", &["--version"])) {
        return;
    }
    let lint = Command::new("shellcheck").arg(script()).output().expect("shellcheck");
    assert!(lint.status.success(), "shellcheck:\n{}", String::from_utf8_lossy(&lint.stdout));
}

#[test]
fn setup_sh_writes_exactly_the_shops_default_base_config() {
    let cases = [
        (Core::V2ray, Protocol::Vmess, 443, 10085, "proxy"),
        (Core::V2ray, Protocol::Vmess, 8443, 20001, "in-1"),
        (Core::Xray, Protocol::Vmess, 443, 10085, "vmess@edge.1"),
    ];
    for (core, protocol, port, api_port, tag) in cases {
        let out = setup(&[
            "--print",
            "base-config",
            "--core",
            core.as_str(),
            "--protocol",
            protocol.as_str(),
            "--port",
            &port.to_string(),
            "--api-port",
            &api_port.to_string(),
            "--inbound-tag",
            tag,
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("setup.sh prints JSON");
        let ours = render::default_base(&NodeParams {
            core,
            api_port,
            inbounds: vec![InboundSpec::plain_tcp(tag, protocol, port)],
        })
        .unwrap();
        assert_eq!(printed, ours, "{core} {protocol} {port} {api_port} {tag}");
    }
    // the node's public address is blocked for customers in both (a private one is blocked anyway)
    for (public, own) in [("203.0.113.9", true), ("10.1.2.3", false), ("223.1.1.1", true)] {
        let out = setup(&["--print", "base-config", "--public-host", public]);
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("setup.sh prints JSON");
        let mut ours = render::default_base(&NodeParams {
            core: Core::V2ray,
            api_port: 10085,
            inbounds: vec![InboundSpec::plain_tcp("proxy", Protocol::Vmess, 443)],
        })
        .unwrap();
        vpnshop::provision::isolation::isolate(&mut ours, &[], &[public.parse().unwrap()]).unwrap();
        assert_eq!(printed, ours, "{public}");
        assert_eq!(printed.to_string().contains(&format!("[\"{public}\"]")), own, "{public}");
    }
}

/// The `--inbound` flags `--print inbound-flags` prints, parsed as `vpnshop server add` parses them.
fn printed_inbounds(args: &[&str]) -> Vec<InboundSpec> {
    let out = setup(&[&["--print", "inbound-flags"], args].concat());
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.strip_prefix("--inbound ").unwrap_or_else(|| panic!("not an --inbound flag: {l}")))
        // REALITY's public key comes from `xray x25519` on the node; any valid key stands in for it here
        .map(|f| {
            f.replace("reality.public_key=PUBLIC_KEY", "reality.public_key=Y0iE3PCgbvLhn4hmYvuVtNY2vuVHaxE8Al7Vq5DnKHI")
        })
        .map(|f| vpnshop::domain::inbound::parse_flag(&f).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect()
}

#[test]
fn setup_sh_tls_and_reality_inbounds_are_the_ones_it_tells_the_shop() {
    let (cert, key) = ("/etc/letsencrypt/live/node.example.com/fullchain.pem", "/etc/letsencrypt/live/x/privkey.pem");
    let cases: [(Core, &[&str]); 5] = [
        (Core::V2ray, &["--protocol", "vless", "--tls-cert", cert, "--tls-key", key]),
        (Core::V2ray, &["--tls-cert", cert, "--tls-key", key, "--port", "8443", "--ws-port", "2053"]),
        (Core::Xray, &["--core", "xray", "--protocol", "vless", "--tls-cert", cert, "--tls-key", key]),
        (Core::Xray, &["--core", "xray", "--reality", "--reality-short-id", "0123456789abcdef"]),
        (
            Core::Xray,
            &[
                "--core",
                "xray",
                "--reality",
                "--reality-dest",
                "www.example.org",
                "--inbound-tag",
                "r",
                "--reality-short-id",
                "ab",
            ],
        ),
    ];
    for (core, args) in cases {
        let specs = printed_inbounds(args);
        let out = setup(&[&["--print", "base-config"], args].concat());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("setup.sh prints JSON");
        let ours = render::default_base(&NodeParams { core, api_port: 10085, inbounds: specs.clone() })
            .unwrap_or_else(|e| panic!("{args:?}: the shop refuses what setup.sh prints: {e}"));
        assert_eq!(printed, ours, "{args:?}");
        if args.contains(&"--reality") {
            assert_eq!(specs.len(), 1, "{args:?}");
            let reality = specs[0].reality.as_ref().expect("REALITY settings");
            assert_eq!(reality.private_key_file, "/usr/local/etc/xray/reality.key");
            assert_eq!(specs[0].flow(), Some("xtls-rprx-vision"));
            assert!(!printed.to_string().contains(&reality.public_key), "only the private key's file is named");
        } else {
            let dir = format!("/etc/{}/tls", core.as_str());
            assert_eq!(specs.len(), 2, "TCP+TLS and WebSocket+TLS: {args:?}");
            for spec in &specs {
                assert_eq!(spec.cert_path.as_deref(), Some(format!("{dir}/fullchain.pem").as_str()));
                assert_eq!(spec.key_path.as_deref(), Some(format!("{dir}/privkey.pem").as_str()));
            }
        }
    }
    // a random short id when none is given: 16 hex digits
    let specs = printed_inbounds(&["--core", "xray", "--reality"]);
    let sid = &specs[0].reality.as_ref().unwrap().short_ids[0];
    assert!(sid.len() == 16 && sid.bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
    // plain VMess has no flags: the legacy --port/--protocol/--inbound-tag describe it
    assert!(printed_inbounds(&[]).is_empty());
}

#[test]
fn setup_sh_refuses_bad_options_with_the_reason() {
    let cases: [(&[&str], &str); 14] = [
        (&["--protocol", "trojan"], "--protocol must be vmess or vless"),
        (&["--protocol", "vless"], "--protocol vless needs --tls-cert/--tls-key or --reality"),
        (&["--print", "base-config", "--protocol", "vless"], "the shop refuses VLESS without TLS or REALITY"),
        (&["--tls-cert", "/tmp/c.pem"], "--tls-cert and --tls-key go together"),
        (&["--tls-cert", "c", "--tls-key", "k", "--ws-port", "443"], "--ws-port must differ"),
        (&["--reality"], "--reality needs --core xray"),
        (&["--core", "xray", "--reality", "--protocol", "vmess"], "--reality is VLESS only"),
        (&["--core", "singbox"], "--core must be v2ray or xray"),
        (&["--api-port", "0"], "--api-port must be a number from 1 to 65535"),
        (&["--port", "10085"], "--port and --api-port must differ"),
        (&["--inbound-tag", "api"], "--inbound-tag must be"),
        (&["--user", "Bad User"], "--user 'Bad User' is not a valid user name"),
        (&["--frobnicate"], "unknown option: --frobnicate"),
        (&["--print", "authorized-keys", "--shop-key", "not a key"], "not an SSH public key"),
    ];
    for (args, reason) in cases {
        let out = setup(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?} should say {reason:?}: {stderr}");
    }
    // a machine without Xray is told before anything is touched
    if !runs("xray", &["version"]) {
        // (`--user root` is refused right after, before anything changes, should this check ever go)
        let out = setup(&["--core", "xray", "--reality", "--user", "root"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("--reality needs Xray") && stderr.contains("xray is not installed"), "{stderr}");
    }
    let out = setup(&["--print", "authorized-keys", "--shop-key", "-----BEGIN OPENSSH PRIVATE KEY-----"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("private key"), "a private key is refused");
    let help = setup(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--shop-key"));
}

#[test]
fn setup_sh_restricts_the_shop_key_to_the_api_port() {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMYCQ7ATsue2VMPYslKckK3BM9PX707hHdg/ZAolTFMh shop@example";
    // an old line with options is taken apart, not trusted
    let old = format!("no-pty,permitopen=\"127.0.0.1:1\" {key}");
    let out =
        setup(&["--print", "authorized-keys", "--api-port", "10099", "--shop-key", &format!("# keys\n\n{old}\n")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect();
    assert_eq!(lines, [format!("restrict,port-forwarding,permitopen=\"127.0.0.1:10099\" {key}")]);
}

#[test]
fn setup_sh_sudoers_and_sshd_settings_are_accepted_by_visudo_and_sshd() {
    if !have("visudo (package sudo)", Path::new("/usr/sbin/visudo").exists()) || !have("sshd", Path::new(SSHD).exists())
    {
        return;
    }
    let dir = TempDir::new().unwrap();
    let sudoers = dir.path().join("sudoers");
    std::fs::write(&sudoers, setup(&["--print", "sudoers", "--core", "xray"]).stdout).unwrap();
    let text = std::fs::read_to_string(&sudoers).unwrap();
    assert!(text.contains("vpnshop ALL=(root) NOPASSWD: /usr/bin/systemctl restart xray, /bin/systemctl restart xray"));
    let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.starts_with("Defaults")).collect();
    assert_eq!(rules.len(), 1, "one rule and nothing else: {text}");
    let check = Command::new("/usr/sbin/visudo").arg("-cf").arg(&sudoers).output().unwrap();
    assert!(check.status.success(), "visudo: {}", String::from_utf8_lossy(&check.stdout));

    // sshd with the drop-in Included first, as Debian's sshd_config does
    let d = dir.path();
    let keygen = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(d.join("hk")).output();
    assert!(keygen.unwrap().status.success());
    std::fs::write(d.join("vpnshop.conf"), setup(&["--print", "sshd-config", "--api-port", "10099"]).stdout).unwrap();
    let main = format!(
        "Include {d}/vpnshop.conf\nHostKey {d}/hk\nPidFile none\nAllowTcpForwarding yes\nX11Forwarding yes\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), main).unwrap();
    let effective = |user: &str| {
        let out = Command::new(SSHD)
            .arg("-T")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .args(["-C", &format!("user={user},host=localhost,addr=127.0.0.1")])
            .output()
            .unwrap();
        assert!(out.status.success(), "sshd -T: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shop = effective("vpnshop");
    for line in [
        "allowtcpforwarding local",
        "permitopen 127.0.0.1:10099",
        "authenticationmethods publickey",
        "passwordauthentication no",
        "permittty no",
        "x11forwarding no",
        "allowagentforwarding no",
        "authorizedkeysfile /etc/ssh/authorized_keys.d/%u",
    ] {
        assert!(shop.lines().any(|l| l == line), "{line:?} for the shop's user:\n{shop}");
    }
    let other = effective("alice");
    for line in ["allowtcpforwarding yes", "permitopen any", "x11forwarding yes"] {
        assert!(other.lines().any(|l| l == line), "{line:?} unchanged for anyone else:\n{other}");
    }
}

// ------------------------------------------------------------------------------ a real run, sandboxed

const PACKAGES: [&str; 5] = ["openssh-server", "openssh-client", "sudo", "iproute2", "v2ray"];

/// Root, unshare/nsenter and every package setup.sh would otherwise install (it must not install anything
/// here: the sandbox only covers /etc and /var).
fn sandbox_possible() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        eprintln!("skipping: running setup.sh for real needs root (in a private mount namespace)");
        return false;
    }
    let missing: Vec<&str> = PACKAGES
        .into_iter()
        .filter(|p| !Command::new("dpkg").args(["-s", p]).output().is_ok_and(|o| o.status.success()))
        .collect();
    have(&format!("{missing:?}"), missing.is_empty())
        && have("unshare and nsenter", runs("unshare", &["--version"]) && runs("nsenter", &["--version"]))
}

/// A private mount namespace with throwaway overlays on /etc, /var and /usr/local (REALITY's key file), held
/// open by a `sleep`; processes started in it (and the holder) are killed on drop, and the overlays vanish with
/// the namespace.
struct Sandbox {
    dir: TempDir,
    holder: Child,
    started: Vec<Child>,
}

impl Sandbox {
    async fn start() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("vpnshop-setup-").tempdir().unwrap();
        for sub in ["etc/u", "etc/w", "var/u", "var/w", "local/u", "local/w"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let d = dir.path().display();
        let script = format!(
            "set -e\n\
             mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc/u,workdir={d}/etc/w /etc\n\
             mount -t overlay overlay -o lowerdir=/var,upperdir={d}/var/u,workdir={d}/var/w /var\n\
             mount -t overlay overlay -o lowerdir=/usr/local,upperdir={d}/local/u,workdir={d}/local/w /usr/local\n\
             touch {d}/ready\nexec sleep 3600\n"
        );
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("holder.log")).unwrap())
            .spawn()
            .expect("unshare");
        let sandbox = Sandbox { dir, holder, started: Vec::new() };
        for _ in 0..200 {
            if sandbox.dir.path().join("ready").exists() {
                return sandbox;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the sandbox's overlays did not come up: {}", sandbox.log("holder.log"));
    }

    /// A sandbox with a shop key pair made in it (`shop`, `shop.pub`).
    async fn with_shop_key() -> Sandbox {
        let sandbox = Sandbox::start().await;
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(sandbox.path().join("shop"))
            .output()
            .unwrap();
        assert!(keygen.status.success(), "{}", text(&keygen));
        sandbox
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command run inside the sandbox's mount namespace.
    fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.id().to_string(), "-m", "--", program]);
        cmd
    }

    /// Runs a shell snippet inside; returns (success, stdout + stderr).
    fn sh(&self, script: &str) -> (bool, String) {
        let out = self.cmd("sh").args(["-c", script]).output().unwrap();
        (out.status.success(), text(&out))
    }

    fn spawn(&mut self, program: &str, args: &[&str], log: &str) {
        let log = std::fs::File::create(self.path().join(log)).unwrap();
        let child = self
            .cmd(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.started.push(child);
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for child in self.started.iter_mut().chain(std::iter::once(&mut self.holder)) {
            kill_pids(&descendants(child.id()));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn options() -> SshOptions {
    SshOptions {
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(15),
        keepalive_interval: Duration::from_secs(5),
        keepalive_max: 3,
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_node_prepared_by_setup_sh_is_added_with_the_printed_line_and_tests_green(pool: PgPool) {
    if !sandbox_possible() {
        return;
    }
    let mut sandbox = Sandbox::start().await;
    let t = sandbox.path().to_owned();
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "shop", "-f"])
        .arg(t.join("shop"))
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let shop_pub = std::fs::read_to_string(t.join("shop.pub")).unwrap().trim().to_owned();
    let (port, api_port, ssh_port) = (free_port(), free_port(), free_port());
    let setup_args = |with_key: bool| {
        let mut args = vec![
            script().display().to_string(),
            "--name".into(),
            "sandbox-1".into(),
            "--location".into(),
            "de".into(),
            "--public-host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--api-port".into(),
            api_port.to_string(),
            "--ssh-port".into(),
            ssh_port.to_string(),
        ];
        if with_key {
            args.extend(["--shop-key".into(), t.join("shop.pub").display().to_string()]);
        }
        args
    };

    // two runs: the first sets everything up, the second finds nothing to change
    let first = sandbox.cmd("bash").args(setup_args(true)).output().unwrap();
    assert!(first.status.success(), "first run:\n{}", text(&first));
    let first_err = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(first_err.contains("created user vpnshop"), "{first_err}");
    assert!(first_err.contains("wrote /etc/v2ray/config.json"), "{first_err}");
    let second = sandbox.cmd("bash").args(setup_args(false)).output().unwrap();
    assert!(second.status.success(), "second run:\n{}", text(&second));
    let second_err = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(!second_err.contains("wrote ") && !second_err.contains("created "), "idempotent:\n{second_err}");
    let add_line = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("vpnshop server add "))
            .unwrap_or_else(|| panic!("no add line in:\n{}", text(out)))
            .to_owned()
    };
    let add = add_line(&first);
    assert_eq!(add, add_line(&second));
    let (ok, fingerprint) = sandbox.sh("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | awk '{print $2}'");
    assert!(ok, "{fingerprint}");
    assert!(add.contains(&format!("--host-key {} ", fingerprint.trim())), "{add}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("vpnshop server test sandbox-1"), "{}", text(&first));

    // what it left on the node
    let facts = [
        ("getent passwd vpnshop | cut -d: -f7", "/bin/sh"),
        ("getent shadow vpnshop | cut -d: -f2", "*"),
        ("stat -c '%a %U %G' /etc/v2ray", "2770 root vpnshop"),
        ("stat -c '%a %U %G' /etc/v2ray/config.json", "640 root vpnshop"),
        ("stat -c '%a %U %G' /etc/ssh/authorized_keys.d/vpnshop", "644 root root"),
        ("stat -c '%a %U %G' /etc/sudoers.d/vpnshop", "440 root root"),
        (
            "grep -v '^#' /etc/ssh/authorized_keys.d/vpnshop",
            &format!("restrict,port-forwarding,permitopen=\"127.0.0.1:{api_port}\" {shop_pub}"),
        ),
        ("runuser -u vpnshop -- sudo -n -l /usr/bin/systemctl restart v2ray", "/usr/bin/systemctl restart v2ray"),
        ("runuser -u vpnshop -- sudo -n -l /usr/bin/systemctl stop v2ray 2>&1 || echo refused", "refused"),
        ("runuser -u vpnshop -- sudo -n -l /bin/sh 2>&1 || echo refused", "refused"),
    ];
    for (command, expected) in facts {
        let (_, got) = sandbox.sh(command);
        assert_eq!(got.lines().last().unwrap_or("").trim(), expected, "{command}:\n{got}");
    }
    let (ok, config) = sandbox.sh("cat /etc/v2ray/config.json");
    assert!(ok, "{config}");
    let base = render::default_base(&NodeParams {
        core: Core::V2ray,
        api_port,
        inbounds: vec![InboundSpec::plain_tcp("proxy", Protocol::Vmess, port)],
    })
    .unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&config).unwrap(), base);

    // the node's services: v2ray as an unprivileged user that reads the config only through the group
    // (what the systemd drop-in gives it), the machine's sshd config with the drop-in, on a loopback port
    let ssh_port_s = ssh_port.to_string();
    sandbox.spawn(
        "setpriv",
        &[
            "--reuid=nobody",
            "--regid=nogroup",
            "--groups=vpnshop",
            "--inh-caps=-all",
            V2RAY,
            "-config",
            "/etc/v2ray/config.json",
        ],
        "v2ray.log",
    );
    let (ok, out) = sandbox.sh("mkdir -p /run/sshd");
    assert!(ok, "{out}");
    sandbox.spawn(
        SSHD,
        &[
            "-D",
            "-e",
            "-p",
            &ssh_port_s,
            "-o",
            "ListenAddress=127.0.0.1",
            "-o",
            "PidFile=none",
            "-o",
            "LogLevel=VERBOSE",
        ],
        "sshd.log",
    );
    for (what, p) in [("v2ray", api_port), ("sshd", ssh_port)] {
        if let Err(e) = wait_for_port(p, Duration::from_secs(10)).await {
            panic!("{what}: {e}\n{}{}", sandbox.log("v2ray.log"), sandbox.log("sshd.log"));
        }
    }

    // the shop: exactly the printed lines
    let db = database_url(&pool);
    let key = t.join("shop");
    let seed = vpnshop(&db, &key).args(["catalog", "seed"]).output().unwrap();
    assert!(seed.status.success(), "{}", text(&seed));
    let words: Vec<&str> = add.split_whitespace().collect();
    assert_eq!(words[0], "vpnshop");
    let added = vpnshop(&db, &key).args(&words[1..]).output().unwrap();
    assert!(added.status.success(), "{add}\n{}", text(&added));
    let tested = vpnshop(&db, &key).args(["server", "test", "sandbox-1"]).output().unwrap();
    let report = text(&tested);
    assert!(tested.status.success(), "{report}\n{}", sandbox.log("sshd.log"));
    assert!(report.contains("holds 0 users and our base config"), "{report}");
    assert!(report.contains("logged in as vpnshop"), "{report}");

    // the shop writes the config as the login user (temp file, -test, rename); the core's user reads it
    let nodes = SshNodes::new(&KeySource::Path(key.clone()), options()).unwrap();
    let node = NodeTarget {
        server_id: 1,
        name: "sandbox-1".into(),
        ssh_host: "127.0.0.1".into(),
        ssh_port,
        ssh_user: "vpnshop".into(),
        host_key_fingerprint: Some(fingerprint.trim().to_owned()),
        core: Core::V2ray,
        api_port,
        inbounds: vec![ClientInbound { tag: "proxy".into(), protocol: Protocol::Vmess, core: Core::V2ray, flow: None }],
        config_path: "/etc/v2ray/config.json".into(),
        restart_command: "sudo -n systemctl restart v2ray".into(),
    };
    let alice = NodeUser { uuid: Uuid::new_v4(), email: "alice@test".into() };
    let rendered = render::render(&base, &node.inbounds, std::slice::from_ref(&alice)).unwrap();
    nodes.write_config(&node, &rendered).await.expect("the login user writes the config");
    nodes.add_user(&node, &alice).await.expect("the API answers through the permitted tunnel");
    assert_eq!(nodes.read_config(&node).await.unwrap().as_deref(), Some(rendered.as_str()));
    let (_, stat) = sandbox.sh("stat -c '%a %G' /etc/v2ray/config.json");
    assert_eq!(stat.trim(), "640 vpnshop", "the written file stays readable by the core's group only");
    let (ok, out) = sandbox.sh(&format!(
        "setpriv --reuid=nobody --regid=nogroup --groups=vpnshop --inh-caps=-all {V2RAY} -test -config /etc/v2ray/config.json"
    ));
    assert!(ok, "the core's user reads the file the shop wrote: {out}");
    let tested = vpnshop(&db, &key).args(["server", "test", "sandbox-1"]).output().unwrap();
    assert!(text(&tested).contains("holds 1 user and our base config"), "{}", text(&tested));

    // the key may forward to the API port and nowhere else
    let elsewhere = NodeTarget { server_id: 2, api_port: port, ..node.clone() };
    let refused = nodes.core_uptime(&elsewhere).await.expect_err("a tunnel to another port is refused");
    assert!(refused.to_string().contains("AdministrativelyProhibited"), "{refused}");
}

#[tokio::test]
async fn setup_sh_installs_the_operators_certificate_for_its_tls_inbounds() {
    if !sandbox_possible() {
        return;
    }
    let sandbox = Sandbox::with_shop_key().await;
    let t = sandbox.path().to_owned();
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-subj", "/CN=node.example.com", "-keyout"])
        .arg(t.join("key.pem"))
        .arg("-out")
        .arg(t.join("cert.pem"))
        .output()
        .expect("openssl is installed");
    assert!(openssl.status.success(), "{}", text(&openssl));
    let (port, ws_port, api_port) = (free_port(), free_port(), free_port());
    let args: Vec<String> = vec![
        script().display().to_string(),
        "--public-host".into(),
        "node.example.com".into(),
        "--port".into(),
        port.to_string(),
        "--ws-port".into(),
        ws_port.to_string(),
        "--api-port".into(),
        api_port.to_string(),
        "--ssh-port".into(),
        "2222".into(),
        "--protocol".into(),
        "vless".into(),
        "--shop-key".into(),
        t.join("shop.pub").display().to_string(),
        "--tls-cert".into(),
        t.join("cert.pem").display().to_string(),
        "--tls-key".into(),
        t.join("key.pem").display().to_string(),
    ];
    let first = sandbox.cmd("bash").args(&args).output().unwrap();
    assert!(first.status.success(), "first run:\n{}", text(&first));
    let first_err = String::from_utf8_lossy(&first.stderr).into_owned();
    for file in ["/etc/v2ray/tls/fullchain.pem", "/etc/v2ray/tls/privkey.pem", "/etc/v2ray/config.json"] {
        assert!(first_err.contains(&format!("wrote {file}")), "{first_err}");
    }
    let second = sandbox.cmd("bash").args(&args).output().unwrap();
    assert!(second.status.success(), "second run:\n{}", text(&second));
    let second_err = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(!second_err.contains("wrote "), "idempotent:\n{second_err}");

    let t = t.display();
    let facts = [
        // setgid, as its parent: files the shop's login user might put there belong to the core's group too
        ("stat -c '%a %U %G' /etc/v2ray/tls".to_owned(), "2750 root vpnshop"),
        ("stat -c '%a %U %G' /etc/v2ray/tls/fullchain.pem".to_owned(), "644 root vpnshop"),
        ("stat -c '%a %U %G' /etc/v2ray/tls/privkey.pem".to_owned(), "640 root vpnshop"),
        (format!("cmp {t}/cert.pem /etc/v2ray/tls/fullchain.pem && echo same"), "same"),
        (format!("cmp {t}/key.pem /etc/v2ray/tls/privkey.pem && echo same"), "same"),
        ("runuser -u nobody -- cat /etc/v2ray/tls/privkey.pem >/dev/null 2>&1 || echo refused".to_owned(), "refused"),
    ];
    for (command, expected) in facts {
        let (_, got) = sandbox.sh(&command);
        assert_eq!(got.lines().last().unwrap_or("").trim(), expected, "{command}:\n{got}");
    }

    // the printed line registers exactly the inbounds the node's config has (the shop's first sync keeps it)
    let stdout = String::from_utf8_lossy(&first.stdout);
    let add = stdout.lines().map(str::trim).find(|l| l.starts_with("vpnshop server add ")).expect("the add line");
    let words: Vec<&str> = add.split_whitespace().collect();
    let specs: Vec<InboundSpec> = words
        .windows(2)
        .filter(|w| w[0] == "--inbound")
        .map(|w| vpnshop::domain::inbound::parse_flag(w[1]).unwrap())
        .collect();
    assert_eq!(specs.len(), 2, "{add}");
    assert_eq!(
        specs.iter().map(|s| (s.transport.as_str(), s.security.as_str(), s.port)).collect::<Vec<_>>(),
        [("tcp", "tls", port), ("ws", "tls", ws_port)]
    );
    let (ok, config) = sandbox.sh("cat /etc/v2ray/config.json");
    assert!(ok, "{config}");
    let ours = render::default_base(&NodeParams { core: Core::V2ray, api_port, inbounds: specs }).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&config).unwrap(), ours);
    assert!(stdout.contains(&format!("Open TCP {port} and {ws_port} to customers")), "{stdout}");
}

#[tokio::test]
async fn setup_sh_reality_keeps_the_private_key_on_the_node_and_prints_the_public_one() {
    if !sandbox_possible() {
        return;
    }
    let sandbox = Sandbox::with_shop_key().await;
    let t = sandbox.path().to_owned();
    // Xray is not packaged for Debian (nor installed here): a stand-in with the output of Xray 25's x25519 and a
    // config test that records what it was given (the login user runs it, so the directory must be reachable)
    let (private, public) =
        ("gKvmPrq8VhQ2mtWGjb7XmMBdqLBYmMTbnGGYzPz8n1o", "Y0iE3PCgbvLhn4hmYvuVtNY2vuVHaxE8Al7Vq5DnKHI");
    std::fs::create_dir_all(t.join("bin")).unwrap();
    let fake = format!(
        "#!/bin/sh\ncase \"$1\" in\n  x25519) echo \"PrivateKey: {private}\"; echo \"Password: {public}\"; \
         echo \"Hash32: x\" ;;\n  -test) cp \"$3\" {t}/out/tested.json ;;\n  *) echo \"Xray 25.0.0 (stand-in)\" ;;\nesac\n",
        t = t.display()
    );
    std::fs::write(t.join("bin/xray"), fake).unwrap();
    std::fs::create_dir_all(t.join("out")).unwrap();
    let (ok, out) = sandbox.sh(&format!("chmod 0755 {t} {t}/bin {t}/bin/xray && chmod 1777 {t}/out", t = t.display()));
    assert!(ok, "{out}");
    let path = format!("{}:{}", t.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let (port, api_port) = (free_port(), free_port());
    let args: Vec<String> = vec![
        script().display().to_string(),
        "--core".into(),
        "xray".into(),
        "--reality".into(),
        "--public-host".into(),
        "203.0.113.7".into(),
        "--port".into(),
        port.to_string(),
        "--api-port".into(),
        api_port.to_string(),
        "--ssh-port".into(),
        "2222".into(),
        "--shop-key".into(),
        t.join("shop.pub").display().to_string(),
    ];
    let key_file = Path::new("/usr/local/etc/xray/reality.key");
    let outside = key_file.exists();
    let run = || sandbox.cmd("bash").env("PATH", &path).args(&args).output().unwrap();
    let first = run();
    assert!(first.status.success(), "first run:\n{}", text(&first));
    let second = run();
    assert!(second.status.success(), "second run:\n{}", text(&second));
    let second_err = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(!second_err.contains("wrote "), "idempotent (same key, same short id):\n{second_err}");

    let facts = [
        ("stat -c '%a %U %G' /usr/local/etc/xray/reality.key", "640 root vpnshop"),
        ("cat /usr/local/etc/xray/reality.key", private),
        ("runuser -u vpnshop -- cat /usr/local/etc/xray/reality.key", private),
        ("runuser -u nobody -- cat /usr/local/etc/xray/reality.key >/dev/null 2>&1 || echo refused", "refused"),
    ];
    for (command, expected) in facts {
        let (_, got) = sandbox.sh(command);
        assert_eq!(got.lines().last().unwrap_or("").trim(), expected, "{command}:\n{got}");
    }
    let stdout = String::from_utf8_lossy(&first.stdout);
    let add = stdout.lines().map(str::trim).find(|l| l.starts_with("vpnshop server add ")).expect("the add line");
    assert!(!add.contains(private), "the private key stays on the node: {add}");
    let flag = add.split_whitespace().skip_while(|w| *w != "--inbound").nth(1).expect("an --inbound flag");
    let spec = vpnshop::domain::inbound::parse_flag(flag).unwrap();
    let reality = spec.reality.clone().expect("REALITY settings");
    assert_eq!(reality.public_key, public, "{add}");
    assert!(add.contains("--core xray --protocol vless"), "{add}");
    let (_, sid) = sandbox.sh("cat /usr/local/etc/xray/reality.short_id");
    assert_eq!(reality.short_ids, [sid.trim()]);

    // the node's config is the shop's base with the key put in (what the shop's write step does), and the core
    // tested exactly that
    let mut ours = render::default_base(&NodeParams { core: Core::Xray, api_port, inbounds: vec![spec] }).unwrap();
    vpnshop::provision::isolation::isolate(&mut ours, &[], &["203.0.113.7".parse().unwrap()]).unwrap();
    let (ok, config) = sandbox.sh("cat /etc/xray/config.json");
    assert!(ok, "{config}");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config.pointer("/inbounds/1/streamSettings/realitySettings/privateKey"), Some(&private.into()));
    assert_eq!(render::base_hash(&config), render::base_hash(&ours), "the shop's first sync keeps it");
    let tested: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("out/tested.json")).expect("the core tested it")).unwrap();
    assert_eq!(tested, config);
    assert_eq!(key_file.exists(), outside, "the machine's own /usr/local is untouched");
}
