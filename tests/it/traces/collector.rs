//! A fake OpenTelemetry collector: `POST /v1/traces` with an OTLP/HTTP protobuf `ExportTraceServiceRequest`,
//! decoded with the proto messages; it keeps every span it receives (and the headers of each request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;

/// One received span, ids in lower-case hex as they appear in `traceparent` and in log lines.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent: String,
    pub name: String,
    /// `SPAN_KIND_*` number: 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub attributes: HashMap<String, String>,
    /// Every attribute value of the span, its events and links (to look for secrets).
    pub all_values: Vec<String>,
    /// Attributes of the resource it came with.
    pub resource: HashMap<String, String>,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    requests: Vec<(HeaderMap, usize)>,
}

#[derive(Clone)]
pub struct Collector {
    pub port: u16,
    received: Arc<Mutex<Received>>,
}

impl Collector {
    pub async fn start() -> Collector {
        let received = Arc::new(Mutex::new(Received::default()));
        let store = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let store = store.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("an OTLP protobuf request");
                    let mut received = store.lock().unwrap();
                    received.requests.push((headers, body.len()));
                    received.spans.extend(spans_of(request));
                    // an empty ExportTraceServiceResponse: full success
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { port, received }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }

    /// The headers of every export request received.
    pub fn request_headers(&self) -> Vec<HeaderMap> {
        self.received.lock().unwrap().requests.iter().map(|(h, _)| h.clone()).collect()
    }
}

fn spans_of(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource: HashMap<String, String> =
            resource_spans.resource.map(|r| r.attributes.iter().map(pair).collect()).unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let mut all_values: Vec<String> = span.attributes.iter().map(|kv| pair(kv).1).collect();
                all_values.extend(span.events.iter().flat_map(|e| e.attributes.iter().map(|kv| pair(kv).1)));
                all_values.extend(span.events.iter().map(|e| e.name.clone()));
                all_values.extend(span.links.iter().flat_map(|l| l.attributes.iter().map(|kv| pair(kv).1)));
                out.push(Span {
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent: hex::encode(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: span.attributes.iter().map(pair).collect(),
                    all_values,
                    resource: resource.clone(),
                });
            }
        }
    }
    out
}

fn pair(kv: &KeyValue) -> (String, String) {
    (kv.key.clone(), kv.value.as_ref().map(text).unwrap_or_default())
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::ArrayValue(a)) => a.values.iter().map(text).collect::<Vec<_>>().join(","),
        Some(Value::KvlistValue(l)) => l.values.iter().map(|kv| pair(kv).1).collect::<Vec<_>>().join(","),
        Some(Value::BytesValue(b)) => hex::encode(b),
        Some(_) | None => String::new(),
    }
}
