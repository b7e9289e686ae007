//! What a proxied call leaves in the event store (`crate::store`): the `CallRecord` the
//! phases fill in, and the events built from it when the call's response body ends.
//!
//! Every call records, as one batch (contiguous in the workspace's chain): `ai.request`
//! (decision, request violations, input summary), one `policy.violation` per request match,
//! `ai.response` or `ai.error` (status, latency, time to first token, usage, model, endpoint,
//! failover path, output summary, response violations), one `agent.tool_call` per tool call
//! in the answer, and one `policy.violation` per response match. Calls refused before
//! anything was sent (deny, 401, 404, 413, ...) record `ai.request` + `ai.error` with the
//! error code. The workspace is the virtual key's, else `default`.
//!
//! Off the response path: the phases only keep cheap handles (the request body `Bytes`, the
//! response frames as `Bytes` clones up to `MAX_CAPTURE`); parsing the bodies and building
//! the events happens in a task spawned when the body ends, which then queues the batch
//! (`EventSink::record_all`: bounded wait, counted drops, drained at shutdown).
//!
//! Stored text never holds a matched value: summaries come from what went upstream and what
//! the client received (redactions already applied), are masked again with every rule of
//! the call's policy snapshot (`PolicySet::mask_all`, so alert / log / monitor matches and
//! the values of a denied request are masked too), then cut to `[store]
//! content_summary_chars` — whole on `full_content_routes`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::guard::{PolicySet, Violation};
use crate::provider::{self, ApiFormat, StreamItem, StreamNormalizer, Usage};
use crate::store::{kind, Event, EventSink, Reservation};

/// Response bytes kept for parsing at the end of a call; beyond this the answer is not
/// parsed (`data.output_truncated`: no output summary, usage or tool calls recorded).
pub const MAX_CAPTURE: usize = 1 << 20;

/// Characters scanned around a summary cut, so a value crossing the cut is still masked.
const MASK_MARGIN: usize = 512;

/// What a guarded stream reported when it ended (filled by the stream's end hook, read when
/// the call's events are built — the stream ends before the observing body does).
#[derive(Debug, Default)]
pub struct StreamReport {
    pub violations: Vec<Violation>,
    pub denied: bool,
}

/// The recording state of one call, filled in by the phases.
pub struct CallRecord {
    sink: EventSink,
    slot: Reservation,
    policies: Arc<PolicySet>,
    request_id: String,
    method: String,
    path: String,
    /// The virtual key's workspace (`default` when none).
    pub workspace: Option<String>,
    pub format: Option<ApiFormat>,
    /// Requested model.
    pub model: Option<String>,
    pub stream: bool,
    /// The body that went upstream (redacted), or the client's body when it did not go.
    pub request_body: Bytes,
    pub request_violations: Vec<Violation>,
    pub request_denied: bool,
    pub response_violations: Vec<Violation>,
    pub response_denied: bool,
    pub stream_report: Option<Arc<Mutex<StreamReport>>>,
    /// Parapet's error code when the call failed in Parapet (`ProxyError::code`).
    pub error_code: Option<&'static str>,
    captured: Vec<Bytes>,
    captured_len: usize,
    truncated: bool,
    pub ttft: Option<Duration>,
    /// Endpoints the request was sent to, in order (the failover path).
    pub attempts: Vec<String>,
    /// Each move to another endpoint.
    pub failovers: Vec<Failover>,
}

/// One failover of a call (a `failover.attempt` event).
#[derive(Debug, Clone)]
pub struct Failover {
    pub from: String,
    pub to: String,
    /// One of `metrics::FAILOVER_REASONS`.
    pub reason: &'static str,
    /// Number of the attempt sent to `to` (1 = first).
    pub attempt: usize,
    /// Milliseconds since the call started.
    pub at_ms: f64,
}

/// How the call ended (from the metrics state).
pub struct CallEnded {
    pub route: Option<String>,
    pub endpoint: Option<String>,
    pub provider: Option<&'static str>,
    pub status: Option<u16>,
    /// The response body reached its end.
    pub complete: bool,
    pub latency: Duration,
    pub upstream_ttfb: Option<Duration>,
}

