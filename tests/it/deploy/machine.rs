//! A container started with systemd-nspawn on an unpacked root file system. It shares the host's network, so
//! it reaches the test's PostgreSQL and Redis on 127.0.0.1 and the test reaches its ports; it is stopped (and
//! killed if need be) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{descendants, kill_pids};

pub struct Machine {
    nspawn: Child,
    log: PathBuf,
}

impl Machine {
    /// `systemd-nspawn -D root <args>`; its output goes to `log`.
    pub fn start(root: &Path, args: &[String], log: &Path) -> Machine {
        let out = std::fs::File::create(log).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .args(["--quiet", "--register=no", "--keep-unit", "--console=passive", "-D"])
            .arg(root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start systemd-nspawn");
        Machine { nspawn, log: log.to_owned() }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The host's pid of the container's PID 1 (nspawn's child), once it is there.
    pub async fn pid1(&mut self) -> u32 {
        let started = Instant::now();
        loop {
            if let Some(pid) = children(self.nspawn.id()).first() {
                return *pid;
            }
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                panic!("systemd-nspawn ended ({status}):\n{}", self.log());
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no container process:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a command inside the container (its namespaces and root), as root or as `uid:gid`.
    pub async fn exec(&mut self, user: Option<(u32, u32)>, env: &[(&str, &str)], command: &[&str]) -> Output {
        let pid = self.pid1().await.to_string();
        let mut cmd = Command::new("nsenter");
        cmd.args(["--target", &pid, "--mount", "--uts", "--ipc", "--pid", "--root", "--wd"]);
        if let Some((uid, gid)) = user {
            cmd.args(["--setuid", &uid.to_string(), "--setgid", &gid.to_string()]);
        }
        cmd.arg("--").arg("env").arg("-i");
        cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.args(command);
        tokio::task::spawn_blocking(move || cmd.output().expect("nsenter")).await.unwrap()
    }

    /// Stops it as `docker stop` / `machinectl poweroff` would: SIGTERM to nspawn, which passes its
    /// `--kill-signal` to the container's PID 1; waits up to `timeout`.
    pub async fn stop(mut self, timeout: Duration) -> ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.nspawn.id().to_string()]).status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.nspawn.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < timeout, "the container did not stop within {timeout:?}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if matches!(self.nspawn.try_wait(), Ok(None)) {
            kill_pids(&descendants(self.nspawn.id()));
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
    }
}

/// Direct children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let child = e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}
