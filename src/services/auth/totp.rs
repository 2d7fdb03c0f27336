//! An admin's optional second factor: TOTP (RFC 6238 as every authenticator app reads it: SHA-1, 6 digits,
//! 30-second steps, one step of clock skew either way), each step accepted once, and ten one-use recovery codes
//! (`xxxx-xxxx-xx`, 50 random bits each, stored as SHA-256, shown once).
//!
//! Enrolment is two steps: `begin_enrolment` stores a pending secret and shows it (text, `otpauth://` URL and
//! QR code); `confirm_enrolment` turns it on once a code from the app matches, and hands out recovery codes.

use rand::Rng;
use serde::Serialize;
use sqlx::PgPool;
use totp_rs::{Builder, Secret, Totp};

use super::digest;
use crate::db;
use crate::db::admin_totp::TotpState;
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;

const DIGITS: usize = 6;
const STEP_SECS: u64 = 30;
const SECRET_BYTES: usize = 20;
const RECOVERY_CODES: usize = 10;
/// Lowercase letters and digits without the look-alikes `0 o 1 l`: 32 symbols, 5 bits each.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
const RECOVERY_LEN: usize = 10;
/// Longer input is refused before any work.
const MAX_INPUT: usize = 64;

/// A pending enrolment to show the admin once: the secret as text, as an `otpauth://` URL, and that URL as a QR
/// code (an `<svg>` element to embed inline).
#[derive(Clone)]
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_url: String,
    pub qr_svg: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment").finish_non_exhaustive()
    }
}

/// Which second factor a sign-in used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    Totp,
    RecoveryCode,
}

/// A one-time code as typed, normalised: spaces and dashes dropped, letters lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Code {
    /// Six digits from the authenticator app.
    Totp(String),
    /// A recovery code without its dashes.
    Recovery(String),
}

fn normalise(input: &str) -> Option<Code> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let s: String = input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_lowercase()).collect();
    if s.len() == DIGITS && s.bytes().all(|b| b.is_ascii_digit()) {
        Some(Code::Totp(s))
    } else if s.len() == RECOVERY_LEN && s.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)) {
        Some(Code::Recovery(s))
    } else {
        None
    }
}

/// A fresh recovery code as shown: `xxxx-xxxx-xx`.
fn recovery_code() -> String {
    let mut rng = rand::rng();
    let raw: Vec<char> =
        (0..RECOVERY_LEN).map(|_| RECOVERY_ALPHABET[rng.random_range(0..RECOVERY_ALPHABET.len())] as char).collect();
    let part = |r: std::ops::Range<usize>| raw[r].iter().collect::<String>();
    format!("{}-{}-{}", part(0..4), part(4..8), part(8..RECOVERY_LEN))
}

/// Ten fresh codes as shown, and their hashes (of the normalised form) to store.
fn recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
    let hashes = codes
        .iter()
        .map(|c| match normalise(c) {
            Some(Code::Recovery(n)) => digest(&n),
            _ => unreachable!("a generated recovery code normalises"),
        })
        .collect();
    (codes, hashes)
}

fn totp(secret_base32: &str, account: &str, issuer: &str) -> AppResult<Totp> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a stored TOTP secret is not base32: {e}")))?;
    Builder::new()
        .with_secret(secret.as_bytes().to_vec())
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_skew(1)
        .with_account_name(account)
        .with_issuer(Some(issuer))
        .build()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("building a TOTP: {e}")))
}

/// The step (30-second window) a six-digit code belongs to, within one step of now; None when it matches none.
fn matching_step(secret_base32: &str, code: &str) -> AppResult<Option<i64>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    matching_step_at(secret_base32, code, now)
}

fn matching_step_at(secret_base32: &str, code: &str, unix_secs: u64) -> AppResult<Option<i64>> {
    Ok(totp(secret_base32, "", "")?.check(code, unix_secs).and_then(|step| i64::try_from(step).ok()))
}

/// The issuer shown in the authenticator app (a `:` would end it early in the URL).
fn issuer(label: &str) -> String {
    let label: String = label.replace(':', " ").trim().chars().take(64).collect();
    if label.is_empty() { "vpnshop".to_owned() } else { label }
}

fn qr_svg(text: &str) -> AppResult<String> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a QR code of an otpauth URL: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    // the XML declaration is for a file of its own; inline in HTML the <svg> element is all that is needed
    Ok(match svg.find("<svg") {
        Some(at) => svg[at..].to_owned(),
        None => svg,
    })
}

/// An enabled admin's state, or NotFound.
async fn enabled_admin(pool: &PgPool, admin_id: i64) -> AppResult<TotpState> {
    db::admin_totp::state(pool, admin_id).await?.filter(|s| s.disabled_at.is_none()).ok_or(AppError::NotFound("admin"))
}