impl CallRecord {
    /// A record for one call with its reserved queue slot (waits, bounded, while the queue
    /// is full), or `None` when the store is disabled or no slot became free.
    pub async fn start(
        sink: &EventSink,
        policies: &Arc<PolicySet>,
        request_id: &str,
        method: &str,
        path: &str,
    ) -> Option<Box<CallRecord>> {
        let slot = sink.reserve().await?;
        Some(Box::new(CallRecord {
            sink: sink.clone(),
            slot,
            policies: policies.clone(),
            request_id: request_id.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            workspace: None,
            format: None,
            model: None,
            stream: false,
            request_body: Bytes::new(),
            request_violations: Vec::new(),
            request_denied: false,
            response_violations: Vec::new(),
            response_denied: false,
            stream_report: None,
            error_code: None,
            captured: Vec::new(),
            captured_len: 0,
            truncated: false,
            ttft: None,
            attempts: Vec::new(),
            failovers: Vec::new(),
        }))
    }

    /// Keep a handle on one response frame (no copy) while under `MAX_CAPTURE`.
    pub fn capture(&mut self, chunk: &Bytes) {
        if self.truncated {
            return;
        }
        if self.captured_len + chunk.len() > MAX_CAPTURE {
            self.truncated = true;
            self.captured = Vec::new();
            return;
        }
        self.captured_len += chunk.len();
        self.captured.push(chunk.clone());
    }

