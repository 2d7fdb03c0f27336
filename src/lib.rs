//! vpnshop: a Telegram VPN shop in one binary. See ARCHITECTURE.md for the shape of the system.

pub mod app;
pub mod backup;
pub mod bot;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod i18n;
pub mod jobs;
pub mod metrics;
pub mod payments;
pub mod provision;
pub mod services;
pub mod telemetry;
