//! Ingestion handlers: body validation (field-level errors), mapping of each seed's event
//! shape onto the event model, policy evaluation of `ai.request` / `ai.response`, durable
//! submit, idempotent replies.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::{ok, ApiError, Caller, Obj};
use crate::body::ProxyBody;
use crate::guard::{Ctx as GuardCtx, Locations, Outcome, Pass, Side};
use crate::provider::ApiFormat;
use crate::redact::Redactor;
use crate::store::evidence::{sha256_tagged, Timestamp};
use crate::store::{kind, summary, Event, Written};

pub struct Ctx<'a> {
    pub caller: &'a Caller<'a>,
    pub idem: Option<&'a str>,
    /// Fingerprint of the request body (`sha256:` of its canonical JSON) when an
    /// `Idempotency-Key` came with it: stored with the request's events as
    /// `data.idempotency_fingerprint`, so a later use of the key with another body is refused.
    pub idem_fp: Option<&'a str>,
}

/// The event id generated for the `i`-th event of a request that carried `Idempotency-Key`
/// `key` and no `event_id` of its own (a retry maps to the same events).
pub fn idem_id(ws: &str, key: &str, i: usize) -> String {
    let h = sha256_tagged(format!("{ws}\n{key}").as_bytes());
    format!("idem_{}_{i}", &h[7..23])
}

impl Ctx<'_> {
    fn ws(&self) -> &str {
        &self.caller.key.workspace
    }
    /// A generated event id: derived from `Idempotency-Key` (so a retry maps to the same
    /// event) or a fresh UUID.
    fn gen_id(&self, i: usize) -> String {
        match self.idem {
            Some(k) => idem_id(self.ws(), k, i),
            None => uuid::Uuid::now_v7().to_string(),
        }
    }
    fn chars(&self) -> usize {
        self.caller.sink.summary_chars()
    }
    async fn submit(&self, mut events: Vec<Event>) -> Result<Vec<Written>, ApiError> {
        if let Some(fp) = self.idem_fp {
            for ev in &mut events {
                ev.data
                    .insert("idempotency_fingerprint".into(), Value::from(fp));
            }
        }
        self.caller
            .sink
            .submit(events)
            .await
            .map_err(ApiError::store)
    }
}

struct Fields<'a> {
    obj: &'a Obj,
    prefix: String,
    errors: Vec<(String, String)>,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Obj, prefix: &str) -> Self {
        Fields {
            obj,
            prefix: prefix.into(),
            errors: Vec::new(),
        }
    }
    fn err(&mut self, f: &str, m: &str) {
        self.errors.push((format!("{}{f}", self.prefix), m.into()));
    }
    fn string(&mut self, f: &str, required: bool) -> Option<String> {
        match self.obj.get(f) {
            None | Some(Value::Null) => {
                if required {
                    self.err(f, "Required");
                }
                None
            }
            Some(Value::String(s)) if s.len() > 4096 => {
                self.err(f, "must be at most 4096 bytes");
                None
            }
            Some(Value::String(s)) if required && s.trim().is_empty() => {
                self.err(f, "must not be empty");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(f, "must be a string");
                None
            }
        }
    }
    fn object(&mut self, f: &str) -> Obj {
        match self.obj.get(f) {
            None | Some(Value::Null) => Obj::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                self.err(f, "must be an object");
                Obj::new()
            }
        }
    }
    fn time(&mut self, f: &str, required: bool) -> String {
        match self.string(f, required) {
            Some(s) => match Timestamp::parse(s.trim()) {
                Some(t) => t.to_rfc3339(),
                None => {
                    self.err(
                        f,
                        "must be an ISO 8601 / RFC 3339 timestamp, e.g. 2026-03-19T10:00:00Z",
                    );
                    String::new()
                }
            },
            None => Timestamp::now().to_rfc3339(),
        }
    }
    fn one_of(&mut self, f: &str, allowed: &[&str], default: Option<&str>) -> Option<String> {
        let Some(v) = self.string(f, default.is_none()) else {
            return default.map(String::from);
        };
        if allowed.contains(&v.as_str()) {
            Some(v)
        } else {
            self.err(f, &format!("must be one of: {}", allowed.join(", ")));
            None
        }
    }
    fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

