//! `Origin`: a tiny HTTP server on 127.0.0.1 (port 0) that tests browse to through a node.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use tokio::task::JoinHandle;

/// What `GET /` answers.
pub const GREETING: &str = "hello through the node";

/// A running origin server; stopped when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Origin {
    /// Serves `GET /` (the greeting), `GET /bytes/{n}` (`n` bytes of `x`) and `GET /slow/{chunks}/{ms}`
    /// (`chunks` × 16 KiB, one every `ms` milliseconds: a long-lived download).
    pub async fn start() -> Origin {
        let app = Router::new()
            .route("/", get(|| async { GREETING }))
            .route("/bytes/{n}", get(|Path(n): Path<usize>| async move { "x".repeat(n) }))
            .route("/slow/{chunks}/{ms}", get(slow));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Origin { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The setting that lets customers' tunnels reach this loopback origin (nodes block loopback by default;
    /// tests browse to it): only its own port, so the node's API and sshd stay blocked. Push it onto
    /// `provision.allow_private_destinations`.
    pub fn allowance(&self) -> vpnshop::provision::isolation::AllowedDestination {
        format!("127.0.0.1:{}", self.addr.port()).parse().expect("origin address")
    }
}

async fn slow(Path((chunks, ms)): Path<(usize, u64)>) -> axum::body::Body {
    let stream = futures::stream::unfold(0usize, move |sent| async move {
        if sent == chunks {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 16 * 1024])), sent + 1))
    });
    axum::body::Body::from_stream(stream)
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
