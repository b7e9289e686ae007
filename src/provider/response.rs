//! Non-streaming response bodies parsed into a [`ResponseView`]: answer segments, ids,
//! usage, finish reasons, tool calls and provider error objects.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::request::{anthropic_content, chat_tool_calls, responses_items};
use super::walk::{
    at, key, meta, meta_index, meta_text, meta_u64, obj, opt_array, opt_string, root_obj,
};
use super::{ApiFormat, NormalizeError, PathElem, Segment, SegmentKind};

/// Token usage; each field is `None` when the provider did not report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// `prompt_tokens` / `input_tokens`.
    pub input_tokens: Option<u64>,
    /// `completion_tokens` / `output_tokens`.
    pub output_tokens: Option<u64>,
    /// `total_tokens` as reported (Anthropic reports none; see [`Usage::total`]).
    pub total_tokens: Option<u64>,
    /// Anthropic `cache_creation_input_tokens`.
    pub cache_creation_input_tokens: Option<u64>,
    /// Anthropic `cache_read_input_tokens`, OpenAI `*_tokens_details.cached_tokens`.
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Reads any of the OpenAI and Anthropic usage field names from a `usage` object.
    pub fn from_json(v: &Value) -> Option<Self> {
        let o = v.as_object()?;
        let cached = |details: &str| {
            o.get(details)
                .and_then(Value::as_object)
                .and_then(|d| meta_u64(d, "cached_tokens"))
        };
        Some(Usage {
            input_tokens: meta_u64(o, "prompt_tokens").or_else(|| meta_u64(o, "input_tokens")),
            output_tokens: meta_u64(o, "completion_tokens")
                .or_else(|| meta_u64(o, "output_tokens")),
            total_tokens: meta_u64(o, "total_tokens"),
            cache_creation_input_tokens: meta_u64(o, "cache_creation_input_tokens"),
            cache_read_input_tokens: meta_u64(o, "cache_read_input_tokens")
                .or_else(|| cached("prompt_tokens_details"))
                .or_else(|| cached("input_tokens_details")),
        })
    }

    /// Overwrites fields with the ones `later` reports (Anthropic sends input tokens in
    /// `message_start` and cumulative output tokens in `message_delta`).
    pub fn merge(&mut self, later: &Usage) {
        let pick = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(&mut self.total_tokens, later.total_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
    }

    /// The reported total, or input + output when no total was reported.
    pub fn total(&self) -> Option<u64> {
        self.total_tokens
            .or(match (self.input_tokens, self.output_tokens) {
                (None, None) => None,
                (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
            })
    }
}

/// Why a choice / response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// Choice index (chat, completions); 0 for Responses and Anthropic.
    pub index: usize,
    /// `finish_reason`, Responses `status`, or Anthropic `stop_reason`.
    pub reason: Option<String>,
    /// Responses `incomplete_details.reason`, if any.
    pub detail: Option<String>,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// Choice index (chat), output index (Responses) or content block index (Anthropic).
    pub index: usize,
    /// Call id (`id`, `call_id`).
    pub id: Option<String>,
    /// Tool name.
    pub name: Option<String>,
    /// Argument text (OpenAI: the JSON string as sent; Anthropic: compact JSON of `input`).
    pub arguments: String,
}

/// A provider error object (`{"error": {"type", "message", "code"}}`, both vendors).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorInfo {
    /// `error.type`.
    pub kind: Option<String>,
    /// `error.message`.
    pub message: Option<String>,
    /// `error.code` (string or number, rendered as text).
    pub code: Option<String>,
}

impl ErrorInfo {
    /// Reads an error object (`{"type","message","code"}`).
    pub fn from_json(v: &Value) -> Option<Self> {
        let o = v.as_object()?;
        Some(ErrorInfo {
            kind: meta(o, "type").map(str::to_owned),
            message: meta(o, "message").map(str::to_owned),
            code: meta_text(o, "code"),
        })
    }
}

/// The normalized view of a non-streaming response body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseView {
    /// Response id.
    pub id: Option<String>,
    /// Model that answered.
    pub model: Option<String>,
    /// Answer text segments (tool-call names and arguments included).
    pub segments: Vec<Segment>,
    /// Token usage, if reported.
    pub usage: Option<Usage>,
    /// Finish reasons, one per choice (one for Responses / Anthropic).
    pub finish: Vec<Finish>,
    /// Tool calls in body order.
    pub tool_calls: Vec<ToolCall>,
    /// The provider error object, for error bodies (or failed Responses).
    pub error: Option<ErrorInfo>,
}

/// Parses a response body of `format`. Missing arrays (e.g. in error bodies) are empty;
/// known fields of the wrong type are errors.
pub fn parse_response(format: ApiFormat, body: &Value) -> Result<ResponseView, NormalizeError> {
    parse_response_at(format, body, &[])
}