    /// Build the call's events off the response path and queue them as one batch in the
    /// call's reserved slot.
    pub fn finish(self: Box<Self>, ended: CallEnded) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    // Let the worker serve what is ready first (the connection's next
                    // request above all): a freshly spawned task runs next on this worker,
                    // ahead of the I/O it would otherwise delay; after a yield it runs
                    // once the worker has polled for I/O (often while that request waits
                    // for its upstream) or on an idle worker.
                    tokio::task::yield_now().await;
                    let events = self.events(&ended);
                    self.slot.send(events);
                });
            }
            Err(_) => {
                crate::metrics::events_dropped(1);
                tracing::error!(request_id = %self.request_id, "no runtime to record the call; its events are dropped");
            }
        }
    }

    /// The call's events, in order.
    fn events(&self, ended: &CallEnded) -> Vec<Event> {
        let workspace = self.workspace.as_deref().unwrap_or("default");
        let chars = match &ended.route {
            Some(r) if self.sink.full_content(r) => usize::MAX,
            _ => self.sink.summary_chars(),
        };
        let base = |k: &str| {
            let mut e = Event::new(k, workspace, self.request_id.as_str());
            if let Some(r) = &ended.route {
                e = e.route(r);
            }
            if let Some(ep) = &ended.endpoint {
                e = e.endpoint(ep);
            }
            if let Some(p) = ended.provider {
                e = e.provider(p);
            }
            if let Some(m) = &self.model {
                e = e.model(m);
            }
            e
        };

        let mut events = Vec::new();
        // ai.request
        let enforced =
            |vs: &[Violation], action: &str| vs.iter().any(|v| v.enforced && v.action == action);
        let decision = if self.request_denied {
            "deny"
        } else if enforced(&self.request_violations, "redact") {
            "redact"
        } else {
            "allow"
        };
        let mut req = base(kind::AI_REQUEST)
            .decision(decision)
            .violations(&self.request_violations)
            .final_status(if self.request_denied {
                "blocked"
            } else {
                "allowed"
            })
            .set("method", self.method.as_str())
            .set("path", self.path.as_str())
            .set("stream", self.stream);
        if let Some(f) = self.format {
            req = req.set("api", f.as_str());
        }
        if let Some(text) = self.input_text() {
            req = req.input_summary(&self.mask(&text, chars), chars);
        }
        events.push(req);
        for v in &self.request_violations {
            events.push(violation_event(base(kind::POLICY_VIOLATION), v));
        }

        for f in &self.failovers {
            events.push(
                base(kind::FAILOVER_ATTEMPT)
                    .endpoint(&f.to)
                    .set("from", f.from.as_str())
                    .set("to", f.to.as_str())
                    .set("reason", f.reason)
                    .set("attempt", f.attempt)
                    .set("at_ms", f.at_ms),
            );
        }

        // ai.response / ai.error
        let answer = if self.truncated {
            Answer::default()
        } else {
            self.parse_answer()
        };
        let (stream_violations, stream_denied) = match &self.stream_report {
            Some(slot) => match slot.lock() {
                Ok(r) => (r.violations.clone(), r.denied),
                Err(_) => (Vec::new(), false),
            },
            None => (Vec::new(), false),
        };
        let mut resp_violations = self.response_violations.clone();
        resp_violations.extend(stream_violations);
        let resp_denied = self.response_denied || stream_denied;
        let blocked = self.request_denied || resp_denied;
        let failed = !blocked
            && (!ended.complete
                || ended.status.map_or(true, |s| s >= 400)
                || answer.error.is_some());
        let mut out = base(if failed || self.request_denied {
            kind::AI_ERROR
        } else {
            kind::AI_RESPONSE
        })
        .latency_ms(ms(ended.latency))
        .violations(&resp_violations);
        if let Some(m) = &answer.model {
            out = out.model(m);
        }
        if let Some(s) = ended.status {
            out = out.status(s);
        }
        if let Some(t) = self.ttft {
            out = out.ttft_ms(ms(t));
        }
        if let Some(t) = ended.upstream_ttfb {
            out = out.set("upstream_ttfb_ms", ms(t));
        }
        if !self.attempts.is_empty() {
            let path: Vec<&str> = self.attempts.iter().map(String::as_str).collect();
            out = out.failover_path(&path);
        }
        if let Some(u) = answer.usage {
            out = out.set("usage", usage_json(&u));
        }
        if !answer.finish.is_empty() {
            out = out.set("finish_reason", answer.finish.clone());
        }
        if resp_denied {
            out = out.decision("deny");
        } else if enforced(&resp_violations, "redact") {
            out = out.decision("redact");
        }
        if blocked {
            out = out.final_status("blocked");
        }
        if let Some(code) = self.error_code {
            out = out.set("error_code", code);
        } else if !ended.complete {
            out = out.set(
                "error_code",
                if ended.status.is_some() {
                    "response_incomplete"
                } else {
                    "client_disconnected"
                },
            );
        } else if failed {
            out = out.set("error_code", "upstream_error");
        }
        if let Some(e) = &answer.error {
            // Type and code only: a provider's message can quote the input.
            out = out.set("upstream_error", json!({"type": e.kind, "code": e.code}));
        }
        if self.truncated {
            out = out.set("output_truncated", true);
        }
        if !answer.text.is_empty() && self.error_code.is_none() {
            out = out.output_summary(&self.mask(&answer.text, chars), chars);
        }
        events.push(out);

        for call in &answer.tool_calls {
            let mut e = base(kind::AGENT_TOOL_CALL)
                .set("tool_index", call.index)
                .set(
                    "arguments",
                    crate::store::summary(&self.mask(&call.arguments, chars), chars),
                );
            if let Some(name) = &call.name {
                e = e.set("tool_name", self.policies.mask_all(name));
            }
            if let Some(id) = &call.id {
                e = e.set("tool_call_id", id.as_str());
            }
            events.push(e);
        }
        for v in &resp_violations {
            events.push(violation_event(base(kind::POLICY_VIOLATION), v));
        }
        events
    }

    /// `text` masked with every rule; when it will be cut, only the part kept (plus a
    /// margin, so a value crossing the cut is masked whole) is scanned.
    fn mask(&self, text: &str, chars: usize) -> String {
        let keep = match chars.checked_add(MASK_MARGIN) {
            Some(n) => match text.char_indices().nth(n) {
                Some((i, _)) => &text[..i],
                None => text,
            },
            None => text,
        };
        self.policies.mask_all(keep)
    }

    /// The request text to summarize: the last user-side segment (user message, prompt,
    /// embedding input, tool result), else the last segment.
    fn input_text(&self) -> Option<String> {
        let format = self.format?;
        if self.request_body.is_empty() {
            return None;
        }
        if format == ApiFormat::OpenAiChat {
            if let Some(text) = provider::chat_input_text(&self.request_body) {
                return text;
            }
        }
        let body: Value = serde_json::from_slice(&self.request_body).ok()?;
        let view = provider::parse_request(format, &body).ok()?;
        provider::input_text_of(&view.segments)
    }

    fn parse_answer(&self) -> Answer {
        let Some(format) = self.format else {
            return Answer::default();
        };
        let mut bytes = Vec::with_capacity(self.captured_len);
        for chunk in &self.captured {
            bytes.extend_from_slice(chunk);
        }
        if bytes.is_empty() {
            return Answer::default();
        }
        if bytes.starts_with(b"{") || bytes.starts_with(b"[") {
            return Answer::from_json(format, &bytes);
        }
        Answer::from_sse(format, &bytes)
    }
}

