//! The OpenTelemetry tracer provider. It always gives spans their ids (log lines and stored trace contexts need
//! them); with `otel.endpoint` set, sampled spans also go to a batch exporter that posts OTLP/HTTP protobuf to
//! `{endpoint}/v1/traces`. Without it nothing is sampled, so spans are never recorded nor sent.
//!
//! The exporter sends through our reqwest 0.12 client (rustls with ring): the SDK runs exports on a thread of its
//! own, so each request is spawned onto the tokio runtime that was current at start.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::config::Settings;

/// The most of a collector's answer we read (it is a few bytes of protobuf).
const MAX_ANSWER: usize = 1024 * 1024;

/// The provider, and why export is off although configured (to be logged once logging runs).
pub(super) fn provider(settings: &Settings) -> (SdkTracerProvider, Option<String>) {
    let builder = SdkTracerProvider::builder().with_resource(resource(settings));
    let Some(endpoint) = &settings.otel.endpoint else {
        return (builder.with_sampler(Sampler::AlwaysOff).build(), None);
    };
    match exporter(settings, endpoint) {
        Ok(exporter) => {
            let ratio = Sampler::TraceIdRatioBased(settings.otel.sample_ratio);
            (builder.with_sampler(Sampler::ParentBased(Box::new(ratio))).with_batch_exporter(exporter).build(), None)
        }
        Err(e) => (builder.with_sampler(Sampler::AlwaysOff).build(), Some(e)),
    }
}

/// Where traces are posted: the OTLP/HTTP path under the configured base.
pub(super) fn traces_url(endpoint: &url::Url) -> String {
    format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'))
}

fn exporter(settings: &Settings, endpoint: &url::Url) -> Result<SpanExporter, String> {
    let o = &settings.otel;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| "no async runtime to send spans from")?;
    let timeout = Duration::from_secs(o.timeout_secs);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let headers: HashMap<String, String> = o.header_pairs()?.into_iter().collect();
    SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { client, runtime })
        .with_endpoint(traces_url(endpoint))
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
        .with_headers(headers)
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))
}

fn resource(settings: &Settings) -> Resource {
    let mut attributes = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("deployment.environment.name", settings.env.as_str()),
    ];
    if let Some(name) = &settings.instance.name {
        attributes.push(KeyValue::new("service.instance.id", name.clone()));
    }
    Resource::builder().with_service_name(settings.otel.service_name.clone()).with_attributes(attributes).build()
}

/// reqwest on the process's tokio runtime, callable from the exporter's own thread.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let mut response = client.execute(request).await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut response = Response::builder().status(status).body(Bytes::from(body))?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