/// [`parse_response`] for a body nested at `base` (paths of segments include `base`);
/// used for the full response carried by streaming `response.completed` events.
pub(crate) fn parse_response_at(
    format: ApiFormat,
    body: &Value,
    base: &[PathElem],
) -> Result<ResponseView, NormalizeError> {
    let root = if base.is_empty() {
        root_obj(body)?
    } else {
        obj(body, base)?
    };
    let mut view = ResponseView {
        id: meta(root, "id").map(str::to_owned),
        model: meta(root, "model").map(str::to_owned),
        usage: root.get("usage").and_then(Usage::from_json),
        error: root.get("error").and_then(ErrorInfo::from_json),
        ..ResponseView::default()
    };
    match format {
        ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions => chat(root, base, &mut view)?,
        ApiFormat::OpenAiResponses => responses(root, base, &mut view)?,
        ApiFormat::OpenAiEmbeddings => {}
        ApiFormat::AnthropicMessages => anthropic(root, base, &mut view)?,
    }
    Ok(view)
}

fn chat(
    root: &Map<String, Value>,
    base: &[PathElem],
    view: &mut ResponseView,
) -> Result<(), NormalizeError> {
    for (i, c) in opt_array(root, "choices", base)?.iter().enumerate() {
        let cbase = at(base, &[key("choices"), PathElem::Index(i)]);
        let co = obj(c, &cbase)?;
        let index = meta_index(co, "index", i);
        view.finish.push(Finish {
            index,
            reason: meta(co, "finish_reason").map(str::to_owned),
            detail: None,
        });
        // Legacy completions: `choices[].text`.
        if let Some(t) = opt_string(co, "text", &cbase)? {
            view.segments.push(Segment::new(
                SegmentKind::Assistant,
                t,
                at(&cbase, &[key("text")]),
            ));
        }
        let Some(m) = co.get("message").filter(|m| !m.is_null()) else {
            continue;
        };
        let mbase = at(&cbase, &[key("message")]);
        let mo = obj(m, &mbase)?;
        let role = meta(mo, "role").or(Some("assistant"));
        let texts = super::walk::content_texts(
            mo.get("content"),
            &at(&mbase, &[key("content")]),
            &[("text", "text"), ("refusal", "refusal")],
        )?;
        super::walk::push_content(
            &mut view.segments,
            texts,
            SegmentKind::Assistant,
            role,
            (None, None),
        );
        if let Some(r) = opt_string(mo, "refusal", &mbase)? {
            view.segments.push(
                Segment::new(SegmentKind::Assistant, r, at(&mbase, &[key("refusal")])).role(role),
            );
        }
        let first = view.segments.len();
        chat_tool_calls(mo, &mbase, role, &mut view.segments)?;
        collect_calls(view, first, |_| index);
    }
    Ok(())
}

/// Builds [`ToolCall`]s from the name/argument segments pushed since `first`.
fn collect_calls(view: &mut ResponseView, first: usize, index_of: impl Fn(&Segment) -> usize) {
    let mut calls: Vec<ToolCall> = Vec::new();
    let mut by_path: HashMap<Vec<PathElem>, usize> = HashMap::new();
    for seg in view.segments.get(first..).unwrap_or_default() {
        if !matches!(
            seg.kind,
            SegmentKind::ToolCallName | SegmentKind::ToolCallArguments
        ) {
            continue;
        }
        // Name and arguments of one call share the path up to the last element.
        let parent = seg
            .path
            .get(..seg.path.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec();
        let slot = *by_path.entry(parent).or_insert_with(|| {
            calls.push(ToolCall {
                index: index_of(seg),
                id: seg.tool_call_id.clone(),
                name: seg.tool_name.clone(),
                arguments: String::new(),
            });
            calls.len() - 1
        });
        if seg.kind == SegmentKind::ToolCallArguments {
            if let Some(c) = calls.get_mut(slot) {
                c.arguments.clone_from(&seg.text);
            }
        }
    }
    view.tool_calls.extend(calls);
}

fn responses(
    root: &Map<String, Value>,
    base: &[PathElem],
    view: &mut ResponseView,
) -> Result<(), NormalizeError> {
    if root.contains_key("status") {
        view.finish.push(Finish {
            index: 0,
            reason: meta(root, "status").map(str::to_owned),
            detail: root
                .get("incomplete_details")
                .and_then(Value::as_object)
                .and_then(|d| meta(d, "reason"))
                .map(str::to_owned),
        });
    }
    let obase = at(base, &[key("output")]);
    let first = view.segments.len();
    responses_items(opt_array(root, "output", base)?, &obase, &mut view.segments)?;
    let depth = obase.len();
    collect_calls(view, first, |s| match s.path.get(depth) {
        Some(PathElem::Index(i)) => *i,
        _ => 0,
    });
    Ok(())
}

fn anthropic(
    root: &Map<String, Value>,
    base: &[PathElem],
    view: &mut ResponseView,
) -> Result<(), NormalizeError> {
    if root.contains_key("stop_reason") {
        view.finish.push(Finish {
            index: 0,
            reason: meta(root, "stop_reason").map(str::to_owned),
            detail: None,
        });
    }
    let role = meta(root, "role").or(Some("assistant"));
    let cbase = at(base, &[key("content")]);
    let first = view.segments.len();
    let mut names = HashMap::new();
    anthropic_content(
        root.get("content"),
        &cbase,
        role,
        &mut names,
        &mut view.segments,
        true,
    )?;
    let depth = cbase.len();
    collect_calls(view, first, |s| match s.path.get(depth) {
        Some(PathElem::Index(i)) => *i,
        _ => 0,
    });
    Ok(())
}
