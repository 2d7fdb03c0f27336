//! Use cases shared by the bot, the HTTP API and the jobs. They own transactions and state transitions.

pub mod access;
pub mod catalog;
pub mod health;
pub mod nodes;
pub mod notify;
pub mod queue;
pub mod servers;
pub mod subscriptions;
pub mod sweeps;
