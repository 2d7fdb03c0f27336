//! Inline-button payloads: short, typed, and at most 64 bytes. Every purchase button carries its draft's
//! id, so a button from an older purchase (or another user's forwarded message) is recognised as stale.

use std::fmt;

use crate::domain::Language;
use crate::domain::status::PaymentMethod;
use crate::services::payments::review::RejectReason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cb {
    Menu,
    /// Start a new purchase.
    Buy,
    /// Continue the unfinished purchase.
    Resume(i64),
    Location(i64, String),
    Duration(i64, i32),
    Devices(i64, i32),
    /// Data in MB; `None` for unlimited.
    Data(i64, Option<i64>),
    Back(i64),
    Pay(i64, PaymentMethod),
    /// Cancel a draft, or an order awaiting payment.
    Cancel(i64),
    /// The payment details of an order awaiting payment.
    Order(i64),
    Trial,
    TrialLocation(String),
    Services,
    Service(i64),
    Qr(i64),
    Renew(i64),
    TopUp(i64),
    /// A new subscription URL (the old one leaked): the old one stops working.
    NewFeedUrl(i64),
    Language,
    SetLanguage(Language),
    Help,
    /// Admins: accept a payment under review.
    ReviewAccept(i64),
    /// Admins: reject it (shows the reasons).
    ReviewReject(i64),
    ReviewRejectWith(i64, RejectReason),
    /// Admins: reject with a typed reason (how to send one).
    ReviewTyped(i64),
    /// Admins: back from the reasons to Accept / Reject.
    ReviewBack(i64),
}

impl fmt::Display for Cb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cb::Menu => write!(f, "m"),
            Cb::Buy => write!(f, "b"),
            Cb::Resume(o) => write!(f, "r:{o}"),
            Cb::Location(o, code) => write!(f, "l:{o}:{code}"),
            Cb::Duration(o, d) => write!(f, "d:{o}:{d}"),
            Cb::Devices(o, n) => write!(f, "s:{o}:{n}"),
            Cb::Data(o, mb) => write!(f, "dm:{o}:{}", mb.unwrap_or(0)),
            Cb::Back(o) => write!(f, "k:{o}"),
            Cb::Pay(o, m) => write!(f, "p:{o}:{m}"),
            Cb::Cancel(o) => write!(f, "x:{o}"),
            Cb::Order(o) => write!(f, "o:{o}"),
            Cb::Trial => write!(f, "t"),
            Cb::TrialLocation(code) => write!(f, "tl:{code}"),
            Cb::Services => write!(f, "v"),
            Cb::Service(s) => write!(f, "v:{s}"),
            Cb::Qr(s) => write!(f, "q:{s}"),
            Cb::Renew(s) => write!(f, "rn:{s}"),
            Cb::TopUp(s) => write!(f, "tu:{s}"),
            Cb::NewFeedUrl(s) => write!(f, "nf:{s}"),
            Cb::Language => write!(f, "lg"),
            Cb::SetLanguage(l) => write!(f, "lg:{l}"),
            Cb::Help => write!(f, "h"),
            Cb::ReviewAccept(p) => write!(f, "ra:{p}"),
            Cb::ReviewReject(p) => write!(f, "rr:{p}"),
            Cb::ReviewRejectWith(p, r) => write!(f, "rx:{p}:{r}"),
            Cb::ReviewTyped(p) => write!(f, "rt:{p}"),
            Cb::ReviewBack(p) => write!(f, "rb:{p}"),
        }
    }
}

