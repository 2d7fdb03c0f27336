//! `TestV2rayClient`: a real `v2ray` client process (local HTTP proxy inbound → VMess/VLESS outbound to a
//! node), built from parameters or from a share link, and a way to fetch a URL through it.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use tempfile::TempDir;
use uuid::Uuid;
use vpnshop::domain::server::Protocol;

use super::{V2RAY, free_port, wait_for_port};

/// Where and as whom a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientParams {
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub uuid: Uuid,
}

impl ClientParams {
    /// Reads a `vmess://` (base64 JSON) or `vless://` share link.
    pub fn from_link(link: &str) -> Result<Self, String> {
        if let Some(b64) = link.strip_prefix("vmess://") {
            let engines = [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::STANDARD_NO_PAD];
            let raw = engines
                .iter()
                .find_map(|e| e.decode(b64.trim()).ok())
                .ok_or_else(|| format!("vmess link is not base64: {link}"))?;
            let json: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
            let text = |k: &str| match &json[k] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let field = |k: &str| text(k).ok_or_else(|| format!("vmess link without {k:?}"));
            return Ok(ClientParams {
                protocol: Protocol::Vmess,
                host: field("add")?,
                port: field("port")?.parse().map_err(|e| format!("vmess port: {e}"))?,
                uuid: field("id")?.parse().map_err(|e| format!("vmess id: {e}"))?,
            });
        }
        if link.starts_with("vless://") {
            let url = url::Url::parse(link).map_err(|e| e.to_string())?;
            return Ok(ClientParams {
                protocol: Protocol::Vless,
                host: url.host_str().ok_or("vless link without host")?.to_owned(),
                port: url.port().ok_or("vless link without port")?,
                uuid: url.username().parse().map_err(|e| format!("vless id: {e}"))?,
            });
        }
        Err(format!("not a vmess:// or vless:// link: {link}"))
    }

    fn outbound(&self) -> serde_json::Value {
        match self.protocol {
            Protocol::Vmess => serde_json::json!({
                "protocol": "vmess",
                "settings": {"vnext": [{"address": self.host, "port": self.port,
                    "users": [{"id": self.uuid.to_string(), "alterId": 0, "security": "auto"}]}]}
            }),
            Protocol::Vless => serde_json::json!({
                "protocol": "vless",
                "settings": {"vnext": [{"address": self.host, "port": self.port,
                    "users": [{"id": self.uuid.to_string(), "encryption": "none"}]}]}
            }),
        }
    }
}

/// A running v2ray client with an HTTP proxy on 127.0.0.1:`http_port`. Killed when dropped.
pub struct TestV2rayClient {
    dir: TempDir,
    pub http_port: u16,
    child: Child,
}

impl TestV2rayClient {
    /// Starts a client from a share link or from [`ClientParams`].
    pub async fn start(params: impl IntoClientParams) -> TestV2rayClient {
        let params = params.into_params().expect("client parameters");
        Self::start_outbound(params.outbound()).await
    }

    /// Starts a client whose one outbound is `outbound` (e.g. what `ParsedLink::outbound` makes of a share link:
    /// transport, TLS and all).
    pub async fn start_outbound(outbound: serde_json::Value) -> TestV2rayClient {
        let dir = tempfile::Builder::new().prefix("vpnshop-client-").tempdir().expect("temp dir");
        let http_port = free_port();
        let config = serde_json::json!({
            "log": {"loglevel": "warning"},
            "inbounds": [{"tag": "http-in", "listen": "127.0.0.1", "port": http_port, "protocol": "http",
                          "settings": {}}],
            "outbounds": [outbound]
        });
        let config_path = dir.path().join("client.json");
        fs::write(&config_path, config.to_string()).expect("client config");
        let log = fs::File::create(dir.path().join("client.log")).expect("client log");
        let child = Command::new(V2RAY)
            .arg("-config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start the v2ray client");
        let client = TestV2rayClient { dir, http_port, child };
        if let Err(e) = wait_for_port(http_port, Duration::from_secs(10)).await {
            panic!("v2ray client did not come up: {e}\n{}", client.log());
        }
        client
    }

    /// Fetches `url` through the proxy on a new connection; the body if the answer is 2xx.
    pub async fn fetch(&self, url: &str) -> Result<String, String> {
        let proxy = reqwest::Proxy::all(format!("http://127.0.0.1:{}", self.http_port)).map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .proxy(proxy)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let response = http.get(url).send().await.map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| format!("body failed: {e}"))?;
        if status.is_success() { Ok(body) } else { Err(format!("HTTP {status}: {body}")) }
    }

    /// Opens a tunnel through the node to `host:port` (an HTTP `CONNECT` to the client's proxy) and returns
    /// the stream, as a customer's app would reach any destination. Whether the node then connects there
    /// shows in what (if anything) comes back.
    pub async fn connect_through(&self, host: &str, port: u16) -> Result<tokio::net::TcpStream, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket =
            tokio::net::TcpStream::connect(("127.0.0.1", self.http_port)).await.map_err(|e| e.to_string())?;
        let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        socket.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        // the proxy's answer head, byte by byte so nothing of the tunnelled stream is consumed
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut byte)).await {
                Ok(Ok(1)) => head.push(byte[0]),
                Ok(_) => return Err(format!("the proxy closed: {}", String::from_utf8_lossy(&head))),
                Err(_) => return Err("the proxy did not answer CONNECT".into()),
            }
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return Err(format!("CONNECT refused: {head}"));
        }
        Ok(socket)
    }

    /// What `host:port` says first through the tunnel (up to `limit` bytes within `wait`): empty when the
    /// node never connected there.
    pub async fn first_words_through(&self, host: &str, port: u16, wait: Duration) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let Ok(mut stream) = self.connect_through(host, port).await else { return Vec::new() };
        let mut got = vec![0u8; 256];
        match tokio::time::timeout(wait, stream.read(&mut got)).await {
            Ok(Ok(n)) => {
                got.truncate(n);
                got
            }
            _ => Vec::new(),
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("client.log")).unwrap_or_default()
    }
}

impl Drop for TestV2rayClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A share link or ready parameters.
pub trait IntoClientParams {
    fn into_params(self) -> Result<ClientParams, String>;
}

impl IntoClientParams for ClientParams {
    fn into_params(self) -> Result<ClientParams, String> {
        Ok(self)
    }
}

impl IntoClientParams for &str {
    fn into_params(self) -> Result<ClientParams, String> {
        ClientParams::from_link(self)
    }
}

impl IntoClientParams for &String {
    fn into_params(self) -> Result<ClientParams, String> {
        ClientParams::from_link(self)
    }
}
