//! `vpnshop payment pending | show | accept | reject`: card payments from the command line, through the same
//! decision path as the bot (exactly one decision wins; the audit log says it came from the CLI).

use clap::Subcommand;

use crate::app::AppState;
use crate::config::Settings;
use crate::error::AppError;
use crate::services::payments::review::{self, Decision, RejectReason, Reviewer, Verdict};
use crate::services::payments::{self, PaymentView};

#[derive(Debug, Subcommand)]
pub enum PaymentCommand {
    /// Receipts waiting for review, oldest first.
    Pending,
    /// One payment: its order, customer, receipt and decision.
    Show { id: i64 },
    /// Accept a payment under review: its order is fulfilled and the customer told.
    Accept { id: i64 },
    /// Reject a payment under review (the customer may send a new receipt), or an auto-accepted one (what it
    /// granted is taken back).
    Reject {
        id: i64,
        /// wrong_amount, unreadable, not_received, duplicate or other
        #[arg(long, default_value = "other", value_parser = super::parse_text::<RejectReason>)]
        reason: RejectReason,
        /// The reason in your own words (shown to the customer).
        #[arg(long)]
        text: Option<String>,
    },
}

pub(super) async fn run(settings: Settings, cmd: PaymentCommand) -> anyhow::Result<()> {
    let state = AppState::build(settings)?;
    let (pool, settings) = (&state.pool, &state.settings);
    let verdict = match cmd {
        PaymentCommand::Pending => {
            let queue = review::pending(pool, 100).await?;
            if queue.is_empty() {
                println!("no receipts are waiting for review");
            }
            for v in &queue {
                print_line(v);
            }
            return Ok(());
        }
        PaymentCommand::Show { id } => {
            print_view(&payments::view(pool, id).await?);
            return Ok(());
        }
        PaymentCommand::Accept { .. } => Verdict::Accept,
        PaymentCommand::Reject { reason, ref text, .. } => Verdict::Reject { reason, text: text.clone() },
    };
    let (PaymentCommand::Accept { id } | PaymentCommand::Reject { id, .. }) = cmd else { unreachable!() };
    match review::decide(pool, settings, id, &verdict, &Reviewer::cli()).await? {
        Decision::Decided { status } => println!("payment {id}: {status}; the customer is told"),
        Decision::Already { status, by, at } => {
            let at = at.map(|t| t.to_rfc3339()).unwrap_or_default();
            return Err(AppError::conflict(format!(
                "payment {id} is already {status} (by {} at {at})",
                by.as_deref().unwrap_or("-")
            ))
            .into());
        }
        Decision::NotDue => unreachable!("only auto-accept can be not due"),
    }
    Ok(())
}

fn print_line(v: &PaymentView) {
    let p = &v.payment;
    println!(
        "payment {}  order {}  {}  {}  sent {}  customer {}",
        p.id,
        v.order.id,
        v.amount.format(crate::domain::Language::En),
        p.status,
        p.submitted_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        payments::person(v.customer.username.as_deref(), v.customer.first_name.as_deref(), v.customer.telegram_id),
    );
}

fn print_view(v: &PaymentView) {
    print_line(v);
    let p = &v.payment;
    println!("  method:   {}", p.method);
    println!("  order:    {} ({}, {})", v.order.id, v.order.kind, v.order.status);
    println!("  history:  {} paid, {} rejected", v.history.0, v.history.1);
    if let Some(due) = p.review_deadline {
        println!("  review due: {}", due.to_rfc3339());
    }
    if let Some(at) = p.decided_at {
        println!(
            "  decided:  {} by {} via {}",
            at.to_rfc3339(),
            p.decided_by.as_deref().unwrap_or("-"),
            p.decided_via.as_deref().unwrap_or("-")
        );
    }
    if let Some(reason) = p.reason.as_deref().or(p.reason_code.as_deref()) {
        println!("  reason:   {reason}");
    }
}
