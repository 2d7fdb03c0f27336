//! Payment gateways: what the shop asks of Stripe and Zarinpal. Each gateway turns an order's payment into a
//! place for the customer to pay (`checkout`); how a gateway then reports the outcome is its own (Stripe's signed
//! webhooks, Zarinpal's callback and verify), and ends in `services::payments::online::settle`. Gateways know
//! nothing of orders, chats or HTTP routes; they only speak their protocol (reqwest, timeouts, safe retries).

pub mod stripe;
pub mod zarinpal;

use std::time::Duration;

use crate::domain::status::PaymentMethod;
use crate::domain::{Currency, Money};

/// What a payment attempt asks a gateway for.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutRequest {
    /// Our payment id and order id (carried in the gateway's metadata).
    pub payment_id: i64,
    pub order_id: i64,
    /// Our payment's public id (a UUID, unique across installs sharing one gateway account): carried in the
    /// gateway's metadata so a report is matched to this install's payment and no other.
    pub reference: String,
    /// Exactly what the order costs; never the customer's word.
    pub amount: Money,
    /// What the customer sees on the gateway's page.
    pub description: String,
    /// One key per payment attempt (Stripe `Idempotency-Key`): a retried request cannot pay twice.
    pub idempotency_key: String,
    /// Where the customer lands after paying or giving up (Stripe), or where the gateway sends them back
    /// (Zarinpal's callback).
    pub success_url: String,
    pub cancel_url: String,
    pub callback_url: String,
    /// How long the customer has to pay.
    pub expires_in: Duration,
}

/// Where the customer pays, and the gateway's id for it (a Checkout Session id, a Zarinpal authority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub processor_id: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Timed out, could not connect, or a 5xx / rate limit: the order stays payable; try again later.
    #[error("the payment service is unavailable: {0}")]
    Unavailable(String),
    /// The gateway refused the request (bad amount, bad credentials, …): trying again will not help.
    #[error("the payment service refused: {0}")]
    Refused(String),
}

/// A gateway the shop can send customers to. (`Any`: a service that needs more of one gateway than this trait,
/// such as Zarinpal's verify, takes it back by its type.)
#[async_trait::async_trait]
pub trait Gateway: std::any::Any + Send + Sync {
    fn method(&self) -> PaymentMethod;
    /// The currencies it takes.
    fn currencies(&self) -> &'static [Currency];
    /// Starts a payment: where to send the customer.
    async fn checkout(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError>;
}
