//! The programs a backup runs: `pg_dump`, `pg_restore` (PostgreSQL's client) and `age`. Each is started with a
//! clear error when it is missing, its stderr is kept for the error message, and it is killed when the backup is
//! dropped (a job that times out leaves no `pg_dump` behind). The database is named without its password, which
//! goes in `PGPASSWORD`: nothing secret on a command line.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use url::Url;

/// An outside program and how to get it.
#[derive(Debug, Clone, Copy)]
pub enum Tool {
    PgDump,
    PgRestore,
    Age,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::PgDump => "pg_dump",
            Tool::PgRestore => "pg_restore",
            Tool::Age => "age",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Tool::PgDump => {
                "install postgresql-client (its major version at least the server's; Debian: apt-get install \
                 postgresql-client) or set backup.pg_dump"
            }
            Tool::PgRestore => {
                "install postgresql-client (Debian: apt-get install postgresql-client) or set backup.pg_restore"
            }
            Tool::Age => "install age (Debian: apt-get install age) or set backup.age",
        }
    }

    /// A command for this tool (`program` from the settings), killed on drop, stdin closed unless set later.
    pub fn command(self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.kill_on_drop(true).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Starts it; a missing program is named with how to install it.
    pub fn spawn(self, cmd: &mut Command) -> anyhow::Result<Running> {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("{} not found ({program:?}): {}", self.name(), self.hint())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot start {} ({program:?})", self.name())),
        };
        let stderr = child.stderr.take().map(|mut err| {
            tokio::spawn(async move {
                let mut text = Vec::new();
                // all of it is read (a full pipe would stall the program); only its start is kept
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if text.len() < 16 * 1024 {
                        text.extend_from_slice(&buf[..n]);
                    }
                }
                String::from_utf8_lossy(&text).trim().to_owned()
            })
        });
        Ok(Running { tool: self, child, stderr })
    }
}

/// A started program.
pub struct Running {
    tool: Tool,
    pub child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    /// Waits for it; a failure carries what it said on stderr.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let status = self.child.wait().await.with_context(|| format!("waiting for {}", self.tool.name()))?;
        let said = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        if status.success() {
            return Ok(());
        }
        let said = if said.is_empty() { "(no message)".to_owned() } else { said.replace('\n', "; ") };
        bail!("{} failed ({status}): {said}", self.tool.name())
    }
}

/// The database a program connects to: a libpq URL without the password, and the password apart.
pub struct Target {
    url: String,
    password: Option<String>,
}

/// Connection parameters libpq understands; sqlx's own ones would make libpq refuse the URL.
const LIBPQ_PARAMS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "options",
    "application_name",
    "connect_timeout",
    "target_session_attrs",
];

impl Target {
    /// From `database.url`.
    pub fn from_url(raw: &str) -> anyhow::Result<Target> {
        let mut url = Url::parse(raw).context("invalid database.url")?;
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let mut password = url.password().map(decode);
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let mut kept = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "password" => password = Some(value),
                k if LIBPQ_PARAMS.contains(&k) => kept.push((key, value)),
                _ => {}
            }
        }
        if url.password().is_some() {
            url.set_password(None).map_err(|()| anyhow::anyhow!("invalid database.url"))?;
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        Ok(Target { url: url.to_string(), password })
    }

    /// Points a `pg_dump`/`pg_restore` command at the database, never prompting for a password.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.arg("--no-password").arg(format!("--dbname={}", self.url));
        if let Some(password) = &self.password {
            cmd.env("PGPASSWORD", password);
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_and_sqlx_parameters_are_dropped() {
        let t = Target::from_url(
            "postgres://shop:p%40ss%2Fw@db.internal:6432/vpnshop?sslmode=require&statement-cache-capacity=10",
        )
        .unwrap();
        assert_eq!(t.url, "postgres://shop@db.internal:6432/vpnshop?sslmode=require");
        assert_eq!(t.password.as_deref(), Some("p@ss/w"));
        assert!(!format!("{t:?}").contains("p@ss"));
        let t = Target::from_url("postgres://127.0.0.1/db?password=secret&application_name=x").unwrap();
        assert_eq!(
            (t.url.as_str(), t.password.as_deref()),
            ("postgres://127.0.0.1/db?application_name=x", Some("secret"))
        );
        let t = Target::from_url("postgresql:///vpnshop?host=/run/postgresql").unwrap();
        assert_eq!((t.url.as_str(), t.password), ("postgresql:///vpnshop?host=%2Frun%2Fpostgresql", None));
    }

    #[tokio::test]
    async fn a_missing_program_says_how_to_install_it() {
        let mut cmd = Tool::PgDump.command(Path::new("/nonexistent/pg_dump"));
        let err = Tool::PgDump.spawn(&mut cmd).err().unwrap().to_string();
        assert!(err.contains("pg_dump not found") && err.contains("install postgresql-client"), "{err}");
        let mut cmd = Tool::Age.command(Path::new("no-such-age-binary"));
        let err = Tool::Age.spawn(&mut cmd).err().unwrap().to_string();
        assert!(err.contains("apt-get install age"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_program_is_reported_with_what_it_said() {
        let mut cmd = Tool::Age.command(Path::new("sh"));
        cmd.args(["-c", "echo 'no identity matched' >&2; exit 1"]);
        let err = Tool::Age.spawn(&mut cmd).unwrap().finish().await.unwrap_err().to_string();
        assert!(err.starts_with("age failed (exit status: 1): no identity matched"), "{err}");
    }
}
