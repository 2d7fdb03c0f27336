//! The Dockerfile's runtime stage, built and run without a Docker engine: its base (`debian:bookworm-slim`) is
//! made with debootstrap --variant=minbase, its RUN lines run in it as root with /bin/sh -c (both cached by
//! scripts/ci-rootfs), its COPY/WORKDIR/ENV/USER are applied as Docker would (the build stage's binary is the
//! one the tests built), and its ENTRYPOINT + CMD start as the container's PID 1 under systemd-nspawn, as its
//! USER, with its ENV. The shop must answer /healthz and /readyz on the test's database, the HEALTHCHECK must
//! pass inside (and fail on a closed port), and its STOPSIGNAL must stop it cleanly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::machine::Machine;
use super::{binary, repo, root_or_skip, rootfs, text};
use crate::helpers::{database_url, redis_url};
use crate::support::free_port;

/// One instruction: keyword (upper case) and the rest of its line, continuations joined.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(trimmed);
                let (keyword, rest) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

/// A JSON-array (exec form) argument list.
fn exec_form(rest: &str) -> Vec<String> {
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("not an exec-form list ({e}): {rest}"))
}

/// What the runtime stage says to run and how.
#[derive(Default)]
struct Image {
    workdir: PathBuf,
    env: Vec<(String, String)>,
    user: (u32, u32),
    command: Vec<String>,
    healthcheck: Vec<String>,
    stop_signal: String,
}

/// Applies the stage's instructions after its RUN lines to the unpacked root.
fn apply(stage: &[(String, String)], root: &Path) -> Image {
    let mut image = Image { workdir: "/".into(), stop_signal: "SIGTERM".into(), ..Image::default() };
    let (mut entrypoint, mut cmd) = (Vec::new(), Vec::new());
    for (keyword, rest) in stage {
        match keyword.as_str() {
            "FROM" | "RUN" | "EXPOSE" => {}
            "WORKDIR" => {
                image.workdir = image.workdir.join(rest);
                std::fs::create_dir_all(root.join(image.workdir.strip_prefix("/").unwrap())).unwrap();
            }
            "COPY" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let (src, dest) = match words.as_slice() {
                    ["--from=build", "/src/target/release/vpnshop", dest] => (PathBuf::from(binary()), *dest),
                    [src, dest] if !src.starts_with("--") => (repo(src), *dest),
                    _ => panic!("the test does not know this COPY form yet: COPY {rest}"),
                };
                let dest = image.workdir.join(dest);
                let target = root.join(dest.strip_prefix("/").unwrap());
                let cp = Command::new("cp").arg("-a").arg(&src).arg(&target).output().unwrap();
                assert!(cp.status.success(), "COPY {rest}: {}", text(&cp));
            }
            "ENV" => {
                // only the KEY=value form, several per line
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("ENV {rest}: KEY=value expected"));
                    image.env.push((k.to_owned(), v.trim_matches('"').to_owned()));
                }
            }
            "USER" => {
                let (u, g) = rest.split_once(':').unwrap_or((rest, rest));
                image.user = (u.parse().expect("a numeric USER"), g.parse().expect("a numeric group"));
            }
            "HEALTHCHECK" => {
                let (_, list) = rest.split_once("CMD ").expect("HEALTHCHECK … CMD [...]");
                image.healthcheck = exec_form(list);
            }
            "STOPSIGNAL" => image.stop_signal = rest.clone(),
            "ENTRYPOINT" => entrypoint = exec_form(rest),
            "CMD" => cmd = exec_form(rest),
            other => panic!("the test does not know {other} yet"),
        }
    }
    image.command = entrypoint.into_iter().chain(cmd).collect();
    image
}

