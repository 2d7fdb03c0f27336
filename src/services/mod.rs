//! Use cases shared by the bot, the HTTP API and the jobs. They own transactions and state transitions.

pub mod access;
pub mod audit;
pub mod auth;
pub mod broadcasts;
pub mod catalog;
pub mod customers;
pub mod gauges;
pub mod health;
pub mod inbox;
pub mod nodes;
pub mod notify;
pub mod orders;
pub mod payments;
pub mod queue;
pub mod ratelimit;
pub mod servers;
pub mod shop;
pub mod stats;
pub mod subscriptions;
pub mod sweeps;
pub mod trials;
pub mod users;
