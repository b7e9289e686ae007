//! The event model: event types, the seed-003 evidence fields with their defaults, and the
//! builder the proxy uses to describe a call (`Event::new(kind, workspace, request_id)`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::evidence::Timestamp;

/// Event type names.
pub mod kind {
    pub const AI_REQUEST: &str = "ai.request";
    pub const AI_RESPONSE: &str = "ai.response";
    pub const AI_ERROR: &str = "ai.error";
    pub const AGENT_TOOL_CALL: &str = "agent.tool_call";
    /// System-generated only.
    pub const POLICY_VIOLATION: &str = "policy.violation";
    /// System-generated only.
    pub const BUDGET_EXCEEDED: &str = "budget.exceeded";
    pub const FAILOVER_ATTEMPT: &str = "failover.attempt";
    /// A seed-003 record posted to `POST /v1/evidence/events`.
    pub const EVIDENCE_RECORD: &str = "evidence.record";
}

/// The seed-003 evidence fields every stored event carries (defaults as in the seed:
/// `schema_version` `v1`, `final_status` `answered`, empty `guard_flags` → `["none"]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub schema_version: String,
    pub record_origin: String,
    pub project_id: Option<String>,
    pub application_id: Option<String>,
    pub event_id: String,
    pub session_id: Option<String>,
    /// RFC 3339; stored in the canonical UTC form.
    pub recorded_at: String,
    pub user_ref: Option<String>,
    pub input_summary: Option<String>,
    pub output_summary: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub route_path: Option<String>,
    pub fallback_used: bool,
    pub guard_flags: Vec<String>,
    pub confidence_signals: Map<String, Value>,
    pub operator_action: Option<String>,
    pub final_status: String,
    pub metadata: Map<String, Value>,
}

impl Evidence {
    /// Evidence with the seed defaults and the given id and time.
    pub fn new(event_id: String, recorded_at: String) -> Evidence {
        Evidence::with_origin(event_id, recorded_at, "manual_post", "answered")
    }

    /// Evidence with the seed defaults but the given origin and final status (no default
    /// string allocated only to be replaced).
    fn with_origin(
        event_id: String,
        recorded_at: String,
        record_origin: &str,
        final_status: &str,
    ) -> Evidence {
        Evidence {
            schema_version: "v1".into(),
            record_origin: record_origin.into(),
            project_id: None,
            application_id: None,
            event_id,
            session_id: None,
            recorded_at,
            user_ref: None,
            input_summary: None,
            output_summary: None,
            provider: None,
            model: None,
            route_path: None,
            fallback_used: false,
            guard_flags: Vec::new(),
            confidence_signals: Map::new(),
            operator_action: None,
            final_status: final_status.into(),
            metadata: Map::new(),
        }
    }
}

/// One event to store. Type-specific values (status, latency, usage, decision, violations,
/// endpoint, failover path, ...) live in `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `ai.request`, `ai.response`, ... (see [`kind`]).
    pub kind: String,
    pub workspace: String,
    pub request_id: Option<String>,
    pub evidence: Evidence,
    pub data: Map<String, Value>,
    /// The id was generated here (UUID v7, `Event::new`): the writer skips the duplicate
    /// lookup. Cleared by [`Event::event_id`].
    pub fresh_id: bool,
}

/// Room reserved in a proxy event's `data` (an `ai.response` sets up to 13 members).
const PROXY_DATA_MEMBERS: usize = 16;

/// A text cut to at most `max_chars` characters (an ellipsis marks the cut).
pub fn summary(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((i, _)) => {
            let mut s = text[..i].to_string();
            s.push('…');
            s
        }
    }
}

impl Event {
    /// A proxy-path event: fresh `event_id` (UUID v7: time-ordered, so the writer's
    /// `event_id` keys go to the end of the key space instead of all over it),
    /// `recorded_at` now, `record_origin` `proxy`, `final_status` from the type
    /// (`requested`, `answered`, `error`, ...).
    pub fn new(kind: &str, workspace: impl Into<String>, request_id: impl Into<String>) -> Event {
        let final_status = match kind {
            kind::AI_REQUEST => "requested",
            kind::AI_RESPONSE => "answered",
            kind::AI_ERROR => "error",
            kind::POLICY_VIOLATION => "violation",
            kind::FAILOVER_ATTEMPT => "failover",
            _ => "recorded",
        };
        let evidence = Evidence::with_origin(
            uuid::Uuid::now_v7().to_string(),
            Timestamp::now().to_rfc3339(),
            "proxy",
            final_status,
        );
        Event {
            kind: kind.into(),
            workspace: workspace.into(),
            request_id: Some(request_id.into()),
            evidence,
            // A proxy event's `data` holds up to about a dozen members: sized once.
            data: Map::with_capacity(PROXY_DATA_MEMBERS),
            fresh_id: true,
        }
    }