fn violation_event(base: Event, v: &Violation) -> Event {
    base.violations(std::slice::from_ref(v))
        .set("rule_id", v.rule_id.as_ref())
        .set("action", v.action)
        .set("severity", v.severity)
        .set("side", v.side)
        .set("enforced", v.enforced)
        .set("location", v.location.as_str())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn usage_json(u: &Usage) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<u64>| {
        if let Some(v) = v {
            m.insert(k.into(), v.into());
        }
    };
    put("input_tokens", u.input_tokens);
    put("output_tokens", u.output_tokens);
    put("total_tokens", u.total());
    put("cache_creation_input_tokens", u.cache_creation_input_tokens);
    put("cache_read_input_tokens", u.cache_read_input_tokens);
    Value::Object(m)
}

/// A tool call assembled from the answer.
#[derive(Debug, Default)]
struct Tool {
    index: usize,
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

/// What the recorder reads from an answer (non-streamed or streamed).
#[derive(Debug, Default)]
struct Answer {
    model: Option<String>,
    text: String,
    usage: Option<Usage>,
    finish: Vec<String>,
    tool_calls: Vec<Tool>,
    error: Option<provider::ErrorInfo>,
}

impl Answer {
    fn from_json(format: ApiFormat, bytes: &[u8]) -> Answer {
        let chat = matches!(format, ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions);
        if let Some(s) = chat.then(|| provider::answer_summary(bytes)).flatten() {
            return Answer {
                model: s.model,
                text: s.text,
                usage: s.usage,
                finish: s.finish,
                ..Answer::default()
            };
        }
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
            return Answer::default();
        };
        let Ok(view) = provider::parse_response(format, &body) else {
            return Answer::default();
        };
        let s = provider::AnswerSummary::of_view(&view);
        Answer {
            model: s.model,
            text: s.text,
            usage: s.usage,
            finish: s.finish,
            tool_calls: view
                .tool_calls
                .into_iter()
                .map(|t| Tool {
                    index: t.index,
                    id: t.id,
                    name: t.name,
                    arguments: t.arguments,
                })
                .collect(),
            error: view.error,
        }
    }

    fn from_sse(format: ApiFormat, bytes: &[u8]) -> Answer {
        let mut norm = StreamNormalizer::new(format);
        let mut a = Answer::default();
        let mut tools: Vec<(provider::StreamPos, Tool)> = Vec::new();
        // Read in place: the captured stream is whole, so no incremental decoder (which
        // copies every event into its buffer, its data and its raw bytes) is needed.
        crate::sse::for_each_event(bytes, |event, data| {
            let Ok(items) = norm.push_data(event, data) else {
                return;
            };
            for item in items {
                match item {
                    StreamItem::Meta { model, .. } if a.model.is_none() => a.model = model,
                    StreamItem::TextDelta {
                        pos,
                        text,
                        reasoning: false,
                        ..
                    } if pos.choice == 0 => {
                        a.text.push_str(&text);
                    }
                    StreamItem::ToolCallDelta {
                        pos,
                        id,
                        name,
                        arguments,
                        ..
                    } => {
                        let i = match tools.iter().position(|(p, _)| *p == pos) {
                            Some(i) => i,
                            None => {
                                tools.push((
                                    pos,
                                    Tool {
                                        index: pos.item,
                                        ..Tool::default()
                                    },
                                ));
                                tools.len() - 1
                            }
                        };
                        let t = &mut tools[i].1;
                        if t.id.is_none() {
                            t.id = id;
                        }
                        if t.name.is_none() {
                            t.name = name;
                        }
                        t.arguments.push_str(&arguments);
                    }
                    StreamItem::Usage(u) => match &mut a.usage {
                        Some(have) => have.merge(&u),
                        None => a.usage = Some(u),
                    },
                    StreamItem::Finish(f) => {
                        if let Some(r) = f.reason {
                            a.finish.push(r);
                        }
                    }
                    StreamItem::Error(e) => a.error = Some(e),
                    _ => {}
                }
            }
        });
        a.tool_calls = tools.into_iter().map(|(_, t)| t).collect();
        a
    }
}
