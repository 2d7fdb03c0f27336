//! Use cases shared by the bot, the HTTP API and the jobs. They own transactions and state transitions.

pub mod catalog;
pub mod health;
pub mod queue;
pub mod servers;
