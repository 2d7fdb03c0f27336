//! Paying: the payment method chosen on the summary submits the order at its price and shows how to pay. An
//! order awaiting payment stays in view: /start shows its payment details again, the menu and My services list
//! it, the same button pressed twice shows the same details, and it can be cancelled until a payment of it is
//! being checked.

use teloxide::types::{CopyTextButton, InlineKeyboardButton, InlineKeyboardButtonKind};

use super::buy::refusal_screen;
use super::{HandlerError, HandlerResult};
use crate::bot::callback::Cb;
use crate::bot::ui::{Ctx, Screen, button, html};
use crate::domain::status::PaymentMethod;
use crate::error::AppError;
use crate::i18n::{self, Arg};
use crate::payments::GatewayError;
use crate::services::orders::{self, Submitted};
use crate::services::payments::online;
use crate::services::users;

/// How to pay an order awaiting payment: by card, or online (the gateway's page, started here).
pub async fn payment_screen(ctx: &Ctx<'_>, order: &Submitted) -> Result<Screen, HandlerError> {
    match order.method {
        PaymentMethod::Card => Ok(card_screen(ctx, order)),
        method => online_screen(ctx, order, method).await,
    }
}

/// An online payment: a button to the gateway's page for the exact amount, or — the gateway down — a clear
/// message and a button to try again (the order stays payable).
async fn online_screen(ctx: &Ctx<'_>, order: &Submitted, method: PaymentMethod) -> Result<Screen, HandlerError> {
    let app = ctx.app;
    let lang = ctx.lang();
    let cancel =
        vec![button(ctx.t("btn-cancel-order"), Cb::Cancel(order.order_id)), button(ctx.t("btn-menu"), Cb::Menu)];
    let args = [("order", i18n::number(lang, order.order_id).into()), ("price", order.price.format(lang).into())];
    match online::start(&app.pool, &app.settings, &app.gateways, ctx.user.id, order.order_id, method).await? {
        Ok(started) => {
            let pay = InlineKeyboardButton::url(
                ctx.t_args("btn-pay-online", &[("price", order.price.format(lang).into())]),
                started.url.parse().map_err(|e| AppError::Internal(anyhow::anyhow!("checkout URL: {e}")))?,
            );
            Ok(Screen::new(ctx.t_args("pay-online", &args), vec![vec![pay], cancel]))
        }
        Err(e) => {
            let key = match e {
                GatewayError::Unavailable(_) => "pay-online-unavailable",
                GatewayError::Refused(_) => "pay-online-refused",
            };
            let retry = vec![button(ctx.t("btn-try-again"), Cb::Order(order.order_id))];
            Ok(Screen::new(ctx.t_args(key, &args), vec![retry, cancel]))
        }
    }
}

/// Card-to-card: the card (with a copy button), the exact amount, the deadline and how long reviews take; with
/// Cancel.
fn card_screen(ctx: &Ctx<'_>, order: &Submitted) -> Screen {
    let settings = &ctx.app.settings.payments.card;
    let card = order
        .card
        .clone()
        .or_else(|| crate::services::payments::card_for(&ctx.app.settings, order.order_id, order.price.currency()));
    let Some(card) = card else {
        return Screen::new(ctx.t("pay-none"), vec![vec![button(ctx.t("btn-menu"), Cb::Menu)]]);
    };
    let lang = ctx.lang();
    let deadline = order.pay_by.map(|t| i18n::moment(lang, t)).unwrap_or_default();
    let text = ctx.t_args(
        "pay-card",
        &[
            ("order", i18n::number(lang, order.order_id).into()),
            ("price", order.price.format(lang).into()),
            ("card", html(&card.number).into()),
            ("holder", html(&card.holder).into()),
            ("bank", html(&card.bank).into()),
            ("deadline", deadline.into()),
            ("n", Arg::Count(settings.review_mins.into())),
            ("minutes", i18n::number(lang, settings.review_mins.into()).into()),
        ],
    );
    let copy = InlineKeyboardButton::new(
        ctx.t("btn-copy-card"),
        InlineKeyboardButtonKind::CopyText(CopyTextButton { text: card.number.clone() }),
    );
    Screen::new(
        text,
        vec![
            vec![copy],
            vec![button(ctx.t("btn-cancel-order"), Cb::Cancel(order.order_id)), button(ctx.t("btn-menu"), Cb::Menu)],
        ],
    )
}

/// A button per order awaiting payment (newest first), leading to its payment details.
pub async fn awaiting_buttons(ctx: &Ctx<'_>) -> Result<Vec<Vec<InlineKeyboardButton>>, HandlerError> {
    let orders = orders::awaiting_payment(&ctx.app.pool, ctx.user.id).await?;
    Ok(orders
        .iter()
        .map(|o| {
            let label = ctx.t_args(
                "btn-order-awaiting",
                &[("order", i18n::number(ctx.lang(), o.order_id).into()), ("price", o.price.format(ctx.lang()).into())],
            );
            vec![button(label, Cb::Order(o.order_id))]
        })
        .collect())
}

/// The customer's newest order awaiting payment, if any.
pub async fn newest_awaiting(ctx: &Ctx<'_>) -> Result<Option<Submitted>, HandlerError> {
    Ok(orders::awaiting_payment(&ctx.app.pool, ctx.user.id).await?.into_iter().next())
}

/// The payment method was chosen: the order is submitted at today's price and the customer told how to pay
/// (the same screen again when it was submitted already).
pub async fn pay(ctx: &Ctx<'_>, order_id: i64, method: PaymentMethod) -> Result<Option<String>, HandlerError> {
    let app = ctx.app;
    let currency = users::currency(&app.settings, &ctx.user);
    let shop = orders::Shop { settings: &app.settings, gateways: &app.gateways, rates: app.rates.as_ref() };
    let submitted = orders::submit(&app.pool, shop, ctx.user.id, order_id, method, currency).await?;
    let screen = match submitted {
        Ok(order) => payment_screen(ctx, &order).await?,
        Err(refusal) => refusal_screen(ctx, refusal, None),
    };
    ctx.show(screen).await?;
    Ok(None)
}

/// The payment details of one order awaiting payment.
pub async fn order(ctx: &Ctx<'_>, order_id: i64) -> HandlerResult {
    let order = orders::awaiting(&ctx.app.pool, ctx.user.id, order_id).await?;
    let screen = payment_screen(ctx, &order).await?;
    ctx.show(screen).await?;
    Ok(())
}

/// Cancels the unfinished purchase or the order awaiting payment, and shows the menu; an order whose receipt is
/// being checked stays, and the customer is told so.
pub async fn cancel(ctx: &Ctx<'_>, order_id: i64) -> Result<Option<String>, HandlerError> {
    match orders::cancel(&ctx.app.pool, ctx.user.id, order_id).await? {
        orders::Cancel::Cancelled => {
            super::menu::main(ctx).await?;
            Ok(Some(ctx.t("purchase-cancelled")))
        }
        orders::Cancel::BeingChecked => {
            let text = ctx.t_args("receipt-already", &[("order", i18n::number(ctx.lang(), order_id).into())]);
            ctx.show(Screen::new(text, vec![vec![button(ctx.t("btn-menu"), Cb::Menu)]])).await?;
            Ok(None)
        }
    }
}
