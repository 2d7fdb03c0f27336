//! Keyset (cursor) pagination: a page is the rows after the last one of the previous page in a stable order
//! (a sort key, then the id), so rows inserted or deleted meanwhile neither repeat nor skip others.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Rows per page unless asked otherwise, and the most a page may hold.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// Where a page starts: after the row with this sort key (a timestamp in microseconds, or a number) and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: i64,
}

/// A cursor that is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor from a previous page")]
pub struct BadCursor;

impl Cursor {
    /// For a listing sorted by a timestamp.
    pub fn at(at: chrono::DateTime<chrono::Utc>, id: i64) -> Cursor {
        Cursor { key: at.timestamp_micros(), id }
    }

    /// The sort key as a timestamp (for listings sorted by one).
    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.key).unwrap_or_default()
    }

    /// Opaque to clients: `c1.<key>.<id>` in URL-safe base64.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("c1.{}.{}", self.key, self.id))
    }

    pub fn decode(text: &str) -> Result<Cursor, BadCursor> {
        if text.len() > 64 {
            return Err(BadCursor);
        }
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| BadCursor)?;
        let raw = std::str::from_utf8(&raw).map_err(|_| BadCursor)?;
        let mut parts = raw.split('.');
        let (Some("c1"), Some(key), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(BadCursor);
        };
        let key = key.parse().map_err(|_| BadCursor)?;
        let id = id.parse().map_err(|_| BadCursor)?;
        if key == i64::MIN || (key < 0 && chrono::DateTime::from_timestamp_micros(key).is_none()) {
            return Err(BadCursor);
        }
        Ok(Cursor { key, id })
    }
}

crate::text_enum! {
    /// Sort direction of a listing.
    pub enum Order {
        Asc => "asc",
        Desc => "desc",
    }
}

/// One page's request: how many rows, after which, in which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<Cursor>,
    pub order: Order,
}

impl PageRequest {
    /// `limit` rows (1..=MAX_LIMIT) after `after`.
    pub fn new(limit: i64, after: Option<Cursor>, order: Order) -> PageRequest {
        PageRequest { limit: limit.clamp(1, MAX_LIMIT), after, order }
    }

    /// How many rows to fetch: one more than a page, to know whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts rows fetched with `fetch()` to a page; the cursor of the next page when there is one.
    pub fn cut<T>(&self, mut rows: Vec<T>, cursor: impl Fn(&T) -> Cursor) -> (Vec<T>, Option<Cursor>) {
        let limit = usize::try_from(self.limit).unwrap_or(0);
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(cursor);
            (rows, next)
        } else {
            (rows, None)
        }
    }

    /// `<` for descending pages, `>` for ascending ones: compare `(key, id)` with the cursor.
    pub fn op(&self) -> &'static str {
        match self.order {
            Order::Asc => ">",
            Order::Desc => "<",
        }
    }

    /// `ASC` or `DESC`, for ORDER BY.
    pub fn dir(&self) -> &'static str {
        match self.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor::at(chrono::Utc::now(), 42);
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for junk in ["", "abc", "'; DROP TABLE payments; --", &"A".repeat(100), "YzEuMS4y!", "YzIuMS4y"] {
            assert_eq!(Cursor::decode(junk), Err(BadCursor), "{junk}");
        }
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("c1.x.2")), Err(BadCursor));
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("c1.1.2.3")), Err(BadCursor));
    }

    #[test]
    fn a_page_knows_whether_another_follows() {
        let req = PageRequest::new(2, None, Order::Desc);
        assert_eq!(req.fetch(), 3);
        let (rows, next) = req.cut(vec![5, 4, 3], |&id| Cursor { key: id, id });
        assert_eq!(rows, vec![5, 4]);
        assert_eq!(next, Some(Cursor { key: 4, id: 4 }));
        assert_eq!(req.cut(vec![2, 1], |&id| Cursor { key: id, id }).1, None);
        assert_eq!(PageRequest::new(10_000, None, Order::Asc).limit, MAX_LIMIT);
    }
}
