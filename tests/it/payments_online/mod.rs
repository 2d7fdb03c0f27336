//! Online payments (Stripe, Zarinpal) through the bot and the gateways' own routes, against local fakes of the
//! gateways (`support::stripe`, …), the fake Telegram, real Postgres and Redis (and a real node where a config
//! must work).

mod stripe;
mod stripe_bot;
mod stripe_reconcile;
mod zarinpal;
