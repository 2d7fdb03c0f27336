//! Stripe's background work: the `stripe_reconcile` sweep, for webhooks that never came — pending Stripe payments
//! a few minutes old are looked up by their Checkout Session and settled (`services::payments::stripe::reconcile`);
//! one instance runs it at a time (the scheduler's lock). Each payment is settled under its own row lock, so a
//! webhook arriving meanwhile is safe.

use std::sync::Arc;

use sqlx::PgPool;

use super::scheduler::Sweep;
use crate::config::Settings;
use crate::payments::stripe::Stripe;
use crate::services::payments::online::Gateways;
use crate::services::payments::stripe;

pub struct ReconcileSweep {
    pub pool: PgPool,
    pub settings: Settings,
    /// `None` while Stripe is not configured: the sweep does nothing.
    pub stripe: Option<Arc<Stripe>>,
}

impl ReconcileSweep {
    pub fn new(pool: &PgPool, settings: &Settings, gateways: &Gateways) -> ReconcileSweep {
        ReconcileSweep { pool: pool.clone(), settings: settings.clone(), stripe: stripe::client(gateways) }
    }
}

#[async_trait::async_trait]
impl Sweep for ReconcileSweep {
    /// How many payments it settled (paid or expired).
    async fn run(&self) -> anyhow::Result<u64> {
        let Some(client) = &self.stripe else { return Ok(0) };
        let done = stripe::reconcile(&self.pool, &self.settings, client).await?;
        Ok(done.paid + done.expired)
    }
}