#[sqlx::test(migrations = false)]
async fn the_runtime_image_runs_the_shop_answers_its_probes_and_stops_cleanly(pool: PgPool) {
    if !root_or_skip("building and starting a container") {
        return;
    }
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let all = instructions(&dockerfile);
    let from = all.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let stage = &all[from..];
    assert!(stage[0].1.starts_with("debian:bookworm-slim"), "the base we can make here: {}", stage[0].1);
    let runs: Vec<&str> = stage.iter().filter(|(k, _)| k == "RUN").map(|(_, r)| r.as_str()).collect();
    let first_other = stage.iter().skip(1).position(|(k, _)| k != "RUN").unwrap() + 1;
    assert!(stage[first_other..].iter().all(|(k, _)| k != "RUN"), "RUN lines come right after FROM here");
    let mut args = Vec::new();
    for run in &runs {
        args.extend(["--run", run]);
    }
    let started = Instant::now();
    let Some(dir) = rootfs(&args) else { return };
    eprintln!("runtime image root file system ready in {:?}", started.elapsed());
    let root = dir.path();
    let image = apply(stage, root);
    assert!(image.user.0 != 0, "the image runs as a user, not root");

    let (http, metrics) = (free_port(), free_port());
    let overrides = [
        ("DATABASE_URL".to_owned(), database_url(&pool)),
        ("REDIS_URL".to_owned(), redis_url()),
        ("VPNSHOP__SECURITY__JWT_SECRET".to_owned(), "container-check-secret-of-32-characters".to_owned()),
        ("VPNSHOP__HTTP__ADDR".to_owned(), format!("127.0.0.1:{http}")),
        ("VPNSHOP__METRICS__ADDR".to_owned(), format!("127.0.0.1:{metrics}")),
    ];
    let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned();
    let env: Vec<(String, String)> =
        [("PATH".to_owned(), path)].into_iter().chain(image.env.clone()).chain(overrides).collect();
    let mut nspawn: Vec<String> = vec![
        format!("--user={}", image.user.0),
        format!("--chdir={}", image.workdir.display()),
        format!("--kill-signal={}", image.stop_signal),
    ];
    nspawn.extend(env.iter().map(|(k, v)| format!("--setenv={k}={v}")));
    nspawn.push("--".into());
    nspawn.extend(image.command.iter().cloned());
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut machine = Machine::start(root, &nspawn, log.path());

    let client = reqwest::Client::new();
    for probe in ["/healthz", "/readyz"] {
        let url = format!("http://127.0.0.1:{http}{probe}");
        let begun = Instant::now();
        loop {
            match client.get(&url).send().await {
                Ok(res) if res.status() == 200 => break,
                _ if begun.elapsed() > Duration::from_secs(60) => panic!("{probe} not 200:\n{}", machine.log()),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    // PID 1 is the ENTRYPOINT's first program (tini), the shop runs as the image's USER
    let pid1 = machine.pid1().await;
    let comm = std::fs::read_to_string(format!("/proc/{pid1}/comm")).unwrap();
    assert_eq!(Path::new(&image.command[0]).file_name().unwrap().to_str().unwrap(), comm.trim());
    let shop = crate::support::descendants(pid1)
        .into_iter()
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "vpnshop"))
        .expect("the shop runs under PID 1");
    let status = std::fs::read_to_string(format!("/proc/{shop}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_owned();
    assert!(uid_line.split_whitespace().skip(1).all(|id| id == image.user.0.to_string()), "{uid_line}");

    // the HEALTHCHECK, run inside as Docker runs it: healthy now, unhealthy when nothing answers
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let check: Vec<&str> = image.healthcheck.iter().map(String::as_str).collect();
    let healthy = machine.exec(Some(image.user), &env_refs, &check).await;
    assert!(healthy.status.success(), "HEALTHCHECK: {}", text(&healthy));
    let closed = format!("127.0.0.1:{}", free_port());
    let mut elsewhere = env_refs.clone();
    elsewhere.push(("VPNSHOP__HTTP__ADDR", &closed));
    let unhealthy = machine.exec(Some(image.user), &elsewhere, &check).await;
    assert!(!unhealthy.status.success(), "the HEALTHCHECK fails where nothing answers");

    // backups need pg_dump and age in the image
    for tool in ["pg_dump", "age"] {
        let found = machine.exec(Some(image.user), &env_refs, &["sh", "-c", &format!("command -v {tool}")]).await;
        assert!(found.status.success(), "{tool} in the image");
    }

    let status = machine.stop(Duration::from_secs(45)).await;
    let log = std::fs::read_to_string(log.path()).unwrap();
    assert!(status.success(), "{status}: the shop exits 0 on {}:\n{log}", image.stop_signal);
    assert!(log.contains("shutting down"), "{log}");
}
