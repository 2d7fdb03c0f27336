//! A receipt for a card payment: a photo, or an image sent as a file. It is refused, with a reason the customer
//! can act on, when there is no card order to pay, one is already being checked, they send too many, it is too
//! big or not an image, or it was sent before (same Telegram file, or the same bytes under a new one — the admins
//! are told who sent it first). Otherwise it goes to review and the customer is told how long that takes.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{FileMeta, Message};

use super::{HandlerError, HandlerResult};
use crate::bot::callback::Cb;
use crate::bot::ui::{Ctx, Screen, button};
use crate::error::AppError;
use crate::i18n::{self, Arg};
use crate::services::payments::{self, Receipt, ReceiptKind, ReceiptOutcome, ReceiptTarget};

/// The receipt a message carries, if it carries one: the largest size of a photo, or a document (any kind: a
/// non-image file gets its own hint).
pub fn receipt_of(msg: &Message) -> Option<(Receipt, FileMeta, Option<String>)> {
    if let Some(photo) = msg.photo().and_then(|sizes| sizes.iter().max_by_key(|p| p.width * p.height)) {
        let receipt = Receipt {
            file_id: photo.file.id.0.clone(),
            file_unique_id: photo.file.unique_id.0.clone(),
            kind: ReceiptKind::Photo,
        };
        return Some((receipt, photo.file.clone(), Some("image/jpeg".into())));
    }
    let doc = msg.document()?;
    let receipt = Receipt {
        file_id: doc.file.id.0.clone(),
        file_unique_id: doc.file.unique_id.0.clone(),
        kind: ReceiptKind::Document,
    };
    Some((receipt, doc.file.clone(), doc.mime_type.as_ref().map(|m| m.essence_str().to_owned())))
}

/// Whether these bytes are an image a person can read: JPEG, PNG, WebP, GIF or HEIC/HEIF/AVIF.
pub fn looks_like_image(bytes: &[u8]) -> bool {
    let at = |i: usize, sig: &[u8]| bytes.get(i..i + sig.len()) == Some(sig);
    at(0, &[0xFF, 0xD8, 0xFF])
        || at(0, b"\x89PNG\r\n\x1a\n")
        || (at(0, b"RIFF") && at(8, b"WEBP"))
        || at(0, b"GIF87a")
        || at(0, b"GIF89a")
        || (at(4, b"ftyp") && ["heic", "heix", "mif1", "msf1", "avif", "heif"].iter().any(|b| at(8, b.as_bytes())))
}

fn home(ctx: &Ctx<'_>) -> Vec<Vec<teloxide::types::InlineKeyboardButton>> {
    vec![vec![button(ctx.t("btn-menu"), Cb::Menu)]]
}

async fn say(ctx: &Ctx<'_>, key: &str, args: &[(&'static str, Arg)]) -> HandlerResult {
    ctx.send(Screen::new(ctx.t_args(key, args), home(ctx))).await?;
    Ok(())
}

