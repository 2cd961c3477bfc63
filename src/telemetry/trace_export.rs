//! Trace export over OTLP/HTTP (docs/observability.md), configured by the
//! standard `OTEL_*` variables and off unless an endpoint is set.
//!
//! Exporting never delays a reply: an ended span is handed to the SDK's
//! batch processor, whose own thread sends batches to the collector. The
//! queue in front of it is bounded ([`BoundedQueue`]); a span that does not
//! fit is dropped and counted (`lcm_spans_dropped_total{reason}`), as is
//! every span of a batch the collector did not take.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;

use super::metrics::{self, SpanDrop};
use super::Throttle;

/// The semantic conventions the spans follow, by their schema URL: the
/// version `opentelemetry-semantic-conventions` was generated from.
pub use opentelemetry_semantic_conventions::SCHEMA_URL;

/// The service name when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` gives one.
const SERVICE_NAME: &str = "lcm-worker";

/// The SDK's default for `OTEL_BSP_MAX_QUEUE_SIZE`.
const DEFAULT_QUEUE: usize = 2048;

/// What the `OTEL_*` variables ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    /// No export: spans are not recorded, trace context still goes on.
    Off(&'static str),
    /// OTLP/HTTP with protobuf bodies to `endpoint`.
    Otlp {
        /// Where batches go, credentials left out, for the log.
        endpoint: String,
        /// Spans waiting for export at most (`OTEL_BSP_MAX_QUEUE_SIZE`).
        queue: usize,
    },
}

impl TraceExport {
    /// Reads the settings through `var` (the environment, or a test's
    /// table). `Err` names a variable whose value cannot be honoured.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(Self::Off("OTEL_SDK_DISABLED=true"));
        }
        match set("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(Self::Off("OTEL_TRACES_EXPORTER=none")),
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_EXPORTER={other}: only otlp and none are supported"
                ))
            }
        }
        let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .map(|url| ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url))
            .or_else(|| {
                set("OTEL_EXPORTER_OTLP_ENDPOINT").map(|url| ("OTEL_EXPORTER_OTLP_ENDPOINT", url))
            });
        let Some((name, endpoint)) = endpoint else {
            return Ok(Self::Off("no OTEL_EXPORTER_OTLP_ENDPOINT"));
        };
        let protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol.filter(|p| p.trim() != "http/protobuf") {
            return Err(format!(
                "OTLP protocol {protocol}: only http/protobuf is supported"
            ));
        }
        let url = url::Url::parse(endpoint.trim()).map_err(|error| format!("{name}: {error}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "{name}: scheme {}: export goes over plain HTTP (http://) to a collector near the worker",
                url.scheme()
            ));
        }
        let queue = var("OTEL_BSP_MAX_QUEUE_SIZE")
            .and_then(|size| size.trim().parse().ok())
            .unwrap_or(DEFAULT_QUEUE);
        Ok(Self::Otlp {
            endpoint: format!(
                "http://{}:{}{}",
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(80),
                url.path()
            ),
            queue,
        })
    }
}

impl std::fmt::Display for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off(why) => write!(f, "export off ({why})"),
            Self::Otlp { endpoint, queue } => {
                write!(f, "OTLP/HTTP to {endpoint}, queue of {queue} spans")
            }
        }
    }
}

