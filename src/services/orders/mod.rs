//! Purchases: the draft a customer builds step by step in the bot (resumable at any time), its submission for
//! payment with the price fixed at that moment, and the orders awaiting payment (shown with their payment details
//! until paid or cancelled). A draft's currency is the customer's, fixed when it starts; a plan without a price in
//! it is converted through the catalogue's rates, or refused. Renewals and top-ups (`extend`) check that the
//! subscription can take them before a draft is made, and again when it is submitted.

pub mod admin;
mod extend;

use sqlx::PgPool;

pub use self::extend::{Refusal, start_renewal, start_topup};
use crate::config::Settings;
use crate::db::{self, orders::OrderRow};
use crate::domain::draft::{Selection, Step};
use crate::domain::status::{OrderStatus, PaymentMethod};
use crate::domain::{Currency, DataCap, Money, Rates};
use crate::error::{AppError, AppResult};
use crate::services::payments::online::Gateways;
use crate::services::shop::{self, PlanOption};

/// What an order is for.
pub const NEW: &str = "new";
pub const RENEWAL: &str = "renewal";
pub const TOPUP: &str = "topup";

/// A draft order as the bot works with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub order_id: i64,
    pub kind: String,
    pub subscription_id: Option<i64>,
    /// Fixed when the draft started (`None` only for drafts started before currencies were fixed).
    pub currency: Option<Currency>,
    pub selection: Selection,
}

impl Draft {
    fn from_row(row: OrderRow) -> Draft {
        let selection = serde_json::from_value(row.selection).unwrap_or_default();
        Draft {
            order_id: row.id,
            kind: row.kind,
            subscription_id: row.subscription_id,
            currency: row.currency,
            selection,
        }
    }

    /// The currency it is priced in: its own, or (for an old draft) the customer's.
    pub fn currency(&self, customer: Currency) -> Currency {
        self.currency.unwrap_or(customer)
    }
}

/// One step of the purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Location(String),
    Duration(i32),
    Devices(i32),
    Data(DataCap),
    Back,
}

/// The plan a complete selection resolves to, and its price in the order's currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub plan: PlanOption,
    pub price: Money,
}

/// The customer's unfinished purchase, if any.
pub async fn current_draft(pool: &PgPool, user_id: i64) -> AppResult<Option<Draft>> {
    Ok(db::orders::draft_of(pool, user_id).await?.map(Draft::from_row))
}

/// Starts a new purchase in the customer's `currency` (an unfinished one is cancelled, so its buttons go stale).
pub async fn start(pool: &PgPool, user_id: i64, currency: Currency) -> AppResult<Draft> {
    new_draft(pool, user_id, NEW, None, &Selection::default(), currency).await
}

async fn new_draft(
    pool: &PgPool,
    user_id: i64,
    kind: &str,
    subscription_id: Option<i64>,
    selection: &Selection,
    currency: Currency,
) -> AppResult<Draft> {
    let json = serde_json::to_value(selection).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    db::users::lock(&mut tx, user_id).await?;
    db::orders::cancel_draft_of(&mut tx, user_id).await?;
    let row = db::orders::insert_draft(&mut tx, user_id, kind, subscription_id, &json, currency).await?;
    tx.commit().await?;
    Ok(Draft::from_row(row))
}

/// The customer's draft with this id, or a conflict when the button belongs to an older purchase.
async fn own_draft(pool: &PgPool, user_id: i64, order_id: i64) -> AppResult<Draft> {
    match current_draft(pool, user_id).await? {
        Some(d) if d.order_id == order_id => Ok(d),
        _ => Err(AppError::conflict("this purchase is no longer open")),
    }
}

