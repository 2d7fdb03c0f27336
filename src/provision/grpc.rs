//! A minimal gRPC client (unary calls over HTTP/2 with `h2`, messages with `prost`) and the few calls of the
//! V2Ray/Xray API we use: add/remove a user of an inbound, query user traffic counters, read the uptime.
//! It runs over any byte stream; in production that is an SSH `direct-tcpip` channel to the node's loopback.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::node::{NodeError, NodeUser, UserCounter};
use super::render::ClientInbound;
use crate::domain::server::{Core, Protocol};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcError {
    /// The connection broke or could not be set up: reopen it and retry.
    #[error("gRPC transport: {0}")]
    Transport(String),
    /// The server answered with a non-OK gRPC status.
    #[error("gRPC status {code}: {message}")]
    Status { code: u32, message: String },
    /// The answer was not valid gRPC (bad HTTP status, framing, or message).
    #[error("gRPC protocol: {0}")]
    Protocol(String),
}

impl From<GrpcError> for NodeError {
    fn from(e: GrpcError) -> Self {
        match e {
            GrpcError::Transport(m) => NodeError::Unreachable(format!("core API: {m}")),
            GrpcError::Status { message, .. } => NodeError::Api(message),
            GrpcError::Protocol(m) => NodeError::Api(m),
        }
    }
}

fn transport(e: impl std::fmt::Display) -> GrpcError {
    GrpcError::Transport(e.to_string())
}

/// An HTTP/2 connection carrying gRPC calls; calls may run concurrently. Dropping it closes the connection.
pub struct GrpcChannel {
    send: SendRequest<Bytes>,
    driver: JoinHandle<()>,
}

impl Drop for GrpcChannel {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl GrpcChannel {
    /// Performs the HTTP/2 handshake over `io` and drives the connection in a background task.
    pub async fn handshake<S>(io: S) -> Result<Self, GrpcError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, connection) = h2::client::handshake(io).await.map_err(transport)?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "core API connection ended");
            }
        });
        Ok(Self { send, driver })
    }

    /// Whether the connection has ended (then open a new one).
    pub fn is_closed(&self) -> bool {
        self.driver.is_finished()
    }

    /// One unary call: `path` is `/<package>.<Service>/<Method>`.
    #[tracing::instrument(name = "grpc", skip_all, fields(
        otel.name = path,
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.method = path,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn unary<Q: Message, R: Message + Default>(&self, path: &str, request: &Q) -> Result<R, GrpcError> {
        let answer = self.unary_inner(path, request).await;
        if answer.is_err() {
            tracing::Span::current().record("otel.status_code", "ERROR");
        }
        answer
    }

    async fn unary_inner<Q: Message, R: Message + Default>(&self, path: &str, request: &Q) -> Result<R, GrpcError> {
        let mut send = self.send.clone().ready().await.map_err(transport)?;
        let head = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://127.0.0.1{path}"))
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(())
            .map_err(|e| GrpcError::Protocol(e.to_string()))?;
        let (response, mut body_tx) = send.send_request(head, false).map_err(transport)?;
        body_tx.send_data(frame(request), true).map_err(transport)?;

        let (parts, mut body) = response.await.map_err(transport)?.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(GrpcError::Protocol(format!("HTTP status {}", parts.status)));
        }
        // trailers-only answers carry the status in the headers and have no body
        if let Some(status) = grpc_status(&parts.headers) {
            status?;
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(transport)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(transport)?;
        match trailers.as_ref().and_then(grpc_status) {
            Some(status) => status?,
            None if grpc_status(&parts.headers).is_some() => {}
            None => return Err(GrpcError::Protocol("answer without grpc-status".into())),
        }
        unframe(&data)
    }
}

/// A message with the gRPC length prefix (uncompressed).
fn frame(message: &impl Message) -> Bytes {
    let payload = message.encode_to_vec();
    let mut buf = BytesMut::with_capacity(5 + payload.len());
    buf.put_u8(0);
    buf.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    buf.extend_from_slice(&payload);
    buf.freeze()
}