fn as_obj(body: &Value, field: &str) -> Result<Obj, ApiError> {
    body.as_object()
        .cloned()
        .ok_or_else(|| ApiError::field(field, "must be a JSON object"))
}

/// `POST /v1/events`: SignalVault and Clairist types.
pub async fn events(ctx: &Ctx<'_>, body: Value) -> Result<Response<ProxyBody>, ApiError> {
    let obj = as_obj(&body, "body")?;
    let mut f = Fields::new(&obj, "");
    let ty = f.string("type", true);
    let Some(ty) = ty else {
        return f.finish().map(|()| unreachable_ok());
    };
    match ty.as_str() {
        kind::POLICY_VIOLATION | kind::BUDGET_EXCEEDED => {
            return Err(ApiError::field("type", format!("`{ty}` is system-generated and cannot be submitted")));
        }
        kind::AI_REQUEST | kind::AI_RESPONSE | kind::AI_ERROR | kind::AGENT_TOOL_CALL => {}
        "model_call" | "prompt" | "incident" | "evidence" => return clairist(ctx, &ty, &obj).await,
        _ => {
            return Err(ApiError::field(
                "type",
                "must be one of: ai.request, ai.response, ai.error, agent.tool_call, model_call, prompt, incident, evidence",
            ))
        }
    }
    let request_id = f.string("request_id", ty.starts_with("ai."));
    let event_id = f.string("event_id", false);
    let env = f.one_of(
        "environment",
        &["development", "staging", "production"],
        Some("production"),
    );
    let provider = f.string("provider", false);
    let model = f.string("model", false);
    let metadata = f.object("metadata");
    let payload = f.object("payload");
    f.finish()?;
    let event_id = event_id.unwrap_or_else(|| ctx.gen_id(0));
    // The same event_id again: the original result, no second record.
    if let Some(r) = stored_result(ctx, &event_id)? {
        return ok(r);
    }
    let meta_str = |k: &str| metadata.get(k).and_then(Value::as_str).map(String::from);
    let mut ev =
        Event::new(&ty, ctx.ws(), request_id.clone().unwrap_or_default()).event_id(&event_id);
    ev.request_id = request_id;
    ev.evidence.record_origin = "api".into();
    ev.evidence.provider = provider;
    ev.evidence.model = model.clone();
    ev.evidence.session_id = meta_str("session_id");
    ev.evidence.project_id = meta_str("project_id");
    ev.evidence.application_id = meta_str("application_id");
    ev.evidence.user_ref = meta_str("user_id");
    ev.evidence.route_path = meta_str("route");
    ev.evidence.metadata = metadata.clone();
    ev.data.insert("environment".into(), env.into());
    let policies = &ctx.caller.runtime.policies;
    let route = meta_str("route").unwrap_or_else(|| "api".into());
    let mut out = Outcome::default();
    let mut redactor = Redactor::new();
    let result = match ty.as_str() {
        kind::AI_REQUEST => {
            let monitor = payload
                .get("monitor_mode")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let messages = payload.get("messages").cloned().unwrap_or(json!([]));
            if !messages.is_array() {
                return Err(ApiError::field(
                    "payload.messages",
                    "must be an array of {role, content}",
                ));
            }
            let mut chat =
                json!({"model": model.clone().unwrap_or_default(), "messages": messages});
            let app = policies.applicable(&GuardCtx {
                side: Side::Request,
                route: &route,
                model: model.as_deref(),
            });
            if app.any() {
                out = policies
                    .guard_request(ApiFormat::OpenAiChat, &mut chat, &app, &mut redactor)
                    .map_err(|_| {
                        ApiError::field("payload.messages", "must be an array of {role, content}")
                    })?;
            }
            if monitor {
                for v in &mut out.violations {
                    v.enforced = false;
                }
            }
            let decision = if out.deny.is_some() && !monitor {
                "deny"
            } else {
                "allow"
            };
            let text = message_text(&chat["messages"]);
            ev = ev
                .input_summary(&text, ctx.chars())
                .decision(decision)
                .violations(&out.violations);
            ev.evidence.final_status = if decision == "deny" {
                "blocked"
            } else {
                "allowed"
            }
            .into();
            ev.data.insert("monitor_mode".into(), monitor.into());
            let redactions: Vec<Value> = out
                .violations
                .iter()
                .filter(|v| v.action == "redact" && v.enforced)
                .map(|v| json!({"rule_id": v.rule_id.as_ref(), "kind": v.kind.as_ref(), "location": v.location}))
                .collect();
            let mut r = json!({"event_id": event_id, "decision": decision, "violations": out.violations, "redactions": redactions});
            if out.modified && !monitor {
                r["redacted_payload"] = json!({"messages": chat["messages"]});
            }
            r
        }
        kind::AI_RESPONSE => {
            let output = payload
                .get("output")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let app = policies.applicable(&GuardCtx {
                side: Side::Response,
                route: &route,
                model: model.as_deref(),
            });
            let mut pass = Pass {
                app: &app,
                side: Side::Response,
                redactor: &mut redactor,
                out: &mut out,
            };
            let redacted = if app.any() {
                policies.guard_text(
                    &output,
                    Locations::ASSISTANT,
                    &|| "payload.output".into(),
                    &mut pass,
                )
            } else {
                None
            };
            ev = ev
                .output_summary(redacted.as_deref().unwrap_or(&output), ctx.chars())
                .violations(&out.violations);
            for k in ["usage", "cost_usd"] {
                if let Some(v) = payload.get(k) {
                    ev.data.insert(k.into(), v.clone());
                }
            }
            json!({"event_id": event_id, "status": "recorded", "violations": out.violations})
        }
        _ => {
            // ai.error / agent.tool_call: names, codes and a redacted summary only.
            for k in [
                "status",
                "code",
                "error_type",
                "tool_name",
                "name",
                "latency_ms",
            ] {
                if let Some(v) = payload.get(k).filter(|v| !v.is_object() && !v.is_array()) {
                    ev.data.insert(k.into(), v.clone());
                }
            }
            let text = payload
                .get("error")
                .or(payload.get("message"))
                .or(payload.get("arguments"))
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default();
            let app = policies.applicable(&GuardCtx {
                side: Side::Request,
                route: &route,
                model: model.as_deref(),
            });
            let mut pass = Pass {
                app: &app,
                side: Side::Request,
                redactor: &mut redactor,
                out: &mut out,
            };
            let red = if app.any() {
                policies.guard_text(
                    &text,
                    Locations::TOOL_ARGUMENTS.union(Locations::USER),
                    &|| "payload".into(),
                    &mut pass,
                )
            } else {
                None
            };
            ev = ev.input_summary(red.as_deref().unwrap_or(&text), ctx.chars());
            json!({"event_id": event_id})
        }
    };
    ev.data.insert("result".into(), result.clone());
    let mut batch = vec![ev.clone()];
    for (i, v) in out.violations.iter().enumerate() {
        let mut pv = Event::new(
            kind::POLICY_VIOLATION,
            ctx.ws(),
            ev.request_id.clone().unwrap_or_default(),
        )
        .event_id(format!("{event_id}.v{i}"))
        .guard_flag(&v.rule_id)
        .final_status(v.action);
        pv.request_id = ev.request_id.clone();
        pv.evidence.record_origin = "system".into();
        pv.data.insert(
            "violation".into(),
            serde_json::to_value(v).unwrap_or(Value::Null),
        );
        batch.push(pv);
    }
    let written = ctx.submit(batch).await?;
    if let Some(Written::Duplicate { .. }) = written.first() {
        if let Some(r) = stored_result(ctx, &event_id)? {
            return ok(r);
        }
    }
    ok(result)
}

