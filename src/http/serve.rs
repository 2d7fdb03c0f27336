//! The public listener's connections: accepted up to `http.max_connections`, each served by hyper (HTTP/1.1,
//! or HTTP/2 with prior knowledge) under time limits, every request carrying its peer address
//! (`ConnectInfo<SocketAddr>`) for the per-IP limits. On cancellation it stops accepting, lets in-flight
//! requests finish and returns once every connection has closed.
//!
//! Who enforces which limit:
//! - **Headers**: hyper's HTTP/1 `header_read_timeout`. In hyper 1.x (read in 1.12, `proto/h1/conn.rs`) that timer
//!   is armed whenever the connection waits for a request head: when it opens, and again as soon as a response
//!   is complete (`State::idle` sets `notify_read`, so `poll_read_head` runs at once and arms it). So it also
//!   closes an HTTP/1 keep-alive connection that waits that long for its next request: an idle HTTP/1
//!   connection lives at most `min(header_read, idle)`.
//! - **The first request**: hyper-util's auto builder first reads the protocol preface with no timer at all
//!   (`ReadVersion`), so a connection that never sends a byte would be held forever; [`Watch`] closes a
//!   connection that has not begun a request within the header timeout.
//! - **Idle**: [`Watch`] closes a connection with no request in flight for `idle` (hyper has no idle timer for
//!   HTTP/2; its keep-alive pings only find dead peers).
//! - **Requests and bodies**: the router's timeout layers (`http.request_timeout_secs`).
//! - **Closing**: a connection told to close (idle, or shutdown) gets `grace` to finish what is in flight (a
//!   client that stops reading its response cannot hold it open), then it is dropped.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::HttpSettings;

/// The listener's limits, from `HttpSettings`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    /// How long a closing connection may take to finish what is in flight before it is dropped.
    pub grace: Duration,
    pub max_connections: usize,
    /// Open connections per client address (`client_ip::key_of`), but for `exempt` peers (trusted proxies).
    pub max_per_ip: usize,
    pub exempt: Arc<[ipnet::IpNet]>,
}

impl Limits {
    pub fn from_settings(http: &HttpSettings) -> Limits {
        Limits {
            header_read: Duration::from_secs(http.header_read_timeout_secs),
            idle: Duration::from_secs(http.idle_timeout_secs),
            // requests are cut at the request timeout; a little more lets their 408 go out
            grace: Duration::from_secs(http.request_timeout_secs + 5),
            max_connections: http.max_connections,
            max_per_ip: http.max_connections_per_ip,
            exempt: http.trusted_proxies.clone().into(),
        }
    }
}

/// Serves `router` on `listener` until `cancel` fires, then waits for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let builder = Arc::new(builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients: Clients = Arc::default();
    let connections = TaskTracker::new();
    loop {
        // At the cap nothing is accepted: new connections wait in the kernel's listen backlog (bounded) until
        // one of ours closes, and no memory is spent on them.
        let slot = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // closed: never happens, the semaphore is ours
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e, &cancel).await;
                    continue;
                }
            },
        };
        let from_proxy = limits.exempt.iter().any(|net| net.contains(&peer.ip()));
        let per_ip = if from_proxy {
            None
        } else {
            match PerIp::enter(&clients, super::client_ip::key_of(peer.ip()), limits.max_per_ip) {
                Some(entry) => Some(entry),
                None => {
                    // this address holds its share of places already: closed at once, the others go on
                    metrics::counter!("vpnshop_http_connections_refused_total", "reason" => "per_ip").increment(1);
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let serving = connection(stream, peer, router.clone(), builder.clone(), limits.clone(), cancel.clone(), slot);
        connections.spawn(async move {
            serving.await;
            drop(per_ip);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Open connections per client address.
type Clients = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One open connection counted against its client address; leaving (drop) uncounts it.
struct PerIp {
    clients: Clients,
    key: std::net::IpAddr,
}

impl PerIp {
    /// Counts a connection from `key`, unless it already has `max` open.
    fn enter(clients: &Clients, key: std::net::IpAddr, max: usize) -> Option<PerIp> {
        let mut open = clients.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(PerIp { clients: clients.clone(), key })
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut open = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// hyper's settings for both protocols.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        // request line + headers must fit (431 beyond); hyper's default lets each connection buffer ~400 KiB
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(64)
        .max_header_list_size(16 * 1024);
    builder
}

/// Like hyper 0.14's server: a failed connection is the client's business; anything else (out of file
/// descriptors) is logged and accepting pauses for a second so the process does not spin.
async fn accept_failed(e: std::io::Error, cancel: &CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

/// Serves one connection until it ends, its limits close it, or shutdown does.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    metrics::gauge!("vpnshop_http_connections").increment(1.0);
    let watch = Arc::new(Watch::new());
    let requests = watch.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = requests.begin();
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await;
            drop(in_flight);
            response
        }
    });
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut check = watch.next_check(&limits, Instant::now()).unwrap_or_else(Instant::now);
    // when set, the connection was told to close and must be gone by then
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + limits.grace);
            }
            _ = tokio::time::sleep_until(closing.unwrap_or(check)) => {
                if closing.is_some() {
                    tracing::debug!("connection did not close within its grace period; dropped");
                    break;
                }
                match watch.next_check(&limits, Instant::now()) {
                    Some(at) => check = at,
                    None => {
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + limits.grace);
                    }
                }
            }
        }
    }
    metrics::gauge!("vpnshop_http_connections").decrement(1.0);
}