/// The single message of a unary answer (an empty body decodes as the default message).
fn unframe<R: Message + Default>(data: &[u8]) -> Result<R, GrpcError> {
    if data.is_empty() {
        return Ok(R::default());
    }
    let bad = |m: &str| GrpcError::Protocol(m.to_owned());
    let (head, rest) = data.split_at_checked(5).ok_or_else(|| bad("short gRPC frame"))?;
    if head[0] != 0 {
        return Err(bad("compressed gRPC answers are not supported"));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let payload = rest.get(..len).ok_or_else(|| bad("truncated gRPC frame"))?;
    R::decode(payload).map_err(|e| GrpcError::Protocol(format!("cannot decode the answer: {e}")))
}

/// `Some(Ok(()))` for status 0, `Some(Err(Status))` otherwise, `None` when the map has no `grpc-status`.
fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), GrpcError>> {
    let code = headers.get("grpc-status")?;
    let code: u32 = code.to_str().ok().and_then(|c| c.trim().parse().ok()).unwrap_or(2);
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(|m| percent_encoding::percent_decode_str(m).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    Some(Err(GrpcError::Status { code, message }))
}

/// Protobuf messages of the V2Ray 4.34 / Xray API (field numbers from their `.proto` files).
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypedMessage {
        #[prost(string, tag = "1")]
        pub r#type: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct User {
        #[prost(uint32, tag = "1")]
        pub level: u32,
        #[prost(string, tag = "2")]
        pub email: String,
        #[prost(message, optional, tag = "3")]
        pub account: Option<TypedMessage>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AddUserOperation {
        #[prost(message, optional, tag = "1")]
        pub user: Option<User>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RemoveUserOperation {
        #[prost(string, tag = "1")]
        pub email: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AlterInboundRequest {
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(message, optional, tag = "2")]
        pub operation: Option<TypedMessage>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AlterInboundResponse {}

    /// `proxy.vmess.Account` (alter_id 0 = AEAD).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VmessAccount {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(uint32, tag = "2")]
        pub alter_id: u32,
    }

    /// `proxy.vless.Account`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VlessAccount {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, tag = "2")]
        pub flow: String,
        #[prost(string, tag = "3")]
        pub encryption: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryStatsRequest {
        #[prost(string, tag = "1")]
        pub pattern: String,
        #[prost(bool, tag = "2")]
        pub reset: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stat {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int64, tag = "2")]
        pub value: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryStatsResponse {
        #[prost(message, repeated, tag = "1")]
        pub stat: Vec<Stat>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SysStatsRequest {}

    /// Only the field we read; the others (1–9) are skipped when decoding.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SysStatsResponse {
        #[prost(uint32, tag = "10")]
        pub uptime: u32,
    }
}

/// The package prefix of the core's API messages.
fn prefix(core: Core) -> &'static str {
    match core {
        Core::V2ray => "v2ray.core.",
        Core::Xray => "xray.",
    }
}

fn typed(core: Core, name: &str, message: &impl Message) -> pb::TypedMessage {
    pb::TypedMessage { r#type: format!("{}{name}", prefix(core)), value: message.encode_to_vec() }
}

async fn alter_inbound(ch: &GrpcChannel, core: Core, tag: &str, op: pb::TypedMessage) -> Result<(), GrpcError> {
    let path = format!("/{}app.proxyman.command.HandlerService/AlterInbound", prefix(core));
    let request = pb::AlterInboundRequest { tag: tag.to_owned(), operation: Some(op) };
    ch.unary::<_, pb::AlterInboundResponse>(&path, &request).await.map(drop)
}

/// Adds `user` to inbound `tag` at runtime; "User … already exists." counts as success.
pub async fn add_user(ch: &GrpcChannel, core: Core, inbound: &ClientInbound, user: &NodeUser) -> Result<(), GrpcError> {
    let id = user.uuid.to_string();
    let tag = inbound.tag.as_str();
    let account = match inbound.protocol {
        Protocol::Vmess => typed(core, "proxy.vmess.Account", &pb::VmessAccount { id, alter_id: 0 }),
        Protocol::Vless => typed(
            core,
            "proxy.vless.Account",
            &pb::VlessAccount { id, flow: inbound.flow.clone().unwrap_or_default(), encryption: "none".into() },
        ),
    };
    let op =
        pb::AddUserOperation { user: Some(pb::User { level: 0, email: user.email.clone(), account: Some(account) }) };
    let op = typed(core, "app.proxyman.command.AddUserOperation", &op);
    match alter_inbound(ch, core, tag, op).await {
        Err(GrpcError::Status { message, .. }) if message.contains(&format!("User {} already exists", user.email)) => {
            Ok(())
        }
        other => other,
    }
}

/// Removes the user with `email` from inbound `tag` at runtime; "User … not found." counts as success.
pub async fn remove_user(ch: &GrpcChannel, core: Core, tag: &str, email: &str) -> Result<(), GrpcError> {
    let op = pb::RemoveUserOperation { email: email.to_owned() };
    let op = typed(core, "app.proxyman.command.RemoveUserOperation", &op);
    match alter_inbound(ch, core, tag, op).await {
        Err(GrpcError::Status { message, .. }) if message.contains(&format!("User {email} not found")) => Ok(()),
        other => other,
    }
}

/// Every `user>>>{email}>>>traffic>>>uplink|downlink` counter, read without reset, sorted by email.
pub async fn user_counters(ch: &GrpcChannel, core: Core) -> Result<Vec<(String, UserCounter)>, GrpcError> {
    let path = format!("/{}app.stats.command.StatsService/QueryStats", prefix(core));
    let request = pb::QueryStatsRequest { pattern: "user>>>".into(), reset: false };
    let response: pb::QueryStatsResponse = ch.unary(&path, &request).await?;
    Ok(parse_user_counters(&response.stat))
}

/// Groups raw stats into per-email counters (names that are not user traffic are ignored).
pub fn parse_user_counters(stats: &[pb::Stat]) -> Vec<(String, UserCounter)> {
    let mut by_email: BTreeMap<String, UserCounter> = BTreeMap::new();
    for stat in stats {
        let Some(rest) = stat.name.strip_prefix("user>>>") else { continue };
        let Some((email, direction)) = rest.rsplit_once(">>>traffic>>>") else { continue };
        let value = u64::try_from(stat.value).unwrap_or(0);
        let counter = by_email.entry(email.to_owned()).or_default();
        match direction {
            "uplink" => counter.uplink = value,
            "downlink" => counter.downlink = value,
            _ => {}
        }
    }
    by_email.into_iter().collect()
}

/// How long the core has been running (whole seconds).
pub async fn uptime(ch: &GrpcChannel, core: Core) -> Result<Duration, GrpcError> {
    let path = format!("/{}app.stats.command.StatsService/GetSysStats", prefix(core));
    let response: pb::SysStatsResponse = ch.unary(&path, &pb::SysStatsRequest {}).await?;
    Ok(Duration::from_secs(u64::from(response.uptime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_counters_are_grouped_by_email_and_other_stats_ignored() {
        let stat = |name: &str, value| pb::Stat { name: name.into(), value };
        let parsed = parse_user_counters(&[
            stat("user>>>b@x>>>traffic>>>downlink", 7),
            stat("user>>>a@x>>>traffic>>>uplink", 5),
            stat("inbound>>>proxy>>>traffic>>>uplink", 99),
            stat("user>>>b@x>>>traffic>>>uplink", 3),
        ]);
        let want = |uplink, downlink| UserCounter { uplink, downlink };
        assert_eq!(parsed, vec![("a@x".into(), want(5, 0)), ("b@x".into(), want(3, 7))]);
    }

    #[test]
    fn frames_round_trip() {
        let stat = pb::Stat { name: "n".into(), value: 42 };
        let decoded: pb::Stat = unframe(&frame(&stat)).expect("decodes");
        assert_eq!(decoded, stat);
        assert!(unframe::<pb::Stat>(&[0, 0, 0, 0, 9, 1]).is_err());
    }
}
