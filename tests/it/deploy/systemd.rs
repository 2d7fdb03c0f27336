//! The systemd install for real: a Debian 12 container (debootstrap, cached by scripts/ci-rootfs) boots
//! systemd under systemd-nspawn; deploy/install.sh installs the shop in it as on a VPS; `vpnshopctl migrate`
//! runs; systemd starts vpnshop.service with its whole sandbox and the shop answers /readyz on the test's
//! database; the process has no capabilities, no new privileges and a seccomp filter; the backup timer is
//! scheduled and the backup it starts writes a dump; `systemctl stop` ends the shop cleanly within
//! TimeoutStopSec.

use std::process::Output;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::machine::Machine;
use super::{binary, repo, root_or_skip, rootfs, text};
use crate::helpers::{database_url, redis_url};
use crate::support::free_port;

/// Debian 12 (the same cached minbase as the runtime image's) with systemd and the packages install.sh
/// installs, so it finds them there.
const PREPARE: &str = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends age ca-certificates openssh-client postgresql-client systemd systemd-sysv >/dev/null \
    && rm -rf /var/lib/apt/lists/*";
const PATH: (&str, &str) = ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

async fn sh(machine: &mut Machine, script: &str) -> Output {
    machine.exec(None, &[PATH, ("SYSTEMD_PAGER", "")], &["sh", "-c", script]).await
}

async fn ok(machine: &mut Machine, script: &str) -> String {
    let out = sh(machine, script).await;
    assert!(out.status.success(), "{script}:\n{}", text(&out));
    text(&out)
}

#[sqlx::test(migrations = false)]
async fn install_sh_then_systemd_runs_the_shop_sandboxed_and_stops_it_cleanly(pool: PgPool) {
    if !root_or_skip("booting a container") {
        return;
    }
    let Some(dir) = rootfs(&["--run", PREPARE]) else { return };
    let root = dir.path();
    // the checkout's deploy/, config/ and docs/ and the built binary, where an operator would have them
    let src = root.join("root/src");
    std::fs::create_dir_all(&src).unwrap();
    for part in ["deploy", "config", "docs"] {
        let cp = std::process::Command::new("cp").arg("-a").arg(repo(part)).arg(&src).output().unwrap();
        assert!(cp.status.success(), "{}", text(&cp));
    }
    std::fs::copy(binary(), src.join("vpnshop")).unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut machine = Machine::start(root, &["--boot".to_owned()], log.path());
    let begun = Instant::now();
    loop {
        // fails while systemd is not yet listening; then waits for the boot to finish
        let booted = sh(&mut machine, "systemctl is-system-running --wait").await;
        let state = String::from_utf8_lossy(&booted.stdout).trim().to_owned();
        if state == "running" || state == "degraded" {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(60), "boot: {state}\n{}", machine.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let install = ok(&mut machine, "bash /root/src/deploy/install.sh --binary /root/src/vpnshop 2>&1").await;
    assert!(install.contains("created user vpnshop") && !install.contains("no daemon-reload"), "{install}");

    // the operator's part: the database, Redis and ports of this test, after what install.sh wrote
    let (http, metrics) = (free_port(), free_port());
    let env_file = root.join("etc/vpnshop/vpnshop.env");
    let mut env = std::fs::read_to_string(&env_file).unwrap();
    env.push_str(&format!(
        "DATABASE_URL={}\nREDIS_URL={}\nVPNSHOP__HTTP__ADDR=127.0.0.1:{http}\nVPNSHOP__METRICS__ADDR=127.0.0.1:{metrics}\n",
        database_url(&pool),
        redis_url()
    ));
    std::fs::write(&env_file, env).unwrap();
    let migrated = ok(&mut machine, "vpnshopctl migrate 2>&1").await;
    assert!(!migrated.contains("ERROR"), "{migrated}");
    ok(&mut machine, "systemctl enable --now vpnshop.service vpnshop-backup.timer 2>&1").await;

    let client = reqwest::Client::new();
    let begun = Instant::now();
    loop {
        match client.get(format!("http://127.0.0.1:{http}/readyz")).send().await {
            Ok(res) if res.status() == 200 => break,
            _ if begun.elapsed() > Duration::from_secs(60) => {
                let journal = sh(&mut machine, "systemctl status vpnshop; journalctl -u vpnshop --no-pager").await;
                panic!("the service is not ready:\n{}", text(&journal));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    // the sandbox holds: the service's process as systemd started it
    let status = ok(&mut machine, "cat /proc/$(systemctl show -p MainPID --value vpnshop)/status").await;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).map(str::trim).unwrap_or("").to_owned()
    };
    let uid = ok(&mut machine, "id -u vpnshop").await.trim().to_owned();
    assert!(field("Uid").split_whitespace().all(|id| id == uid), "runs as vpnshop: {}", field("Uid"));
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2", "a seccomp filter");
    assert_eq!(field("CapEff"), "0000000000000000");
    assert_eq!(field("CapBnd"), "0000000000000000");
    let timers = ok(&mut machine, "systemctl list-timers --all vpnshop-backup.timer").await;
    assert!(timers.contains("vpnshop-backup.service"), "{timers}");
    // what the timer starts, under the same sandbox: pg_dump into the backup directory
    let help = std::process::Command::new(binary()).arg("--help").output().unwrap();
    if String::from_utf8_lossy(&help.stdout).contains("backup") {
        let run = sh(&mut machine, "systemctl start vpnshop-backup.service").await;
        let journal = sh(&mut machine, "journalctl -u vpnshop-backup --no-pager -o cat").await;
        assert!(run.status.success(), "the backup unit failed:\n{}", text(&journal));
        let files = ok(&mut machine, "ls -l /var/lib/vpnshop/backups").await;
        assert!(files.contains(".dump") && files.contains(" vpnshop vpnshop "), "{files}");
    } else {
        eprintln!("not yet: this binary has no `backup` command");
    }
    // what systemd made of the directories is what install.sh makes: running it again changes nothing
    let again = ok(&mut machine, "bash /root/src/deploy/install.sh --binary /root/src/vpnshop 2>&1").await;
    assert!(again.contains("nothing to change"), "{again}");

    let stop_started = Instant::now();
    ok(&mut machine, "systemctl stop vpnshop").await;
    let stopped_in = stop_started.elapsed();
    let result = ok(&mut machine, "systemctl show -p Result -p ExecMainStatus vpnshop").await;
    assert!(result.contains("Result=success") && result.contains("ExecMainStatus=0"), "{result}");
    let journal = ok(&mut machine, "journalctl -u vpnshop --no-pager -o cat").await;
    assert!(journal.contains("SIGTERM received") && journal.contains("shutting down"), "{journal}");
    eprintln!("vpnshop.service stopped in {stopped_in:?}");

    let status = machine.stop(Duration::from_secs(30)).await;
    assert!(status.success(), "the container shut down: {status}");
}