/// A connection's request activity, read by its timer. Costs a few atomic operations per request.
struct Watch {
    opened: Instant,
    /// Requests begun on this connection.
    begun: AtomicU64,
    in_flight: AtomicU32,
    /// When the last request ended, in milliseconds since `opened`.
    last_done_ms: AtomicU64,
}

/// Marks a request in flight until dropped (its response is ready, or it was abandoned).
struct InFlight(Arc<Watch>);

impl Watch {
    fn new() -> Watch {
        Watch { opened: Instant::now(), begun: AtomicU64::new(0), in_flight: AtomicU32::new(0), last_done_ms: 0.into() }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.begun.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When to look again, or `None` when the connection should close now. Each answer is no later than the
    /// moment the connection could next become due, whatever requests come meanwhile.
    fn next_check(&self, limits: &Limits, now: Instant) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Some(now + limits.idle);
        }
        if self.begun.load(Ordering::Acquire) == 0 {
            // no request yet: it must begin within the header timeout (a request that begins and ends before
            // the next look makes the connection due `idle` after it ended, hence `now + idle`)
            let deadline = self.opened + limits.header_read;
            return (now < deadline).then(|| deadline.min(now + limits.idle));
        }
        let deadline = self.opened + Duration::from_millis(self.last_done_ms.load(Ordering::Acquire)) + limits.idle;
        (now < deadline).then_some(deadline)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let watch = &self.0;
        let ms = u64::try_from(watch.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        watch.last_done_ms.store(ms, Ordering::Release);
        watch.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(header_read: u64, idle: u64) -> Limits {
        Limits {
            header_read: Duration::from_secs(header_read),
            idle: Duration::from_secs(idle),
            grace: Duration::from_secs(1),
            max_connections: 1,
            max_per_ip: 1,
            exempt: Arc::from(Vec::new()),
        }
    }

    #[test]
    fn a_connection_without_a_request_is_due_at_the_header_timeout() {
        let watch = Watch::new();
        let l = limits(10, 60);
        let opened = watch.opened;
        assert_eq!(watch.next_check(&l, opened), Some(opened + Duration::from_secs(10)));
        assert_eq!(watch.next_check(&l, opened + Duration::from_secs(10)), None);
        // with a shorter idle timeout it looks again sooner, in case a request comes and goes meanwhile
        let l = limits(10, 2);
        assert_eq!(watch.next_check(&l, opened), Some(opened + Duration::from_secs(2)));
    }

    #[test]
    fn a_connection_is_due_idle_after_its_last_request_ended_and_never_while_one_is_in_flight() {
        let watch = Arc::new(Watch::new());
        let l = limits(10, 5);
        let opened = watch.opened;
        let request = watch.begin();
        let late = opened + Duration::from_secs(30);
        assert_eq!(watch.next_check(&l, late), Some(late + Duration::from_secs(5)), "in flight: not due");
        drop(request);
        let due = watch.next_check(&l, opened).expect("not due at once");
        assert!(due >= opened + Duration::from_secs(5) && due < opened + Duration::from_secs(6), "{:?}", due - opened);
        assert_eq!(watch.next_check(&l, due), None);
    }
}
