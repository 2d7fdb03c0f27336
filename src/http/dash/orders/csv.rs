//! CSV downloads of a listing: RFC 4180 quoting, cells that a spreadsheet would run as a formula neutralised with
//! a leading apostrophe, and the rows streamed in keyset batches (never the whole table in memory), at most
//! `MAX_ROWS` of them.

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::domain::page::Cursor;
use crate::error::AppResult;

/// The most rows one download holds.
pub const MAX_ROWS: usize = 100_000;
/// Rows read per query.
pub const BATCH: i64 = 1000;

/// One cell: a leading `= + - @`, tab or carriage return gets an apostrophe (so a spreadsheet shows the text
/// instead of running it), and text with a comma, quote or line break is quoted.
pub fn cell(text: &str) -> String {
    let mut value = String::with_capacity(text.len() + 2);
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        value.push('\'');
    }
    value.push_str(text);
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// One line (CRLF-terminated, as RFC 4180 has it).
pub fn line<S: AsRef<str>>(cells: &[S]) -> String {
    let mut out = cells.iter().map(|c| cell(c.as_ref())).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

/// What a batch gives: its lines and, when more follow, where the next batch starts.
pub type Batch = (Vec<String>, Option<Cursor>);

/// A download named `name` (`orders` → `orders-20261202-1430.csv`): the header line, the first batch (already
/// read, so a bad filter was an error page rather than a broken download), then each next batch from `fetch`
/// until the rows run out or `MAX_ROWS` is reached.
pub fn download<F, Fut>(name: &str, header_cells: &[&str], first: Batch, fetch: F) -> Response
where
    F: FnMut(Cursor) -> Fut + Send + 'static,
    Fut: Future<Output = AppResult<Batch>> + Send + 'static,
{
    let filename = format!("{name}-{}.csv", chrono::Utc::now().format("%Y%m%d-%H%M"));
    let (mut lines, next) = first;
    lines.truncate(MAX_ROWS);
    let sent = lines.len();
    let mut head = line(header_cells);
    head.extend(lines);
    let opening = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
    let start = if sent < MAX_ROWS { next } else { None };
    let rest = futures::stream::unfold((fetch, start, sent), |(mut fetch, next, sent)| async move {
        let after = next?;
        match fetch(after).await {
            Ok((mut lines, more)) => {
                lines.truncate(MAX_ROWS - sent);
                let sent = sent + lines.len();
                let more = if sent < MAX_ROWS { more } else { None };
                Some((Ok(Bytes::from(lines.concat())), (fetch, more, sent)))
            }
            Err(e) => {
                tracing::error!(error = %e, "CSV download stopped: a batch could not be read");
                Some((Err(std::io::Error::other("the download could not be completed")), (fetch, None, sent)))
            }
        }
    });
    let body = Body::from_stream(futures::StreamExt::chain(opening, rest));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_get_an_apostrophe_and_special_characters_are_quoted() {
        assert_eq!(cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        for lead in ["+1", "-1", "@SUM(A1)", "\tx"] {
            assert_eq!(cell(lead), format!("'{lead}"));
        }
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("12.50"), "12.50");
        assert_eq!(cell(""), "");
        assert_eq!(line(&["1", "=x", "a\nb"]), "1,'=x,\"a\nb\"\r\n");
    }
}
