//! Trace ids in log lines: a JSON line written inside a span gets `"trace_id"` and `"span_id"` (the ids the
//! span is exported with, when it is); a pretty line shows the trace id after its time stamp.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::context::current_ids;

/// Wraps a JSON event format: the ids go in as two more top-level members.
pub struct JsonWithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for JsonWithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some((trace_id, span_id)) = current_ids() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_ids(line, &trace_id.to_string(), &span_id.to_string()))
    }
}

/// A JSON object line (`{…}\n`) with the two ids added as its last members.
fn with_ids(mut line: String, trace_id: &str, span_id: &str) -> String {
    if let Some(end) = line.rfind('}') {
        let empty = line[..end].trim_end().ends_with('{');
        let ids = format!(r#"{}"trace_id":"{trace_id}","span_id":"{span_id}""#, if empty { "" } else { "," });
        line.insert_str(end, &ids);
    }
    line
}

/// The usual time stamp, then the trace id (when in a span): `2026-…Z 4bf92f35…4736  INFO …`.
pub struct TimeAndTrace;

impl FormatTime for TimeAndTrace {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        tracing_subscriber::fmt::time::SystemTime.format_time(w)?;
        match current_ids() {
            Some((trace_id, _)) => write!(w, " {trace_id}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_the_last_members_of_the_line() {
        let line = with_ids("{\"level\":\"INFO\",\"message\":\"a } b\"}\n".into(), "ab", "cd");
        assert_eq!(line, "{\"level\":\"INFO\",\"message\":\"a } b\",\"trace_id\":\"ab\",\"span_id\":\"cd\"}\n");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["trace_id"], "ab");
        assert_eq!(with_ids("{}\n".into(), "ab", "cd"), "{\"trace_id\":\"ab\",\"span_id\":\"cd\"}\n");
    }
}