/// The tracer spans are made with; `None` while export is off.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The provider, kept for [`flush_traces`].
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// The tracer of an exporting worker.
pub(super) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Starts exporting as `export` says, reading the rest of the SDK's
/// settings (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_TIMEOUT`
/// and `_HEADERS`) from the environment. Called once, before the runtime
/// starts: the HTTP client runs a thread of its own.
pub fn init_traces(export: &TraceExport) -> Result<(), String> {
    let TraceExport::Otlp { queue, .. } = *export else {
        return Ok(());
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(|error| format!("OTLP exporter: {error}"))?;
    let outstanding = Arc::new(AtomicUsize::new(0));
    let batches = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        outstanding: outstanding.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(queue)
            .build(),
    )
    .build();
    let mut resource = Resource::builder();
    if !names_service() {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BoundedQueue {
            inner: batches,
            outstanding,
            capacity: queue,
        })
        .with_resource(resource.build())
        .build();
    let scope = InstrumentationScope::builder(SERVICE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build();
    let _ = TRACER.set(provider.tracer_with_scope(scope));
    *PROVIDER.lock().unwrap_or_else(|e| e.into_inner()) = Some(provider);
    Ok(())
}

/// Whether the environment names the service itself.
fn names_service() -> bool {
    let var = |name| std::env::var(name).unwrap_or_default();
    !var("OTEL_SERVICE_NAME").trim().is_empty()
        || var("OTEL_RESOURCE_ATTRIBUTES").contains("service.name=")
}

/// Sends the spans still queued, waiting `within` at most; a collector
/// that does not take them by then loses them. Called once, as the
/// process ends.
pub fn flush_traces(within: Duration) {
    let Some(provider) = PROVIDER.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // The shutdown and the provider's drop wait for the exporting thread,
    // which a collector that does not answer holds for its time-out.
    super::on_own_thread_within("lcm-trace-flush", within, move || {
        let _ = provider.shutdown_with_timeout(within);
        drop(provider);
    });
}

/// Bounds the spans waiting for export, and counts what it turns away.
/// The batch processor below drops silently when its own queue is full;
/// this bound is the same size and counts from the same spans, so that
/// every span lost is counted here and none is lost below.
#[derive(Debug)]
struct BoundedQueue {
    inner: BatchSpanProcessor,
    /// Spans handed on and not yet through an export.
    outstanding: Arc<AtomicUsize>,
    capacity: usize,
}

impl SpanProcessor for BoundedQueue {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.outstanding.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            metrics::spans_dropped(SpanDrop::QueueFull, 1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the spans of each batch as they leave the
/// queue and those of a batch the collector did not take.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    outstanding: Arc<AtomicUsize>,
}

/// One warning a minute at most about failed exports.
static EXPORT_FAILED: Throttle = Throttle::new(Duration::from_secs(60));

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.outstanding.fetch_sub(spans, Ordering::AcqRel);
        if let Err(error) = &result {
            metrics::spans_dropped(SpanDrop::ExportFailed, spans as u64);
            if let Some(held_back) = EXPORT_FAILED.allow() {
                tracing::warn!(%error, spans, held_back, "trace export failed; the batch is dropped");
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<TraceExport, String> {
        TraceExport::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn export_is_off_unless_an_endpoint_is_set_and_nothing_turns_it_off() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        #[rustfmt::skip]
        let off: [&[(&str, &str)]; 5] = [
            &[],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")],
            &[endpoint, ("OTEL_SDK_DISABLED", "TRUE")],
            &[endpoint, ("OTEL_TRACES_EXPORTER", "none")],
            &[("OTEL_SERVICE_NAME", "desk")],
        ];
        for vars in off {
            assert!(matches!(read(vars), Ok(TraceExport::Off(_))), "{vars:?}");
        }
        assert_eq!(
            read(&[endpoint, ("OTEL_SDK_DISABLED", "false")]),
            Ok(TraceExport::Otlp {
                endpoint: "http://collector:4318/".into(),
                queue: DEFAULT_QUEUE
            })
        );
    }

    #[test]
    fn the_traces_endpoint_wins_and_credentials_stay_out_of_the_log() {
        let export = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://user:secret@b/v1/traces",
            ),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
        ]);
        assert_eq!(
            export,
            Ok(TraceExport::Otlp {
                endpoint: "http://b:80/v1/traces".into(),
                queue: 64
            })
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        #[rustfmt::skip]
        let refused: [(&[(&str, &str)], &str); 5] = [
            (&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], "grpc"),
            (&[endpoint, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")], "http/json"),
            (&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")], "OTEL_TRACES_EXPORTER=zipkin"),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")], "scheme https"),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318:x")], "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ];
        for (vars, says) in refused {
            let error = read(vars).expect_err(says);
            assert!(error.contains(says), "{error}");
        }
    }
}