/// Takes a receipt message.
pub async fn take(ctx: &Ctx<'_>, receipt: Receipt, meta: FileMeta, mime: Option<String>) -> HandlerResult {
    let app = ctx.app;
    let (pool, settings) = (&app.pool, &app.settings);
    let order = match payments::receipt_target(pool, ctx.user.id).await? {
        ReceiptTarget::Order(order) => order,
        ReceiptTarget::UnderReview { order_id } => {
            return say(ctx, "receipt-already", &[("order", i18n::number(ctx.lang(), order_id).into())]).await;
        }
        ReceiptTarget::NoOrder => return say(ctx, "receipt-no-order", &[]).await,
    };
    if let Err(wait) = payments::receipt_allowed(&app.limiter, settings, ctx.user.id).await {
        let minutes = wait.as_secs().div_ceil(60).max(1) as i64;
        let args = [("n", Arg::Count(minutes)), ("minutes", i18n::number(ctx.lang(), minutes).into())];
        return say(ctx, "receipt-too-many", &args).await;
    }
    if let Some(first) = payments::check_reuse(pool, settings, ctx.user.id, Some(order.id), &receipt, None).await? {
        tracing::warn!(user.id = ctx.user.id, first.payment = first.payment_id, "reused receipt refused (same file)");
        return refuse_reused(ctx, &first).await;
    }
    let max = settings.payments.card.receipt_max_bytes;
    if u64::from(meta.size) > max {
        return say(ctx, "receipt-too-large", &[("mb", i18n::number(ctx.lang(), (max >> 20) as i64).into())]).await;
    }
    if receipt.kind == ReceiptKind::Document && !mime.as_deref().is_some_and(|m| m.starts_with("image/")) {
        return say(ctx, "receipt-not-image", &[]).await;
    }
    let bytes = match download(ctx, &receipt.file_id, max).await? {
        Some(bytes) => bytes,
        None => {
            let args = [("mb", i18n::number(ctx.lang(), (max >> 20) as i64).into())];
            return say(ctx, "receipt-too-large", &args).await;
        }
    };
    if !looks_like_image(&bytes) {
        return say(ctx, "receipt-not-image", &[]).await;
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    if let Some(first) =
        payments::check_reuse(pool, settings, ctx.user.id, Some(order.id), &receipt, Some(&sha)).await?
    {
        tracing::warn!(user.id = ctx.user.id, first.payment = first.payment_id, "reused receipt refused (same bytes)");
        return refuse_reused(ctx, &first).await;
    }
    let lang = ctx.lang();
    match payments::submit_receipt(pool, settings, ctx.user.id, order.id, &receipt, &sha).await? {
        ReceiptOutcome::UnderReview { order_id, review_mins, .. } => {
            let args = [
                ("order", i18n::number(lang, order_id).into()),
                ("n", Arg::Count(review_mins.into())),
                ("minutes", i18n::number(lang, review_mins.into()).into()),
            ];
            say(ctx, "receipt-under-review", &args).await
        }
        ReceiptOutcome::Reused(first) => refuse_reused(ctx, &first).await,
        ReceiptOutcome::AlreadyUnderReview => {
            say(ctx, "receipt-already", &[("order", i18n::number(lang, order.id).into())]).await
        }
        ReceiptOutcome::OrderClosed => say(ctx, "receipt-order-closed", &[]).await,
    }
}

/// A receipt seen before: the customer's own (sent again), or someone else's.
async fn refuse_reused(ctx: &Ctx<'_>, first: &payments::FirstUse) -> HandlerResult {
    if first.user_id == ctx.user.id {
        let support = crate::bot::ui::html(&ctx.app.settings.shop.support_contact);
        return say(ctx, "receipt-resent", &[("support", support.into())]).await;
    }
    say(ctx, "receipt-reused", &[]).await
}

/// Whether the customer has a card order waiting for its receipt (anything but a receipt then gets a hint).
pub async fn awaits_receipt(ctx: &Ctx<'_>) -> Result<bool, HandlerError> {
    Ok(matches!(payments::receipt_target(&ctx.app.pool, ctx.user.id).await?, ReceiptTarget::Order(_)))
}

/// What to send at the payment step: a photo of the receipt.
pub async fn hint(ctx: &Ctx<'_>) -> HandlerResult {
    let rows = match super::pay::newest_awaiting(ctx).await? {
        Some(order) => vec![
            vec![button(ctx.t("btn-payment-details"), Cb::Order(order.order_id))],
            vec![button(ctx.t("btn-menu"), Cb::Menu)],
        ],
        None => home(ctx),
    };
    ctx.send(Screen::new(ctx.t("receipt-hint"), rows)).await?;
    Ok(())
}

/// Downloads a file from Telegram, at most `max` bytes (`None` when it is bigger).
async fn download(ctx: &Ctx<'_>, file_id: &str, max: u64) -> Result<Option<Vec<u8>>, HandlerError> {
    let api = ctx.bot.api();
    let file = api.get_file(teloxide::types::FileId(file_id.to_owned())).await?;
    if u64::from(file.meta.size) > max {
        return Ok(None);
    }
    let mut stream = api.download_file_stream(&file.path);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| HandlerError::App(AppError::Unavailable(format!("Telegram file download: {e}"))))?;
        if (bytes.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::looks_like_image;

    #[test]
    fn images_are_told_from_other_files_by_their_first_bytes() {
        assert!(looks_like_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]));
        assert!(looks_like_image(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
        assert!(looks_like_image(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(looks_like_image(b"\0\0\0\x18ftypheic\0\0\0\0"));
        assert!(!looks_like_image(b"%PDF-1.7"));
        assert!(!looks_like_image(b"PK\x03\x04"));
        assert!(!looks_like_image(b""));
        assert!(!looks_like_image(b"RIFF\0\0\0\0WAVE"));
    }
}