fn unreachable_ok() -> Response<ProxyBody> {
    Response::new(crate::body::empty())
}

fn stored_result(ctx: &Ctx<'_>, event_id: &str) -> Result<Option<Value>, ApiError> {
    let Some(store) = ctx.caller.sink.store() else {
        return Ok(None);
    };
    Ok(store
        .get(ctx.ws(), event_id)
        .map_err(ApiError::store)?
        .map(|r| {
            r["data"]
                .get("result")
                .cloned()
                .unwrap_or_else(|| json!({"event_id": event_id}))
        }))
}

fn message_text(messages: &Value) -> String {
    let mut parts = Vec::new();
    for m in messages.as_array().into_iter().flatten() {
        match m.get("content") {
            Some(Value::String(s)) => parts.push(s.clone()),
            Some(Value::Array(a)) => {
                for p in a {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        parts.push(t.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    parts.join("\n")
}

fn redact(ctx: &Ctx<'_>, text: &str, side: Side) -> String {
    let policies = &ctx.caller.runtime.policies;
    let app = policies.applicable(&GuardCtx {
        side,
        route: "api",
        model: None,
    });
    if !app.any() {
        return summary(text, ctx.chars());
    }
    let mut out = Outcome::default();
    let mut redactor = Redactor::new();
    let mut pass = Pass {
        app: &app,
        side,
        redactor: &mut redactor,
        out: &mut out,
    };
    let loc = if side == Side::Response {
        Locations::ASSISTANT
    } else {
        Locations::USER
    };
    let r = policies.guard_text(text, loc, &|| "text".into(), &mut pass);
    summary(r.as_deref().unwrap_or(text), ctx.chars())
}

/// Clairist `model_call` / `prompt` / `incident` / `evidence` on `POST /v1/events`.
async fn clairist(ctx: &Ctx<'_>, ty: &str, obj: &Obj) -> Result<Response<ProxyBody>, ApiError> {
    let mut f = Fields::new(obj, "");
    let s = |f: &mut Fields, k: &str| f.string(k, false);
    let team = s(&mut f, "team_id");
    let system = s(&mut f, "system_id");
    let actor = s(&mut f, "actor_id");
    let subject = s(&mut f, "subject_id");
    let model = s(&mut f, "model_id");
    let prompt = s(&mut f, "prompt");
    let response = s(&mut f, "response");
    let title = s(&mut f, "title");
    let message = s(&mut f, "message");
    let event_id = s(&mut f, "event_id");
    let metadata = f.object("metadata");
    for k in ["request_count", "token_usage", "latency_ms"] {
        if obj.get(k).is_some_and(|v| !v.is_number() && !v.is_null()) {
            f.err(k, "must be a number");
        }
    }
    if obj
        .get("evidence")
        .is_some_and(|v| !v.is_array() && !v.is_null())
    {
        f.err("evidence", "must be an array");
    }
    f.finish()?;
    let event_id = event_id.unwrap_or_else(|| ctx.gen_id(0));
    if let Some(r) = stored_result(ctx, &event_id)? {
        return ok(r);
    }
    let mut ev = Event::new(ty, ctx.ws(), "").event_id(&event_id);
    ev.request_id = None;
    ev.evidence.record_origin = "api".into();
    ev.evidence.project_id = team;
    ev.evidence.application_id = system;
    ev.evidence.user_ref = actor;
    ev.evidence.session_id = subject;
    ev.evidence.model = model;
    ev.evidence.route_path = metadata
        .get("route")
        .and_then(Value::as_str)
        .map(String::from);
    ev.evidence.metadata = metadata;
    if let Some(p) = prompt {
        ev.evidence.input_summary = Some(redact(ctx, &p, Side::Request));
    }
    let out_text = response.or(match (&title, &message) {
        (Some(t), Some(m)) => Some(format!("{t}: {m}")),
        (Some(t), None) => Some(t.clone()),
        (None, m) => m.clone(),
    });
    if let Some(o) = out_text {
        ev.evidence.output_summary = Some(redact(ctx, &o, Side::Response));
    }
    ev.evidence.final_status = match ty {
        "model_call" => "answered",
        "incident" => "incident",
        "evidence" => "attached",
        _ => "logged",
    }
    .into();
    for k in [
        "request_count",
        "token_usage",
        "latency_ms",
        "scope",
        "action",
        "channel",
        "level",
        "incident_id",
        "lifecycle_type",
    ] {
        if let Some(v) = obj.get(k).filter(|v| !v.is_null()) {
            ev.data.insert(k.into(), v.clone());
        }
    }
    if let Some(Value::Array(items)) = obj.get("evidence") {
        ev.data.insert("evidence_items".into(), items.len().into());
    }
    let result = json!({"event_id": event_id, "status": "recorded"});
    ev.data.insert("result".into(), result.clone());
    ctx.submit(vec![ev]).await?;
    ok(result)
}

/// Igris `POST /api/v1/ingest/raw`: one event or `{"events": [...]}`; all-or-nothing.
pub async fn igris(ctx: &Ctx<'_>, body: Value) -> Result<Response<ProxyBody>, ApiError> {
    let (items, batch): (Vec<Value>, bool) = match &body {
        Value::Object(m) if m.contains_key("events") => match m.get("events") {
            Some(Value::Array(a)) => (a.clone(), true),
            _ => return Err(ApiError::field("events", "must be an array")),
        },
        Value::Object(_) => (vec![body.clone()], false),
        Value::Array(a) => (a.clone(), true),
        _ => {
            return Err(ApiError::field(
                "body",
                "must be an event object or {\"events\": [...]}",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::field("events", "must contain at least one event"));
    }
    check_batch_size(ctx, items.len(), "events")?;
    let mut errors = Vec::new();
    let mut events = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = if batch {
            format!("events[{i}].")
        } else {
            String::new()
        };
        let Some(obj) = item.as_object() else {
            errors.push((
                prefix.trim_end_matches('.').to_string(),
                "must be an object".into(),
            ));
            continue;
        };
        let mut f = Fields::new(obj, &prefix);
        let ty = f.one_of(
            "type",
            &["tool_call", "completion", "embedding", "custom"],
            None,
        );
        let tool = f.string("toolName", true);
        let action = f.one_of("action", &["allow", "deny", "alert", "log"], Some("log"));
        let at = f.time("timestamp", false);
        let metadata = f.object("metadata");
        let id = f.string("eventId", false);
        errors.extend(f.errors);
        let (Some(ty), Some(tool), Some(action)) = (ty, tool, action) else {
            continue;
        };
        let mut ev = Event::new(&ty, ctx.ws(), "").event_id(id.unwrap_or_else(|| ctx.gen_id(i)));
        ev.request_id = None;
        ev.evidence.record_origin = "api".into();
        ev.evidence.recorded_at = at;
        ev.evidence.model = metadata
            .get("model")
            .and_then(Value::as_str)
            .map(String::from);
        if ty == "completion" || ty == "embedding" {
            ev.evidence.model.get_or_insert(tool.clone());
        }
        ev.evidence.user_ref = metadata
            .get("userId")
            .and_then(Value::as_str)
            .map(String::from);
        ev.evidence.operator_action = Some(action.clone());
        ev.evidence.final_status = match action.as_str() {
            "allow" => "allowed",
            "deny" => "blocked",
            "alert" => "alerted",
            _ => "logged",
        }
        .into();
        ev.evidence.metadata = metadata;
        ev.data.insert("tool_name".into(), tool.into());
        events.push(ev);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let written = ctx.submit(events).await?;
    let ingested = written
        .iter()
        .filter(|w| matches!(w, Written::New { .. }))
        .count();
    let ids: Vec<&str> = written
        .iter()
        .map(|w| match w {
            Written::New { event_id, .. } | Written::Duplicate { event_id, .. } => {
                event_id.as_str()
            }
        })
        .collect();
    ok(json!({
        "data": {"ingested": ingested, "rejected": written.len() - ingested},
        "meta": {"workspace": ctx.ws(), "event_ids": ids},
    }))
}

async fn single(ctx: &Ctx<'_>, ev: Event) -> Result<Response<ProxyBody>, ApiError> {
    let id = ev.evidence.event_id.clone();
    let w = ctx.submit(vec![ev]).await?;
    let replayed = matches!(w.first(), Some(Written::Duplicate { .. }));
    let mut r = super::json_response(
        StatusCode::OK,
        &json!({"event_id": id, "status": "recorded"}),
    );
    if replayed {
        r.headers_mut().insert(
            "idempotent-replayed",
            http::HeaderValue::from_static("true"),
        );
    }
    Ok(r)
}

/// Seed 002 `POST /v1/ingest/runtime`: `route_id`, `event_id`, `timestamp` required.
pub async fn runtime(ctx: &Ctx<'_>, body: Value) -> Result<Response<ProxyBody>, ApiError> {
    let obj = as_obj(&body, "body")?;
    let mut f = Fields::new(&obj, "");
    let route = f.string("route_id", true);
    let id = f.string("event_id", true);
    let at = f.time("timestamp", true);
    let provider = f.string("provider", false);
    let model = f.string("model", false);
    let metadata = f.object("metadata");
    f.finish()?;
    let (Some(route), Some(id)) = (route, id) else {
        return Err(ApiError::validation(Vec::new()));
    };
    let mut ev = Event::new("runtime", ctx.ws(), "")
        .event_id(id)
        .route(&route);
    ev.request_id = None;
    ev.evidence.record_origin = "api".into();
    ev.evidence.recorded_at = at;
    ev.evidence.provider = provider;
    ev.evidence.model = model;
    ev.evidence.metadata = metadata;
    ev.evidence.final_status = "recorded".into();
    for (k, v) in &obj {
        if ![
            "route_id",
            "event_id",
            "timestamp",
            "provider",
            "model",
            "metadata",
        ]
        .contains(&k.as_str())
            && !v.is_object()
            && !v.is_array()
        {
            ev.data.insert(k.clone(), v.clone());
        }
    }
    single(ctx, ev).await
}

/// Seed 002 `POST /v1/ingest/change`: `provider`, `change_id`, `classification` required.
pub async fn change(ctx: &Ctx<'_>, body: Value) -> Result<Response<ProxyBody>, ApiError> {
    let obj = as_obj(&body, "body")?;
    let mut f = Fields::new(&obj, "");
    let provider = f.string("provider", true);
    let id = f.string("change_id", true);
    let class = f.string("classification", true);
    let at = f.time("timestamp", false);
    let metadata = f.object("metadata");
    f.finish()?;
    let (Some(provider), Some(id), Some(class)) = (provider, id, class) else {
        return Err(ApiError::validation(Vec::new()));
    };
    let mut ev = Event::new("change", ctx.ws(), "")
        .event_id(id)
        .provider(&provider);
    ev.request_id = None;
    ev.evidence.record_origin = "api".into();
    ev.evidence.recorded_at = at;
    ev.evidence.metadata = metadata;
    ev.evidence.final_status = "recorded".into();
    ev.data.insert("classification".into(), class.into());
    single(ctx, ev).await
}

const EVIDENCE_STRINGS: [&str; 14] = [
    "schema_version",
    "record_origin",
    "project_id",
    "application_id",
    "event_id",
    "session_id",
    "user_ref",
    "input_summary",
    "output_summary",
    "provider",
    "model",
    "route_path",
    "operator_action",
    "final_status",
];
const LEVEL2: [&str; 6] = [
    "evidentiary_strength",
    "degradation_reason",
    "trace_continuity_status",
    "trace_reconstruction_status",
    "attribution_validity",
    "attribution_strength",
];

/// Seed 003 `POST /v1/evidence/events`: one record, an array, or `{"events": [...]}`.
pub async fn evidence_post(ctx: &Ctx<'_>, body: Value) -> Result<Response<ProxyBody>, ApiError> {
    let (items, batch) = match &body {
        Value::Array(a) => (a.clone(), true),
        Value::Object(m) if m.get("events").is_some_and(Value::is_array) => {
            (m["events"].as_array().cloned().unwrap_or_default(), true)
        }
        Value::Object(_) => (vec![body.clone()], false),
        _ => {
            return Err(ApiError::field(
                "body",
                "must be a record, an array or {\"events\": [...]}",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::field(
            "events",
            "must contain at least one record",
        ));
    }
    check_batch_size(ctx, items.len(), "records")?;
    let mut errors = Vec::new();
    let mut events = Vec::new();
    let mut claimed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = if batch {
            format!("events[{i}].")
        } else {
            String::new()
        };
        let Some(obj) = item.as_object() else {
            errors.push((format!("events[{i}]"), "must be an object".into()));
            continue;
        };
        let mut f = Fields::new(obj, &prefix);
        for k in obj.keys() {
            let known = EVIDENCE_STRINGS.contains(&k.as_str())
                || LEVEL2.contains(&k.as_str())
                || [
                    "recorded_at",
                    "fallback_used",
                    "guard_flags",
                    "confidence_signals",
                    "metadata",
                    "evidence_hash",
                ]
                .contains(&k.as_str());
            if !known {
                f.err(k, "unknown field");
            }
        }
        let mut ev = Event::new(kind::EVIDENCE_RECORD, ctx.ws(), "");
        ev.request_id = None;
        let e = &mut ev.evidence;
        e.record_origin = "manual_post".into();
        e.final_status = "answered".into();
        e.event_id = ctx.gen_id(i);
        let vals: Vec<Option<String>> = EVIDENCE_STRINGS
            .iter()
            .map(|k| f.string(k, false))
            .collect();
        for (k, v) in EVIDENCE_STRINGS.iter().zip(vals) {
            let Some(v) = v else { continue };
            match *k {
                "schema_version" => e.schema_version = v,
                "record_origin" => e.record_origin = v,
                "project_id" => e.project_id = Some(v),
                "application_id" => e.application_id = Some(v),
                "event_id" => e.event_id = v,
                "session_id" => e.session_id = Some(v),
                "user_ref" => e.user_ref = Some(v),
                "input_summary" => e.input_summary = Some(v),
                "output_summary" => e.output_summary = Some(v),
                "provider" => e.provider = Some(v),
                "model" => e.model = Some(v),
                "route_path" => e.route_path = Some(v),
                "operator_action" => e.operator_action = Some(v),
                _ => e.final_status = v,
            }
        }
        e.recorded_at = f.time("recorded_at", false);
        match obj.get("fallback_used") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => e.fallback_used = *b,
            Some(_) => f.err("fallback_used", "must be true or false"),
        }
        match obj.get("guard_flags") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                e.guard_flags = a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect();
            }
            Some(_) => f.err("guard_flags", "must be an array of strings"),
        }
        if e.guard_flags.iter().all(|g| g.trim().is_empty()) {
            e.guard_flags = vec!["none".into()];
        }
        e.confidence_signals = f.object("confidence_signals");
        e.metadata = f.object("metadata");
        for k in LEVEL2 {
            if let Some(v) = f.string(k, false) {
                ev.data.insert(k.into(), v.into());
            }
        }
        let claim = f.string("evidence_hash", false);
        errors.extend(f.errors);
        let computed = crate::store::evidence::evidence_hash(&ev.evidence);
        if let Some(c) = claim {
            if c != computed {
                errors.push((
                    format!("{prefix}evidence_hash"),
                    format!("does not match the normalized fields (expected {computed})"),
                ));
            }
        }
        claimed.push(ev.evidence.event_id.clone());
        events.push(ev);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let written = ctx.submit(events.clone()).await?;
    let mut out = Vec::new();
    for (w, ev) in written.iter().zip(&events) {
        let (status, id) = match w {
            Written::New { event_id, .. } => ("recorded", event_id),
            Written::Duplicate { event_id, .. } => ("duplicate", event_id),
        };
        let stored = ctx
            .caller
            .sink
            .store()
            .and_then(|s| s.get(ctx.ws(), id).ok().flatten());
        out.push(json!({
            "event_id": id,
            "status": status,
            "recorded_at": stored.as_ref().map_or(Value::Null, |r| r["recorded_at"].clone()),
            "evidence_hash": stored.as_ref().map_or(Value::Null, |r| r["evidence_hash"].clone()),
            "schema_version": ev.evidence.schema_version,
        }));
    }
    let _ = claimed;
    ok(json!({"ok": true, "event_count": out.len(), "events": out}))
}

/// 413 when a request carries more items than `[store] max_events_per_request`.
fn check_batch_size(ctx: &Ctx<'_>, count: usize, noun: &str) -> Result<(), ApiError> {
    let max = ctx.caller.runtime.config.store.max_events_per_request;
    if count > max {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("at most {max} {noun} per request"),
            details: Vec::new(),
        });
    }
    Ok(())
}