/// Applies one step, checked against what the location really sells.
pub async fn choose(pool: &PgPool, user_id: i64, order_id: i64, choice: Choice) -> AppResult<Draft> {
    let mut draft = own_draft(pool, user_id, order_id).await?;
    let s = &mut draft.selection;
    match choice {
        Choice::Back => s.back(),
        Choice::Location(code) => {
            shop::location(pool, &code).await.map_err(|_| AppError::invalid("that location is not on sale"))?;
            s.choose_location(&code);
        }
        other => {
            let location = s.location.clone().ok_or_else(|| AppError::invalid("choose a location first"))?;
            let plans = shop::plans_in(pool, &location).await?;
            let fits = |p: &&PlanOption| {
                s.duration_days.is_none_or(|d| p.duration_days == d) && s.seats.is_none_or(|n| p.seats == n)
            };
            match other {
                Choice::Duration(days) if plans.iter().any(|p| p.duration_days == days) => s.choose_duration(days),
                Choice::Devices(n) if s.duration_days.is_some() && plans.iter().filter(fits).any(|p| p.seats == n) => {
                    s.choose_seats(n)
                }
                Choice::Data(cap) if s.seats.is_some() && plans.iter().filter(fits).any(|p| p.data == cap) => {
                    s.choose_data(cap)
                }
                _ => return Err(AppError::invalid("that option is not available here")),
            }
        }
    }
    let json = serde_json::to_value(&draft.selection).map_err(anyhow::Error::from)?;
    if !db::orders::set_selection(pool, order_id, user_id, &json).await? {
        return Err(AppError::conflict("this purchase is no longer open"));
    }
    Ok(draft)
}

/// The plan and price of a complete draft in `currency`: a renewal at its plan's price (see `extend`), anything
/// else at the price of the plan on sale that the selection names.
pub async fn quote(
    pool: &PgPool,
    draft: &Draft,
    currency: Currency,
    rates: Option<&Rates>,
) -> AppResult<Result<Quote, Refusal>> {
    let selection = &draft.selection;
    if selection.step() != Step::Summary {
        return Err(AppError::invalid("the purchase is not complete yet"));
    }
    if draft.kind == RENEWAL {
        return extend::renewal_quote(pool, draft, currency, rates).await;
    }
    let location = selection.location.as_deref().unwrap_or_default();
    let plan = shop::plans_in(pool, location)
        .await?
        .into_iter()
        .find(|p| {
            Some(p.duration_days) == selection.duration_days
                && Some(p.seats) == selection.seats
                && Some(p.data) == selection.data
        })
        .ok_or_else(|| AppError::invalid("that plan is no longer on sale"))?;
    Ok(match plan.price_in(currency, rates) {
        Some(price) => Ok(Quote { plan, price }),
        None => Err(Refusal::NoPrice),
    })
}

/// The payment methods that can take an order in `currency`: the configured online gateways that take it
/// (Stripe: USD, EUR; Zarinpal: IRR), and card-to-card when a card is configured.
pub fn payment_methods(settings: &Settings, gateways: &Gateways, currency: Currency) -> Vec<PaymentMethod> {
    let mut methods = gateways.methods_for(currency);
    if settings.payments.card.all().iter().any(|c| c.takes(currency)) {
        methods.push(PaymentMethod::Card);
    }
    methods
}

/// An order awaiting payment: what to pay and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub order_id: i64,
    pub public_id: uuid::Uuid,
    pub price: Money,
    pub method: PaymentMethod,
    /// A card order: the card to pay to, and the time to pay by.
    pub card: Option<crate::config::Card>,
    pub pay_by: Option<chrono::DateTime<chrono::Utc>>,
}

impl Submitted {
    fn from_row(row: &OrderRow) -> Option<Submitted> {
        let price = Money::from_minor(row.amount_minor?, row.currency?).ok()?;
        let selection: Selection = serde_json::from_value(row.selection.clone()).unwrap_or_default();
        let method = selection.method.unwrap_or(PaymentMethod::Card);
        let card = crate::services::payments::card_of(row);
        Some(Submitted { order_id: row.id, public_id: row.public_id, price, method, card, pay_by: row.pay_by })
    }
}

/// `draft → awaiting_payment`: fixes the plan and the price in the draft's currency (the snapshot later price
/// changes never touch). The same button pressed again, once the order awaits payment, gives the same order.
/// What the shop sells with: its settings, its gateways and its exchange rates.
#[derive(Clone, Copy)]
pub struct Shop<'a> {
    pub settings: &'a Settings,
    pub gateways: &'a Gateways,
    pub rates: Option<&'a Rates>,
}

