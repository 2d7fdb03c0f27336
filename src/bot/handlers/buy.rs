//! Buying: location → duration → devices → data → summary with the price → payment method (`pay`). Every step
//! edits the same message, has a Back button, and is stored in the draft order, so /start (or a restart of the
//! service) resumes it where the customer left. Prices are in the draft's currency (the customer's, fixed when
//! they were first met), whatever language the bot speaks. Renewals and top-ups a subscription cannot take are
//! refused with the reason before anything is bought.

use super::{HandlerError, HandlerResult};
use crate::bot::callback::Cb;
use crate::bot::ui::{Ctx, Screen, button, html};
use crate::domain::draft::{Selection, Step};
use crate::domain::status::PaymentMethod;
use crate::domain::{Currency, DataCap, Language};
use crate::error::AppError;
use crate::i18n::{self, Arg};
use crate::services::orders::{self, Choice, Draft, Refusal};
use crate::services::shop::{self, distinct};
use crate::services::users;

/// The currency a draft is priced in.
fn currency(ctx: &Ctx<'_>, draft: &Draft) -> Currency {
    draft.currency(users::currency(&ctx.app.settings, &ctx.user))
}

pub fn days_text(lang: Language, days: i32) -> String {
    i18n::t_args(lang, "days", &[("n", Arg::Count(days.into())), ("days", i18n::number(lang, days.into()).into())])
}

pub fn devices_text(lang: Language, n: i32) -> String {
    i18n::t_args(lang, "devices", &[("n", Arg::Count(n.into())), ("devices", i18n::number(lang, n.into()).into())])
}

pub fn data_text(lang: Language, cap: DataCap) -> String {
    match (cap, cap.whole_gb(), cap.whole_mb()) {
        (DataCap::Unlimited, ..) => i18n::t(lang, "data-unlimited"),
        (_, None, Some(mb)) => i18n::t_args(lang, "data-mb", &[("mb", i18n::number(lang, mb).into())]),
        (DataCap::Limited(bytes), ..) => i18n::t_args(lang, "data-gb", &[("gb", i18n::gigabytes(lang, bytes).into())]),
    }
}

/// A one-line description of what has been chosen so far.
pub async fn describe(ctx: &Ctx<'_>, s: &Selection) -> Result<String, HandlerError> {
    let lang = ctx.lang();
    let mut parts = Vec::new();
    if let Some(code) = &s.location {
        let place = shop::location(&ctx.app.pool, code).await.map(|l| format!("{} {}", l.flag, l.name(lang)));
        parts.push(html(&place.unwrap_or_else(|_| code.clone())));
    }
    if let Some(d) = s.duration_days {
        parts.push(days_text(lang, d));
    }
    if let Some(n) = s.seats {
        parts.push(devices_text(lang, n));
    }
    if let Some(cap) = s.data {
        parts.push(data_text(lang, cap));
    }
    Ok(parts.join(" · "))
}

/// The draft an earlier attempt of this update started and showed before it ended without finishing (an error
/// after it, a crash): the customer is looking at it, so it is kept — starting another would make its buttons stale.
async fn shown_before(ctx: &Ctx<'_>, kind: &str, subscription_id: Option<i64>) -> Result<Option<Draft>, HandlerError> {
    if !ctx.progress.sent_before() {
        return Ok(None);
    }
    let draft = orders::current_draft(&ctx.app.pool, ctx.user.id).await?;
    Ok(draft.filter(|d| d.kind == kind && d.subscription_id == subscription_id))
}

pub async fn start(ctx: &Ctx<'_>) -> HandlerResult {
    if let Some(draft) = shown_before(ctx, orders::NEW, None).await? {
        return show_step(ctx, &draft).await;
    }
    let currency = users::currency(&ctx.app.settings, &ctx.user);
    let draft = orders::start(&ctx.app.pool, ctx.user.id, currency).await?;
    show_step(ctx, &draft).await
}

pub async fn resume(ctx: &Ctx<'_>, order_id: i64) -> HandlerResult {
    match orders::current_draft(&ctx.app.pool, ctx.user.id).await? {
        Some(draft) if draft.order_id == order_id => show_step(ctx, &draft).await,
        _ => Err(AppError::conflict("this purchase is no longer open").into()),
    }
}

