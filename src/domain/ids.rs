//! Identifiers that parse their input.

use std::fmt;

/// A Telegram user or chat id of a private chat: always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct TelegramId(i64);

impl TelegramId {
    pub fn parse(raw: i64) -> Result<Self, InvalidTelegramId> {
        if raw > 0 { Ok(Self(raw)) } else { Err(InvalidTelegramId(raw)) }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for TelegramId {
    type Error = InvalidTelegramId;
    fn try_from(raw: i64) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<TelegramId> for i64 {
    fn from(id: TelegramId) -> i64 {
        id.0
    }
}

impl fmt::Display for TelegramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a Telegram user id must be a positive number, got {0}")]
pub struct InvalidTelegramId(pub i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_ids_must_be_positive() {
        assert_eq!(TelegramId::parse(42).unwrap().get(), 42);
        assert!(TelegramId::parse(0).is_err());
        assert!(TelegramId::parse(-100_123).is_err());
    }
}