/// Starts enrolment: a fresh 160-bit secret, stored as pending (replacing an earlier pending one) until
/// `confirm_enrolment`. Refused (Conflict) when TOTP is already on.
pub async fn begin_enrolment(pool: &PgPool, admin_id: i64, issuer_label: &str) -> AppResult<Enrolment> {
    let state = enabled_admin(pool, admin_id).await?;
    if state.enabled_at.is_some() {
        return Err(AppError::conflict("two-factor sign-in is already on for this admin; turn it off first"));
    }
    let bytes = rand::rng().random::<[u8; SECRET_BYTES]>();
    let secret_base32 = Secret::from(bytes.to_vec()).to_base32();
    let otpauth_url = totp(&secret_base32, &state.username, &issuer(issuer_label))?
        .to_url()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("an otpauth URL: {e}")))?;
    let qr_svg = qr_svg(&otpauth_url)?;
    if !db::admin_totp::set_pending(pool, admin_id, &secret_base32).await? {
        return Err(AppError::conflict("two-factor sign-in is already on for this admin; turn it off first"));
    }
    Ok(Enrolment { secret_base32, otpauth_url, qr_svg })
}

/// Turns TOTP on when `code` matches the pending secret; ten new recovery codes, shown this once (any earlier
/// ones stop working). Audited `auth.totp_enabled`.
pub async fn confirm_enrolment(pool: &PgPool, who: &Who, admin_id: i64, code: &str) -> AppResult<Vec<String>> {
    let Some(Code::Totp(code)) = normalise(code) else {
        return Err(AppError::field("code", "a code is the 6 digits the authenticator app shows"));
    };
    let state = enabled_admin(pool, admin_id).await?;
    if state.enabled_at.is_some() {
        return Err(AppError::conflict("two-factor sign-in is already on for this admin"));
    }
    let Some(secret) = state.secret else {
        return Err(AppError::conflict("no enrolment is pending; start again"));
    };
    let Some(step) = matching_step(&secret, &code)? else {
        return Err(AppError::field(
            "code",
            "that code does not match; enter the current code (and check the device's clock)",
        ));
    };
    let (codes, hashes) = recovery_codes();
    let mut tx = pool.begin().await?;
    if !db::admin_totp::enable(&mut *tx, admin_id, &secret, step).await? {
        return Err(AppError::conflict("this enrolment changed meanwhile; start again"));
    }
    db::admin_totp::replace_recovery_codes(&mut tx, admin_id, &hashes).await?;
    who.record(&mut tx, "auth.totp_enabled", "admin", admin_id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(codes)
}

/// Whether sign-in needs a one-time code for this admin.
pub async fn is_enabled(pool: &PgPool, admin_id: i64) -> AppResult<bool> {
    Ok(db::admin_totp::state(pool, admin_id).await?.is_some_and(|s| s.enabled_at.is_some()))
}

/// The second step of sign-in: whether `code` is a current TOTP code whose step was not used before, or an
/// unused recovery code (then spent). Each is good once, even for two concurrent sign-ins.
pub async fn verify(pool: &PgPool, admin_id: i64, code: &str) -> AppResult<bool> {
    Ok(check_code(pool, admin_id, code).await?.is_some())
}

/// As `verify`, naming the factor that passed.
pub async fn check_code(pool: &PgPool, admin_id: i64, code: &str) -> AppResult<Option<SecondFactor>> {
    let Some(code) = normalise(code) else { return Ok(None) };
    let Some(state) = db::admin_totp::state(pool, admin_id).await? else { return Ok(None) };
    let (Some(secret), Some(_), None) = (state.secret, state.enabled_at, state.disabled_at) else { return Ok(None) };
    match code {
        Code::Totp(code) => {
            let Some(step) = matching_step(&secret, &code)? else { return Ok(None) };
            let spent = db::admin_totp::spend_step(pool, admin_id, step).await?;
            Ok(spent.then_some(SecondFactor::Totp))
        }
        Code::Recovery(code) => {
            let spent = db::admin_totp::spend_recovery_code(pool, admin_id, &digest(&code)).await?;
            if spent {
                tracing::info!(admin_id, "a recovery code was used");
            }
            Ok(spent.then_some(SecondFactor::RecoveryCode))
        }
    }
}

/// Turns TOTP off (or drops a pending enrolment) and deletes the recovery codes; Conflict when there was
/// neither. Audited `auth.totp_disabled`.
pub async fn disable(pool: &PgPool, who: &Who, admin_id: i64) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    let state = db::admin_totp::lock_state(&mut tx, admin_id).await?.ok_or(AppError::NotFound("admin"))?;
    if !db::admin_totp::clear(&mut *tx, admin_id).await? {
        return Err(AppError::conflict("two-factor sign-in is not on for this admin"));
    }
    db::admin_totp::delete_recovery_codes(&mut *tx, admin_id).await?;
    let detail = serde_json::json!({ "was_enabled": state.enabled_at.is_some() });
    who.record(&mut tx, "auth.totp_disabled", "admin", admin_id, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Ten new recovery codes in place of the old ones (TOTP must be on), shown this once. Audited
/// `auth.totp_recovery_codes`.
pub async fn regenerate_recovery_codes(pool: &PgPool, who: &Who, admin_id: i64) -> AppResult<Vec<String>> {
    let mut tx = pool.begin().await?;
    let state = db::admin_totp::lock_state(&mut tx, admin_id).await?.ok_or(AppError::NotFound("admin"))?;
    if state.enabled_at.is_none() {
        return Err(AppError::conflict("two-factor sign-in is not on for this admin"));
    }
    let (codes, hashes) = recovery_codes();
    db::admin_totp::replace_recovery_codes(&mut tx, admin_id, &hashes).await?;
    who.record(&mut tx, "auth.totp_recovery_codes", "admin", admin_id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(codes)
}

/// How many unused recovery codes the admin has left.
pub async fn remaining_recovery_codes(pool: &PgPool, admin_id: i64) -> AppResult<i64> {
    Ok(db::admin_totp::unused_recovery_codes(pool, admin_id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digit_codes_are_read_with_spaces_and_dashes_dropped() {
        assert_eq!(normalise("123456"), Some(Code::Totp("123456".into())));
        assert_eq!(normalise(" 123 456 "), Some(Code::Totp("123456".into())));
        assert_eq!(normalise("123-456"), Some(Code::Totp("123456".into())));
        assert_eq!(normalise("12345"), None, "too short");
        assert_eq!(normalise("1234567"), None, "too long");
        assert_eq!(normalise("12345a"), None, "not digits, not a recovery code");
        assert_eq!(normalise("１２３４５６"), None, "full-width digits are not ASCII digits");
    }

    #[test]
    fn recovery_codes_are_read_in_any_case_with_or_without_dashes() {
        let want = Some(Code::Recovery("abcd2345xy".into()));
        assert_eq!(normalise("abcd-2345-xy"), want);
        assert_eq!(normalise("ABCD-2345-XY"), want);
        assert_eq!(normalise(" abcd 2345 xy "), want);
        assert_eq!(normalise("abcd2345xy"), want);
        assert_eq!(normalise("abcd-2345-x0"), None, "0 is not in the alphabet");
        assert_eq!(normalise("abcd-2345-xyz"), None, "too long");
    }

    #[test]
    fn overlong_input_is_refused_before_any_work() {
        assert_eq!(normalise(&format!("123456{}", " ".repeat(MAX_INPUT))), None);
        assert_eq!(normalise(""), None);
    }

    #[test]
    fn recovery_codes_are_ten_distinct_50_bit_codes_stored_as_sha256_of_the_normal_form() {
        let (codes, hashes) = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), RECOVERY_CODES);
        assert!(RECOVERY_LEN * RECOVERY_ALPHABET.len().ilog2() as usize >= 50);
        for (code, hash) in codes.iter().zip(&hashes) {
            assert_eq!(code.len(), 12, "{code}");
            assert_eq!(code.matches('-').count(), 2, "{code}");
            assert_eq!(&digest(&code.replace('-', "")), hash);
            assert!(!hash.contains(&code.replace('-', "")));
        }
    }

    #[test]
    fn a_code_of_this_step_and_the_neighbouring_ones_match_and_others_do_not() {
        let secret = Secret::from(vec![7u8; SECRET_BYTES]).to_base32();
        let t = totp(&secret, "alice", "vpnshop").unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let step = (now / STEP_SECS) as i64;
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = t.generate((now as i64 + offset * STEP_SECS as i64) as u64).to_string();
            let got = matching_step_at(&secret, &code, now).unwrap();
            if ok {
                assert_eq!(got, Some(step + offset), "offset {offset}");
            } else {
                assert_ne!(got, Some(step + offset), "offset {offset}");
            }
        }
    }

    #[test]
    fn the_otpauth_url_names_the_issuer_and_account_and_the_qr_code_is_an_inline_svg() {
        let secret = Secret::from(vec![1u8; SECRET_BYTES]).to_base32();
        let url = totp(&secret, "alice", &issuer("Shop: main")).unwrap().to_url().unwrap();
        assert!(url.starts_with("otpauth://totp/Shop%20%20main:alice?"), "{url}");
        assert!(url.contains(&format!("secret={secret}")), "{url}");
        let svg = qr_svg(&url).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert_eq!(issuer(" : "), "vpnshop");
    }
}
