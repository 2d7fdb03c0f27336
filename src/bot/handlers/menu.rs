//! The main menu (with the orders awaiting payment), /start (the offer to resume an unfinished purchase, or the
//! payment details of an order awaiting payment), help and language.

use super::{HandlerError, HandlerResult};
use crate::bot::callback::Cb;
use crate::bot::ui::{Ctx, Screen, button, html};
use crate::domain::Language;
use crate::i18n;
use crate::services::{orders, users};

/// The main menu screen: the orders awaiting payment first, if any.
pub async fn main_screen(ctx: &Ctx<'_>) -> Result<Screen, HandlerError> {
    let name = ctx.user.first_name.clone().unwrap_or_default();
    let mut text = ctx.t_args("menu-title", &[("name", html(&name).into())]);
    let mut rows = super::pay::awaiting_buttons(ctx).await?;
    if !rows.is_empty() {
        text = format!("{text}\n\n{}", ctx.t("menu-awaiting-payment"));
    }
    rows.extend([
        vec![button(ctx.t("menu-buy"), Cb::Buy), button(ctx.t("menu-trial"), Cb::Trial)],
        vec![button(ctx.t("menu-services"), Cb::Services)],
        vec![button(ctx.t("menu-language"), Cb::Language), button(ctx.t("menu-help"), Cb::Help)],
    ]);
    Ok(Screen::new(text, rows))
}

pub async fn main(ctx: &Ctx<'_>) -> HandlerResult {
    ctx.show(main_screen(ctx).await?).await?;
    Ok(())
}

/// `/start`: the unfinished purchase to pick up where the customer left, or the order awaiting payment with its
/// payment details, or the menu.
pub async fn start(ctx: &Ctx<'_>) -> HandlerResult {
    if let Some(draft) = orders::current_draft(&ctx.app.pool, ctx.user.id).await?
        && draft.selection.is_started()
    {
        let summary = crate::bot::handlers::buy::describe(ctx, &draft.selection).await?;
        let text = ctx.t_args("resume-offer", &[("summary", summary.into())]);
        let screen = Screen::new(
            text,
            vec![
                vec![button(ctx.t("btn-resume"), Cb::Resume(draft.order_id))],
                vec![button(ctx.t("btn-start-over"), Cb::Buy), button(ctx.t("btn-menu"), Cb::Menu)],
            ],
        );
        ctx.send(screen).await?;
        return Ok(());
    }
    if let Some(order) = super::pay::newest_awaiting(ctx).await? {
        let screen = super::pay::payment_screen(ctx, &order).await?;
        ctx.send(screen).await?;
        return Ok(());
    }
    ctx.send(main_screen(ctx).await?).await?;
    Ok(())
}

/// Back from a payment page (`/start paid_<order>`): how the order stands. The bot tells the customer on its own
/// when the payment is confirmed; this is for those who come back first.
pub async fn back_from_payment(ctx: &Ctx<'_>, order_id: i64) -> HandlerResult {
    use crate::domain::status::OrderStatus;
    let args = [("order", i18n::number(ctx.lang(), order_id).into())];
    let screen = match orders::status_of(&ctx.app.pool, ctx.user.id, order_id).await? {
        Some(OrderStatus::Paid | OrderStatus::Fulfilled) => Screen::new(
            ctx.t_args("paid-order-paid", &args),
            vec![vec![button(ctx.t("menu-services"), Cb::Services)], vec![button(ctx.t("btn-menu"), Cb::Menu)]],
        ),
        Some(OrderStatus::AwaitingPayment) => Screen::new(
            ctx.t_args("paid-order-waiting", &args),
            vec![
                vec![button(ctx.t("btn-payment-details"), Cb::Order(order_id))],
                vec![button(ctx.t("btn-menu"), Cb::Menu)],
            ],
        ),
        _ => return start(ctx).await,
    };
    ctx.send(screen).await?;
    Ok(())
}

pub async fn help(ctx: &Ctx<'_>) -> HandlerResult {
    let text = ctx.t_args("help", &[("support", html(&ctx.app.settings.shop.support_contact).into())]);
    ctx.show(Screen::new(text, vec![vec![button(ctx.t("btn-menu"), Cb::Menu)]])).await?;
    Ok(())
}

pub async fn language(ctx: &Ctx<'_>) -> HandlerResult {
    let rows = Language::ALL
        .iter()
        .map(|l| vec![button(i18n::t(*l, "language-name"), Cb::SetLanguage(*l))])
        .chain([vec![button(ctx.t("btn-menu"), Cb::Menu)]])
        .collect();
    ctx.show(Screen::new(ctx.t("language-choose"), rows)).await?;
    Ok(())
}

pub async fn set_language(ctx: &Ctx<'_>, lang: Language) -> Result<Option<String>, HandlerError> {
    users::set_language(&ctx.app.pool, ctx.user.id, lang).await?;
    let mut user = ctx.user.clone();
    user.language = lang;
    let switched = Ctx { user, ..*ctx };
    switched.show(main_screen(&switched).await?).await?;
    Ok(Some(i18n::t(lang, "language-set")))
}

/// Anything we do not understand: say so, and show the menu.
pub async fn unknown(ctx: &Ctx<'_>) -> HandlerResult {
    let mut screen = main_screen(ctx).await?;
    screen.text = format!("{}\n\n{}", ctx.t("unknown-message"), screen.text);
    ctx.send(screen).await?;
    Ok(())
}