pub async fn choose(ctx: &Ctx<'_>, order_id: i64, choice: Choice) -> Result<Option<String>, HandlerError> {
    let draft = orders::choose(&ctx.app.pool, ctx.user.id, order_id, choice).await?;
    show_step(ctx, &draft).await?;
    Ok(None)
}

pub async fn choose_data(ctx: &Ctx<'_>, order_id: i64, mb: Option<i64>) -> Result<Option<String>, HandlerError> {
    let cap = match mb {
        None => DataCap::Unlimited,
        Some(mb) => DataCap::from_mb(mb).map_err(|_| AppError::invalid("bad data choice"))?,
    };
    choose(ctx, order_id, Choice::Data(cap)).await
}

pub async fn renew(ctx: &Ctx<'_>, subscription_id: i64) -> HandlerResult {
    if let Some(draft) = shown_before(ctx, orders::RENEWAL, Some(subscription_id)).await? {
        return show_step(ctx, &draft).await;
    }
    let currency = users::currency(&ctx.app.settings, &ctx.user);
    match orders::start_renewal(&ctx.app.pool, ctx.user.id, subscription_id, currency).await? {
        Ok(draft) => show_step(ctx, &draft).await,
        Err(refusal) => Ok(ctx.show(refusal_screen(ctx, refusal, Some(subscription_id))).await?),
    }
}

pub async fn top_up(ctx: &Ctx<'_>, subscription_id: i64) -> HandlerResult {
    if let Some(draft) = shown_before(ctx, orders::TOPUP, Some(subscription_id)).await? {
        return show_step(ctx, &draft).await;
    }
    let currency = users::currency(&ctx.app.settings, &ctx.user);
    match orders::start_topup(&ctx.app.pool, ctx.user.id, subscription_id, currency).await? {
        Ok(draft) => show_step(ctx, &draft).await,
        Err(refusal) => Ok(ctx.show(refusal_screen(ctx, refusal, Some(subscription_id))).await?),
    }
}

/// Why a purchase cannot be made, and where to go instead.
pub fn refusal_screen(ctx: &Ctx<'_>, refusal: Refusal, subscription: Option<i64>) -> Screen {
    let support = || vec![("support", html(&ctx.app.settings.shop.support_contact).into())];
    let (text, next) = match refusal {
        Refusal::Trial => (ctx.t("extend-trial"), Some(button(ctx.t("menu-buy"), Cb::Buy))),
        Refusal::Pending => {
            (ctx.t("extend-pending"), subscription.map(|s| button(ctx.t("btn-service"), Cb::Service(s))))
        }
        Refusal::Revoked => (ctx.t_args("extend-revoked", &support()), Some(button(ctx.t("menu-buy"), Cb::Buy))),
        Refusal::Expired => (ctx.t("topup-expired"), subscription.map(|s| button(ctx.t("btn-renew"), Cb::Renew(s)))),
        Refusal::Unlimited => {
            (ctx.t("topup-unlimited"), subscription.map(|s| button(ctx.t("btn-service"), Cb::Service(s))))
        }
        Refusal::NoPrice => (ctx.t_args("price-unavailable", &support()), None),
    };
    let mut rows: Vec<Vec<_>> = next.into_iter().map(|b| vec![b]).collect();
    rows.push(vec![button(ctx.t("btn-menu"), Cb::Menu)]);
    Screen::new(text, rows)
}

/// The screen of the draft's current step.
async fn show_step(ctx: &Ctx<'_>, draft: &Draft) -> HandlerResult {
    let screen = step_screen(ctx, draft).await?;
    ctx.show(screen).await?;
    Ok(())
}

