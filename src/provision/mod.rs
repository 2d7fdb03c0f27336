//! Provisioning: making each V2Ray/Xray node's users equal to what the database says. Knows nothing of chats
//! or HTTP routes.
//!
//! - `node`: the `NodeApi` trait (the outside system) and its value types.
//! - `ssh` + `grpc` + `sshnode`: the real implementation — one long-lived SSH session per node, the core's gRPC
//!   API reached through an SSH `direct-tcpip` channel, config files written atomically over SSH.
//! - `render`: the node's config file from its base template and its active clients.
//! - `isolation`: the routing that keeps customers out of the node itself and its networks.
//! - `cert`: a node's TLS certificate (when it ends).
//! - `links` + `qr`: share links (`vmess://`, `vless://`), the subscription feed body, QR codes.

pub mod cert;
pub mod grpc;
pub mod isolation;
pub mod links;
pub mod node;
pub mod qr;
pub mod render;
pub mod ssh;
pub mod sshnode;

pub use node::{NodeApi, NodeError, NodeTarget, NodeUser, UserCounter};
