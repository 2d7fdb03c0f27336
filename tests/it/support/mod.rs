//! Test support: real nodes (an `sshd` + a `v2ray` on loopback, each in its own temp dir), real V2Ray clients
//! that browse through them, and a tiny origin HTTP server to browse to.
//!
//! Tests that need the tools call [`node_tools_present`] first: it skips them when a tool is missing, unless
//! the run promised every tool (`VPNSHOP_REQUIRE_TOOLS=1`, set by `scripts/dev test`), where it fails them.

mod client;
mod node;
mod origin;
pub mod stripe;
mod telegram;
mod tls;
pub mod zarinpal;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub use client::{ClientParams, TestV2rayClient};
pub use node::TestNode;
pub use origin::{GREETING, Origin};
pub use telegram::*;
pub use tls::TestCa;

use crate::helpers::tools_required;

pub const SSHD: &str = "/usr/sbin/sshd";
pub const V2RAY: &str = "/usr/bin/v2ray";

/// Whether sshd, ssh-keygen and v2ray are installed; `false` means "skip this test" (and says so).
/// Panics instead when the run requires every tool.
pub fn node_tools_present() -> bool {
    let missing: Vec<&str> = [SSHD, V2RAY]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .chain(Command::new("ssh-keygen").arg("-?").output().is_err().then_some("ssh-keygen"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !tools_required(),
        "VPNSHOP_REQUIRE_TOOLS=1 but {missing:?} missing (apt-get install v2ray openssh-server openssh-client)"
    );
    eprintln!("skipping: {missing:?} not installed (scripts/dev test installs them)");
    false
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().expect("local addr").port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!("nothing listens on 127.0.0.1:{port} after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until nothing accepts connections on 127.0.0.1:`port` any more.
pub async fn wait_for_port_closed(port: u16, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        if start.elapsed() > timeout {
            return Err(format!("127.0.0.1:{port} still listens after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs a command to completion and returns its stdout; panics with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// All descendants of `pid` (children first-level and below), from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // "pid (comm) state ppid …": comm may hold spaces, so split after the last ')'
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            if let Some(ppid) = ppid {
                parents.push((child, ppid));
            }
        }
    }
    let mut found = vec![];
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, ppid) in &parents {
            if ppid == p && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// Sends SIGKILL to these processes (ones we started), ignoring those already gone.
pub fn kill_pids(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill").arg("-KILL").args(pids.iter().map(u32::to_string)).output();
}
