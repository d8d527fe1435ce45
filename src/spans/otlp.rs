//! OpenTelemetry JSON: the OTLP/JSON encoding of an `ExportTraceServiceRequest`
//! (opentelemetry-proto's `collector/trace/v1/trace_service.proto` and
//! `trace/v1/trace.proto`, mapped to JSON as the OTLP specification's "JSON Protobuf
//! Encoding" says: lowerCamelCase field names, trace and span ids as hex strings,
//! 64-bit integers as decimal strings, enums as integers).
//!
//! One resource per actor (`service.name` = `n0`, `c1`...), one scope (`faultline`),
//! its spans in id order. Times are simulated: `startTimeUnixNano` is ns since the
//! run began, so a viewer shows the run as starting at the Unix epoch. An OTLP
//! collector's file receiver (or Jaeger's upload of OTLP JSON) reads the file as is.

use serde::Serialize;

use super::{RunSpans, Span, SpanActor, SpanStatus, SpanValue};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource,
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Serialize)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<OtlpSpan<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    parent_span_id: String,
    name: &'a str,
    kind: i32,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue>,
    status: Status,
}

#[derive(Serialize)]
struct Status {
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    code: i32,
}

#[derive(Serialize)]
struct KeyValue {
    key: String,
    value: AnyValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum AnyValue {
    /// proto3 JSON writes int64 as a decimal string.
    IntValue(String),
    StringValue(String),
}

fn key_value(key: &str, value: &SpanValue) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: match value {
            SpanValue::Int(i) => AnyValue::IntValue(i.to_string()),
            SpanValue::Str(s) => AnyValue::StringValue(s.clone()),
        },
    }
}

fn resource(spans: &RunSpans, actor: SpanActor) -> Resource {
    let text = |s: &str| SpanValue::Str(s.to_string());
    let role = match actor {
        SpanActor::Node(_) => "node",
        SpanActor::Client(_) => "client",
    };
    Resource {
        attributes: vec![
            key_value("service.name", &text(&actor.to_string())),
            key_value("faultline.role", &text(role)),
            key_value("faultline.scenario", &text(&spans.scenario)),
            key_value("faultline.protocol", &text(&spans.protocol)),
            key_value("faultline.seed", &text(&spans.seed.to_string())),
        ],
    }
}

fn span<'a>(spans: &RunSpans, s: &'a Span) -> OtlpSpan<'a> {
    let (code, message) = match &s.status {
        SpanStatus::Unset => (0, String::new()),
        SpanStatus::Ok => (1, String::new()),
        SpanStatus::Error(m) => (2, m.clone()),
    };
    OtlpSpan {
        trace_id: spans.trace_id(s.trace),
        span_id: RunSpans::span_id(s.id),
        parent_span_id: s.parent.map(RunSpans::span_id).unwrap_or_default(),
        name: &s.name,
        kind: s.kind as i32,
        start_time_unix_nano: s.start_ns.to_string(),
        end_time_unix_nano: s.end_ns.to_string(),
        attributes: s.attrs.iter().map(|(k, v)| key_value(k, v)).collect(),
        status: Status { message, code },
    }
}

/// The run's spans as an OTLP/JSON `ExportTraceServiceRequest` on one line (a long
/// run has hundreds of thousands of spans): the same spans give the same bytes.
pub fn to_json(spans: &RunSpans) -> String {
    let resource_spans = spans
        .actors()
        .into_iter()
        .map(|actor| ResourceSpans {
            resource: resource(spans, actor),
            scope_spans: vec![ScopeSpans {
                scope: Scope {
                    name: "faultline",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans: spans
                    .spans
                    .iter()
                    .filter(|s| s.actor == actor)
                    .map(|s| span(spans, s))
                    .collect(),
            }],
        })
        .collect();
    let request = Request { resource_spans };
    let mut json = serde_json::to_string(&request).expect("spans serialize");
    json.push('\n');
    json
}