async fn step_screen(ctx: &Ctx<'_>, draft: &Draft) -> Result<Screen, HandlerError> {
    let (lang, pool, o) = (ctx.lang(), &ctx.app.pool, draft.order_id);
    let s = &draft.selection;
    let nav = vec![button(ctx.t("btn-back"), Cb::Back(o)), button(ctx.t("btn-cancel"), Cb::Cancel(o))];
    let step = s.step();
    if step == Step::Location {
        // how many servers serve a location is the shop's business: admins see it, customers do not
        let admin = users::is_admin(pool, &ctx.app.settings, ctx.user.telegram_id).await?;
        let mut rows = Vec::new();
        for l in shop::locations(pool).await?.into_iter().filter(|l| l.free_seats > 0) {
            let label = if admin {
                ctx.t_args(
                    "location-item",
                    &[
                        ("flag", l.flag.clone().into()),
                        ("name", l.name(lang).into()),
                        ("n", Arg::Count(l.servers)),
                        ("servers", i18n::number(lang, l.servers).into()),
                    ],
                )
            } else {
                format!("{} {}", l.flag, l.name(lang))
            };
            rows.push(vec![button(label, Cb::Location(o, l.code))]);
        }
        let text = if rows.is_empty() { ctx.t("buy-no-locations") } else { ctx.t("buy-location") };
        rows.push(vec![button(ctx.t("btn-menu"), Cb::Menu), button(ctx.t("btn-cancel"), Cb::Cancel(o))]);
        return Ok(Screen::new(text, rows));
    }
    let location = s.location.clone().unwrap_or_default();
    let plans = shop::plans_in(pool, &location).await?;
    let picked = describe(ctx, s).await?;
    let matching = |p: &&shop::PlanOption| {
        s.duration_days.is_none_or(|d| p.duration_days == d) && s.seats.is_none_or(|n| p.seats == n)
    };
    let (title, options): (&str, Vec<Vec<_>>) = match step {
        Step::Duration => (
            "buy-duration",
            distinct(plans.iter().map(|p| p.duration_days))
                .into_iter()
                .map(|d| vec![button(days_text(lang, d), Cb::Duration(o, d))])
                .collect(),
        ),
        Step::Devices => (
            "buy-devices",
            distinct(plans.iter().filter(matching).map(|p| p.seats))
                .into_iter()
                .map(|n| vec![button(devices_text(lang, n), Cb::Devices(o, n))])
                .collect(),
        ),
        Step::Data => (
            "buy-data",
            plans
                .iter()
                .filter(matching)
                .filter_map(|p| {
                    // without a price here, the summary says why it cannot be sold
                    let label = match p.price_in(currency(ctx, draft), ctx.app.rates.as_ref()) {
                        Some(price) => format!("{} — {}", data_text(lang, p.data), price.format(lang)),
                        None => data_text(lang, p.data),
                    };
                    let mb = match p.data {
                        DataCap::Unlimited => None,
                        cap => Some(cap.whole_mb()?),
                    };
                    Some(vec![button(label, Cb::Data(o, mb))])
                })
                .collect(),
        ),
        _ => return summary(ctx, draft, nav).await,
    };
    let text = format!("{}\n\n{}", ctx.t_args(title, &[]), ctx.t_args("buy-so-far", &[("picked", picked.into())]));
    let mut rows = options;
    rows.push(nav);
    Ok(Screen::new(text, rows))
}

/// Everything chosen: the plan, its price in the customer's currency, and how to pay.
async fn summary(
    ctx: &Ctx<'_>,
    draft: &Draft,
    nav: Vec<teloxide::types::InlineKeyboardButton>,
) -> Result<Screen, HandlerError> {
    let quote = match orders::quote(&ctx.app.pool, draft, currency(ctx, draft), ctx.app.rates.as_ref()).await? {
        Ok(quote) => quote,
        Err(refusal) => {
            let mut screen = refusal_screen(ctx, refusal, draft.subscription_id);
            screen.keyboard = Some(teloxide::types::InlineKeyboardMarkup::new([nav]));
            return Ok(screen);
        }
    };
    let picked = describe(ctx, &draft.selection).await?;
    let key = match draft.kind.as_str() {
        orders::RENEWAL => "buy-summary-renewal",
        orders::TOPUP => "buy-summary-topup",
        _ => "buy-summary",
    };
    let methods = orders::payment_methods(&ctx.app.settings, &ctx.app.gateways, quote.price.currency());
    let mut text = ctx.t_args(key, &[("picked", picked.into()), ("price", quote.price.format(ctx.lang()).into())]);
    let mut rows: Vec<Vec<_>> =
        methods.iter().map(|m| vec![button(ctx.t(method_key(*m)), Cb::Pay(draft.order_id, *m))]).collect();
    if methods.is_empty() {
        text = format!("{text}\n\n{}", ctx.t("pay-none"));
    }
    rows.push(nav);
    Ok(Screen::new(text, rows))
}

fn method_key(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::Card => "pay-method-card",
        PaymentMethod::Stripe => "pay-method-stripe",
        PaymentMethod::Zarinpal => "pay-method-zarinpal",
    }
}