impl Cb {
    /// Parses button data; anything unknown (old formats, tampering) is `None`.
    pub fn parse(data: &str) -> Option<Cb> {
        let mut parts = data.split(':');
        let head = parts.next()?;
        let a = parts.next();
        let b = parts.next();
        if parts.next().is_some() {
            return None;
        }
        let id = |s: Option<&str>| s.and_then(|v| v.parse::<i64>().ok()).filter(|v| *v > 0);
        let code = |s: Option<&str>| {
            s.filter(|c| {
                !c.is_empty()
                    && c.len() <= 16
                    && c.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .map(str::to_owned)
        };
        let small = |s: Option<&str>| s.and_then(|v| v.parse::<i32>().ok()).filter(|v| *v > 0);
        Some(match (head, a, b) {
            ("m", None, None) => Cb::Menu,
            ("b", None, None) => Cb::Buy,
            ("r", Some(_), None) => Cb::Resume(id(a)?),
            ("l", Some(_), Some(_)) => Cb::Location(id(a)?, code(b)?),
            ("d", Some(_), Some(_)) => Cb::Duration(id(a)?, small(b)?),
            ("s", Some(_), Some(_)) => Cb::Devices(id(a)?, small(b)?),
            ("dm", Some(_), Some(mb)) => {
                let mb: i64 = mb.parse().ok().filter(|v| *v >= 0)?;
                Cb::Data(id(a)?, (mb > 0).then_some(mb))
            }
            // buttons sent before caps could be set in MB carry GB
            ("g", Some(_), Some(gb)) => {
                let gb: i64 = gb.parse().ok().filter(|v| *v >= 0)?;
                Cb::Data(id(a)?, (gb > 0).then(|| gb.checked_mul(1024)).flatten())
            }
            ("k", Some(_), None) => Cb::Back(id(a)?),
            ("p", Some(_), Some(m)) => Cb::Pay(id(a)?, m.parse().ok()?),
            ("x", Some(_), None) => Cb::Cancel(id(a)?),
            ("o", Some(_), None) => Cb::Order(id(a)?),
            ("t", None, None) => Cb::Trial,
            ("tl", Some(_), None) => Cb::TrialLocation(code(a)?),
            ("v", None, None) => Cb::Services,
            ("v", Some(_), None) => Cb::Service(id(a)?),
            ("q", Some(_), None) => Cb::Qr(id(a)?),
            ("rn", Some(_), None) => Cb::Renew(id(a)?),
            ("tu", Some(_), None) => Cb::TopUp(id(a)?),
            ("nf", Some(_), None) => Cb::NewFeedUrl(id(a)?),
            ("lg", None, None) => Cb::Language,
            ("lg", Some(l), None) => Cb::SetLanguage(l.parse().ok()?),
            ("h", None, None) => Cb::Help,
            ("ra", Some(_), None) => Cb::ReviewAccept(id(a)?),
            ("rr", Some(_), None) => Cb::ReviewReject(id(a)?),
            ("rx", Some(_), Some(r)) => Cb::ReviewRejectWith(id(a)?, r.parse().ok()?),
            ("rt", Some(_), None) => Cb::ReviewTyped(id(a)?),
            ("rb", Some(_), None) => Cb::ReviewBack(id(a)?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_button_round_trips_within_64_bytes() {
        let big = i64::MAX;
        let all = [
            Cb::Menu,
            Cb::Buy,
            Cb::Resume(big),
            Cb::Location(big, "abcdefghijklmnop".into()),
            Cb::Duration(big, 365),
            Cb::Devices(big, 100),
            Cb::Data(big, Some(250)),
            Cb::Data(big, None),
            Cb::Back(big),
            Cb::Pay(big, PaymentMethod::Zarinpal),
            Cb::Cancel(big),
            Cb::Order(big),
            Cb::Trial,
            Cb::TrialLocation("nl".into()),
            Cb::Services,
            Cb::Service(big),
            Cb::Qr(big),
            Cb::Renew(big),
            Cb::TopUp(big),
            Cb::NewFeedUrl(big),
            Cb::Language,
            Cb::SetLanguage(Language::Fa),
            Cb::Help,
            Cb::ReviewAccept(big),
            Cb::ReviewReject(big),
            Cb::ReviewRejectWith(big, RejectReason::WrongAmount),
            Cb::ReviewRejectWith(big, RejectReason::NotReceived),
            Cb::ReviewTyped(big),
            Cb::ReviewBack(big),
        ];
        for cb in all {
            let data = cb.to_string();
            assert!(data.len() <= 64, "{data} is {} bytes", data.len());
            assert_eq!(Cb::parse(&data), Some(cb), "{data}");
        }
    }

    #[test]
    fn junk_and_tampered_buttons_are_refused() {
        for junk in [
            "",
            "zz",
            "l:1",
            "l:x:de",
            "l:1:DE",
            "d:1:-3",
            "p:1:paypal",
            "lg:de",
            "v:0",
            "m:1",
            "g:1:-1",
            "dm:1:-1",
            "nf:0",
            "l:1:de:x",
            "o:0",
            "rx:1:bogus",
            "ra:-1",
        ] {
            assert_eq!(Cb::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn data_buttons_carry_megabytes_and_old_gigabyte_buttons_still_work() {
        let cap = crate::domain::DataCap::from_mb(500).unwrap();
        let button = Cb::Data(7, cap.whole_mb());
        assert_eq!(button.to_string(), "dm:7:500");
        assert_eq!(Cb::parse("g:7:2"), Some(Cb::Data(7, Some(2048))), "a button from before MB caps");
        assert_eq!(Cb::parse("g:7:0"), Some(Cb::Data(7, None)));
    }
}
