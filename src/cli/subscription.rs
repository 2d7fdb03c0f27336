//! `vpnshop subscription show | rotate-url | reset-seat | revoke`: what an operator does when a customer writes
//! "my link leaked" or "refund me".

use clap::Subcommand;

use crate::app::AppState;
use crate::config::Settings;
use crate::db;
use crate::domain::status::SubscriptionStatus;
use crate::error::AppError;
use crate::services::servers::Actor;
use crate::services::{access, subscriptions};

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Status, usage, the feed URL and the device links of a subscription.
    Show { id: i64 },
    /// Give it a new feed URL; the old one answers 404 from now on.
    RotateUrl { id: i64 },
    /// Give one device a new link (the old one stops working) and the subscription a new feed URL.
    ResetSeat {
        id: i64,
        /// The device number (1 = the first).
        #[arg(long)]
        seat: i32,
    },
    /// End it now: its clients leave the node and the customer is told.
    Revoke {
        id: i64,
        #[arg(long, default_value = "revoked by an operator")]
        reason: String,
    },
}

pub(super) async fn run(settings: Settings, cmd: SubscriptionCommand) -> anyhow::Result<()> {
    let state = AppState::build(settings)?;
    let (pool, jobs) = (&state.pool, &state.settings.jobs);
    match cmd {
        SubscriptionCommand::Show { id } => show(&state, id).await?,
        SubscriptionCommand::RotateUrl { id } => {
            let token = subscriptions::rotate_feed(pool, id, Actor::CLI).await?;
            println!("subscription {id}: new feed URL {}", access::feed_url(&state.settings, &token));
            println!("the old URL answers 404 from now on; send the new one to the customer");
        }
        SubscriptionCommand::ResetSeat { id, seat } => {
            subscriptions::reset_seat(pool, id, seat, jobs).await?;
            println!("subscription {id}: device {seat} has a new link, and the subscription a new feed URL");
            show(&state, id).await?;
        }
        SubscriptionCommand::Revoke { id, reason } => {
            if subscriptions::end(pool, id, SubscriptionStatus::Revoked, &reason, jobs).await? {
                println!("subscription {id} revoked; its clients leave the node and the customer is told");
            } else {
                let sub = db::subscriptions::find(pool, id).await?.ok_or(AppError::NotFound("subscription"))?;
                return Err(
                    AppError::conflict(format!("subscription {id} is {} and cannot be revoked", sub.status)).into()
                );
            }
        }
    }
    Ok(())
}

async fn show(state: &AppState, id: i64) -> anyhow::Result<()> {
    let pool = &state.pool;
    let sub = db::subscriptions::find(pool, id).await?.ok_or(AppError::NotFound("subscription"))?;
    let (up, down) = access::usage(pool, id).await?;
    let cap = sub.data_cap_bytes.map_or_else(|| "unlimited".to_owned(), |c| format!("{c} bytes"));
    println!("subscription {id}: {} ({}{})", sub.status, sub.location_code, if sub.is_trial { ", trial" } else { "" });
    println!("  devices:  {}", sub.seats);
    println!("  expires:  {}", sub.expires_at.map_or_else(|| "not started".to_owned(), |t| t.to_rfc3339()));
    println!("  used:     {} bytes up, {} bytes down, of {cap}", up, down);
    println!("  feed URL: {}", access::feed_url(&state.settings, &sub.token));
    for link in access::links(pool, &sub, &state.settings.provision.shop_name).await? {
        println!("  device {}: {}", link.seat, link.link);
    }
    Ok(())
}
