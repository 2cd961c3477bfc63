//! An OTLP/HTTP trace receiver of a test's own: it accepts
//! `POST /v1/traces` with a protobuf body, as a collector does, and keeps
//! every span it decodes, with its service's resource.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::time::Instant;

use super::wait::WAIT;

/// A span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub span: Span,
}

impl ReceivedSpan {
    /// A string, integer or boolean attribute, as text.
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        any_value::Value::IntValue(number) => Some(number.to_string()),
        any_value::Value::BoolValue(flag) => Some(flag.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
}

/// The receiver; it stops when dropped, or by [`OtlpReceiver::stop`].
pub struct OtlpReceiver {
    /// `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    received: Arc<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts a receiver on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(received.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            endpoint,
            received,
            server,
        }
    }

    /// The worker settings that export to this receiver, a batch every
    /// 50 ms so that a test waits little.
    pub fn worker_env(&self) -> [(&str, &str); 2] {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ]
    }

    /// Stops accepting: the port refuses connections from now on.
    pub fn stop(&self) {
        self.server.abort();
    }

    /// Waits until `count` spans of `trace_id` have arrived, and returns
    /// them; panics at the deadline with what did arrive.
    pub async fn spans_of(&self, trace_id: &[u8], count: usize) -> Vec<ReceivedSpan> {
        self.wait_on_trace(trace_id, |spans| {
            (spans.len() >= count).then(|| spans.to_vec())
        })
        .await
    }

    /// Waits until the span of `trace_id` whose name starts with `prefix`
    /// has arrived, and returns it. The spans of one request reach the
    /// receiver in more than one batch (a parent ends after its
    /// children), so a count of spans does not say which have come.
    pub async fn span_named(&self, trace_id: &[u8], prefix: &str) -> ReceivedSpan {
        self.wait_on_trace(trace_id, |spans| {
            spans
                .iter()
                .find(|s| s.span.name.starts_with(prefix))
                .cloned()
        })
        .await
    }

    /// Polls the spans of `trace_id` until `found` returns something;
    /// panics at the deadline with the spans that did arrive.
    async fn wait_on_trace<T>(
        &self,
        trace_id: &[u8],
        found: impl Fn(&[ReceivedSpan]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let spans: Vec<ReceivedSpan> = self
                .all()
                .into_iter()
                .filter(|s| s.span.trace_id == trace_id)
                .collect();
            if let Some(answer) = found(&spans) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "what was awaited of the trace did not arrive; {} spans did: {spans:#?}",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every span received so far.
    pub fn all(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().unwrap().clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn export(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = received.spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| attribute(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    StatusCode::OK
}