pub async fn submit(
    pool: &PgPool,
    shop: Shop<'_>,
    user_id: i64,
    order_id: i64,
    method: PaymentMethod,
    customer_currency: Currency,
) -> AppResult<Result<Submitted, Refusal>> {
    let mut draft = match own_draft(pool, user_id, order_id).await {
        Ok(draft) => draft,
        // pressed twice: the order already awaits payment
        Err(e) => return awaiting(pool, user_id, order_id).await.map(Ok).map_err(|_| e),
    };
    if !payment_methods(shop.settings, shop.gateways, draft.currency(customer_currency)).contains(&method) {
        return Err(AppError::invalid("that payment method is not available"));
    }
    if let Err(refusal) = extend::still_possible(pool, &draft).await? {
        return Ok(Err(refusal));
    }
    let currency = draft.currency(customer_currency);
    let quote = match quote(pool, &draft, currency, shop.rates).await? {
        Ok(quote) => quote,
        Err(refusal) => return Ok(Err(refusal)),
    };
    draft.selection.method = Some(method);
    let json = serde_json::to_value(&draft.selection).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    let row = db::orders::lock(&mut tx, order_id).await?.ok_or(AppError::NotFound("order"))?;
    row.status.check(OrderStatus::AwaitingPayment)?;
    let card = match method {
        PaymentMethod::Card => crate::services::payments::card_for(shop.settings, order_id, currency),
        _ => None,
    };
    let card = card.map(|c| serde_json::to_value(c).map_err(anyhow::Error::from)).transpose()?;
    // an order unpaid by its deadline expires (a later order is priced afresh)
    let within = match method {
        PaymentMethod::Card => shop.settings.payments.card.deadline_mins,
        _ => i32::try_from(shop.settings.payments.online_expiry_mins).unwrap_or(i32::MAX),
    };
    if !db::orders::submit(&mut tx, order_id, quote.plan.plan_id, quote.price, &json, card.as_ref(), within).await? {
        return Err(AppError::conflict("this purchase is no longer open"));
    }
    tx.commit().await?;
    let order = db::orders::find(pool, order_id).await?.ok_or(AppError::NotFound("order"))?;
    Submitted::from_row(&order).map(Ok).ok_or_else(|| AppError::Internal(anyhow::anyhow!("order {order_id} unpriced")))
}

/// How many orders awaiting payment the bot shows at once.
const SHOWN_AWAITING: i64 = 5;

/// The customer's orders awaiting payment, newest first.
pub async fn awaiting_payment(pool: &PgPool, user_id: i64) -> AppResult<Vec<Submitted>> {
    let rows = db::orders::awaiting_payment_of(pool, user_id, SHOWN_AWAITING).await?;
    Ok(rows.iter().filter_map(Submitted::from_row).collect())
}

/// One of the customer's orders awaiting payment (a conflict once it is paid, cancelled or not theirs).
pub async fn awaiting(pool: &PgPool, user_id: i64, order_id: i64) -> AppResult<Submitted> {
    db::orders::find(pool, order_id)
        .await?
        .filter(|o| o.user_id == user_id && o.status == OrderStatus::AwaitingPayment)
        .as_ref()
        .and_then(Submitted::from_row)
        .ok_or_else(|| AppError::conflict("this order no longer awaits payment"))
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    Cancelled,
    /// Kept: a payment of it is being checked (the customer is told so, not shown a stale menu).
    BeingChecked,
}

/// Cancels the customer's unfinished purchase or order awaiting payment (not one whose payment is being
/// checked).
pub async fn cancel(pool: &PgPool, user_id: i64, order_id: i64) -> AppResult<Cancel> {
    let mut tx = pool.begin().await?;
    let row = db::orders::lock(&mut tx, order_id)
        .await?
        .filter(|o| o.user_id == user_id)
        .ok_or_else(|| AppError::conflict("this purchase is no longer open"))?;
    row.status.check(OrderStatus::Cancelled).map_err(|_| AppError::conflict("this purchase is no longer open"))?;
    // an online payment page left open is given up with the order (money it still brings is settled all the
    // same); a card receipt under review keeps the order
    if let Some(open) = db::payments::open_of_order(&mut *tx, order_id).await?
        && open.method != PaymentMethod::Card
        && open.status == crate::domain::status::PaymentStatus::Pending
    {
        let refs = db::payments::ProcessorRefs::default();
        let why = Some("the customer cancelled the order");
        use crate::domain::status::PaymentStatus::{Failed, Pending};
        db::payments::settle_online(&mut tx, open.id, Pending, Failed, &refs, why).await?;
    }
    if !db::orders::cancel_open(&mut tx, order_id, user_id).await? {
        return Ok(Cancel::BeingChecked);
    }
    tx.commit().await?;
    Ok(Cancel::Cancelled)
}

/// The state of one of the customer's orders (`None` for someone else's or none at all).
pub async fn status_of(pool: &PgPool, user_id: i64, order_id: i64) -> AppResult<Option<OrderStatus>> {
    Ok(db::orders::find(pool, order_id).await?.filter(|o| o.user_id == user_id).map(|o| o.status))
}