    /// Set a type-specific value in `data`.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.data.insert(key.into(), value.into());
        self
    }
    pub fn event_id(mut self, id: impl Into<String>) -> Event {
        self.evidence.event_id = id.into();
        self.fresh_id = false;
        self
    }
    /// Route id: `route_path` evidence field.
    pub fn route(mut self, route: &str) -> Event {
        self.evidence.route_path = Some(route.into());
        self
    }
    pub fn endpoint(self, endpoint: &str) -> Event {
        self.set("endpoint", endpoint)
    }
    pub fn provider(mut self, provider: &str) -> Event {
        self.evidence.provider = Some(provider.into());
        self
    }
    pub fn model(mut self, model: &str) -> Event {
        self.evidence.model = Some(model.into());
        self
    }
    pub fn status(self, status: u16) -> Event {
        self.set("status", status)
    }
    pub fn latency_ms(self, ms: f64) -> Event {
        self.set("latency_ms", ms)
    }
    pub fn ttft_ms(self, ms: f64) -> Event {
        self.set("ttft_ms", ms)
    }
    pub fn usage(self, prompt_tokens: u64, completion_tokens: u64) -> Event {
        self.set(
            "usage",
            serde_json::json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}),
        )
    }
    /// `allow` / `deny` / `redact` / `monitor`: stored in `data.decision` and as
    /// `operator_action`.
    pub fn decision(mut self, decision: &str) -> Event {
        self.evidence.operator_action = Some(decision.into());
        self.set("decision", decision)
    }
    /// Violations (never contain matched values); their rule ids become `guard_flags`.
    pub fn violations(mut self, violations: &[crate::guard::Violation]) -> Event {
        for v in violations {
            let id = v.rule_id.to_string();
            if !self.evidence.guard_flags.contains(&id) {
                self.evidence.guard_flags.push(id);
            }
        }
        let list = serde_json::to_value(violations).unwrap_or(Value::Null);
        self.set("violations", list)
    }
    /// Redacted input text, cut to `max_chars` (`[store] content_summary_chars`).
    pub fn input_summary(mut self, redacted: &str, max_chars: usize) -> Event {
        self.evidence.input_summary = Some(summary(redacted, max_chars));
        self
    }
    /// Redacted output text, cut to `max_chars`.
    pub fn output_summary(mut self, redacted: &str, max_chars: usize) -> Event {
        self.evidence.output_summary = Some(summary(redacted, max_chars));
        self
    }
    /// Endpoints tried in order; `fallback_used` when more than one.
    pub fn failover_path(mut self, endpoints: &[&str]) -> Event {
        self.evidence.fallback_used = endpoints.len() > 1;
        self.set("failover_path", endpoints.to_vec())
    }
    pub fn final_status(mut self, status: &str) -> Event {
        self.evidence.final_status = status.into();
        self
    }
    pub fn guard_flag(mut self, flag: &str) -> Event {
        self.evidence.guard_flags.push(flag.into());
        self
    }
    pub fn session_id(mut self, id: &str) -> Event {
        self.evidence.session_id = Some(id.into());
        self
    }
    pub fn project_id(mut self, id: &str) -> Event {
        self.evidence.project_id = Some(id.into());
        self
    }
    pub fn application_id(mut self, id: &str) -> Event {
        self.evidence.application_id = Some(id.into());
        self
    }
    pub fn user_ref(mut self, id: &str) -> Event {
        self.evidence.user_ref = Some(id.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_fields() {
        let e = Event::new(kind::AI_RESPONSE, "default", "req-1")
            .route("openai")
            .endpoint("oa")
            .model("gpt-4o")
            .status(200)
            .failover_path(&["a", "b"])
            .output_summary("héllo world", 3);
        assert_eq!(e.evidence.route_path.as_deref(), Some("openai"));
        assert!(e.evidence.fallback_used);
        assert_eq!(e.evidence.output_summary.as_deref(), Some("hél…"));
        assert_eq!(e.data["status"], 200);
        assert_eq!(e.evidence.final_status, "answered");
        assert_eq!(e.evidence.event_id.len(), 36);
    }
}
