//! Streaming (SSE) forms: a per-format normalizer turning each decoded [`SseEvent`]
//! into typed [`StreamItem`]s, and [`rebuild_event`] to re-emit an event with changed text.
//!
//! State machine: [`StreamNormalizer`] is fed one event at a time, in order. It keeps
//! only what later events need and do not repeat: the tool-call id and name announced
//! at the start of a call (chat: first `tool_calls[]` delta of an index; Responses:
//! `response.output_item.added`; Anthropic: `content_block_start`), so every
//! [`StreamItem::ToolCallDelta`] carries them. Text is not accumulated here; the
//! guardrail holds back and joins deltas per [`StreamPos`].
//!
//! Every delta item carries the path of its text inside the event's `data` JSON, so a
//! redacted event is `rebuild_event(&event, &[(path, new_text)])`. Summary events that
//! repeat already-streamed text (Responses `*.done`, `response.completed`) yield
//! [`StreamItem::FullText`] so that text can be redacted consistently too.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::request::responses_item;
use super::response::{parse_response_at, ErrorInfo, Finish, Usage};
use super::walk::{at, input_object_text, key, meta, meta_index, obj, opt_array, opt_string};
use super::{set_text, ApiFormat, NormalizeError, PathElem, Segment, SegmentKind};
use crate::sse::{encode, SseEvent};

/// Where a delta belongs; the hold-back key for the guardrail.
///
/// - chat / completions: `choice` = `choices[].index`; text has `item` 0, a tool call
///   has `item` = `tool_calls[].index` and `part` 1 (so text and calls never collide);
/// - Responses: `item` = `output_index`, `part` = `content_index` (a reasoning summary:
///   [`SUMMARY_PART`] + `summary_index`);
/// - Anthropic: `item` = content block `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct StreamPos {
    /// Choice index (OpenAI chat / completions), else 0.
    pub choice: usize,
    /// Tool-call index, output index or content block index.
    pub item: usize,
    /// Content index (Responses), 1 for chat tool calls, else 0.
    pub part: usize,
}

/// One normalized piece of a streamed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// Response id / model, reported once, from the first event that has them.
    Meta {
        /// Response id.
        id: Option<String>,
        /// Model.
        model: Option<String>,
    },
    /// A fragment of answer text (incl. refusals).
    TextDelta {
        /// Where it belongs.
        pos: StreamPos,
        /// The fragment.
        text: String,
        /// Location of the fragment in the event's data JSON.
        path: Vec<PathElem>,
        /// The model's reasoning (Anthropic `thinking`, Responses reasoning text and
        /// summaries): guarded like the answer, not part of the answer's text.
        reasoning: bool,
    },
    /// A fragment of a tool call (the first one usually carries only id and name).
    ToolCallDelta {
        /// Where it belongs.
        pos: StreamPos,
        /// Call id (remembered from the call's start).
        id: Option<String>,
        /// Tool name (remembered from the call's start).
        name: Option<String>,
        /// Argument fragment (may be empty).
        arguments: String,
        /// Location of the fragment in the event's data JSON, if the event carries one.
        path: Option<Vec<PathElem>>,
    },
    /// A content block / output item / argument stream is complete.
    BlockDone {
        /// Which one.
        pos: StreamPos,
    },
    /// Complete copies of text already streamed as deltas, with paths in this event's data.
    FullText {
        /// The segments.
        segments: Vec<Segment>,
    },
    /// A choice or the response finished.
    Finish(Finish),
    /// Usage report (merge successive ones with [`Usage::merge`]).
    Usage(Usage),
    /// A provider error event.
    Error(ErrorInfo),
    /// The end marker: `[DONE]`, Anthropic `message_stop`, Responses terminal events.
    Done,
    /// Nothing to inspect (pings, role-only deltas, unknown events): relay as is.
    Other,
}

/// Responses: [`StreamPos::part`] of a reasoning item's summary `i` is `SUMMARY_PART + i`
/// (its content parts use their `content_index`).
pub const SUMMARY_PART: usize = 1 << 16;

/// Per-stream normalizer for one [`ApiFormat`].
#[derive(Debug)]
pub struct StreamNormalizer {
    format: ApiFormat,
    tools: HashMap<StreamPos, (Option<String>, Option<String>)>,
    meta_sent: bool,
}

impl StreamNormalizer {
    /// A normalizer for a fresh stream.
    pub fn new(format: ApiFormat) -> Self {
        Self {
            format,
            tools: HashMap::new(),
            meta_sent: false,
        }
    }

    /// Normalizes one event. Non-JSON data (other than `[DONE]`) is
    /// [`NormalizeError::InvalidJson`]; known fields of the wrong type are errors.
    pub fn push(&mut self, ev: &SseEvent) -> Result<Vec<StreamItem>, NormalizeError> {
        self.push_data(ev.event.as_deref(), &ev.data)
    }

    /// [`StreamNormalizer::push`] for an event given as its type and data (borrowed, as
    /// [`crate::sse::for_each_event`] reads them).
    pub fn push_data(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<StreamItem>, NormalizeError> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(vec![StreamItem::Done]);
        }
        // Chat chunks: the typed fast path, unless it declines.
        if event.is_none()
            && matches!(
                self.format,
                ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions
            )
        {
            let tools = &mut self.tools;
            let mut tool =
                |pos, id: Option<&str>, name: Option<&str>| remember_tool(tools, pos, id, name);
            let want_meta = !self.meta_sent;
            if let Some(items) = super::fast_chat::chunk_items(data, want_meta, &mut tool) {
                if want_meta && matches!(items.first(), Some(StreamItem::Meta { .. })) {
                    self.meta_sent = true;
                }
                return Ok(items);
            }
        }
        self.push_value(event, data)
    }

    /// [`StreamNormalizer::push`] through a `serde_json::Value` walk (every format and
    /// shape; the reference the chat fast path is tested against).
    pub(crate) fn push_value(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<StreamItem>, NormalizeError> {
        let v: Value = super::strict::parse_strict(data.as_bytes()).map_err(|e| {
            if super::strict::is_duplicate_key(&e) {
                NormalizeError::DuplicateKey
            } else {
                NormalizeError::InvalidJson(e.to_string())
            }
        })?;
        let Some(o) = v.as_object() else {
            return Ok(vec![StreamItem::Other]);
        };
        let ty = meta(o, "type").or(event).unwrap_or_default();
        if ty == "error" || (ty.is_empty() && o.get("error").is_some_and(Value::is_object)) {
            let info = o
                .get("error")
                .and_then(ErrorInfo::from_json)
                .or_else(|| ErrorInfo::from_json(&v));
            return Ok(vec![StreamItem::Error(info.unwrap_or_default())]);
        }
        let mut out = Vec::new();
        match self.format {
            ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions => self.chat(o, &mut out)?,
            ApiFormat::OpenAiResponses => self.responses(ty, o, &mut out)?,
            ApiFormat::AnthropicMessages => self.anthropic(ty, o, &mut out)?,
            ApiFormat::OpenAiEmbeddings => {}
        }
        if out.is_empty() {
            out.push(StreamItem::Other);
        }
        Ok(out)
    }

    fn meta_once(&mut self, o: &Map<String, Value>, out: &mut Vec<StreamItem>) {
        if self.meta_sent || !o.contains_key("id") {
            return;
        }
        self.meta_sent = true;
        out.push(StreamItem::Meta {
            id: meta(o, "id").map(str::to_owned),
            model: meta(o, "model").map(str::to_owned),
        });
    }

    /// Records / completes the id and name of a tool call.
    fn tool(
        &mut self,
        pos: StreamPos,
        id: Option<&str>,
        name: Option<&str>,
    ) -> (Option<String>, Option<String>) {
        remember_tool(&mut self.tools, pos, id, name)
    }

    fn chat(
        &mut self,
        o: &Map<String, Value>,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), NormalizeError> {
        self.meta_once(o, out);
        for (i, c) in opt_array(o, "choices", &[])?.iter().enumerate() {
            let cbase = vec![key("choices"), PathElem::Index(i)];
            let co = obj(c, &cbase)?;
            let choice = meta_index(co, "index", i);
            let tpos = StreamPos {
                choice,
                item: 0,
                part: 0,
            };
            if let Some(t) = opt_string(co, "text", &cbase)?.filter(|t| !t.is_empty()) {
                out.push(text_delta(tpos, t, at(&cbase, &[key("text")])));
            }
            if let Some(d) = co.get("delta").filter(|d| !d.is_null()) {
                let dbase = at(&cbase, &[key("delta")]);
                let d = obj(d, &dbase)?;
                for field in ["content", "refusal"] {
                    if let Some(t) = opt_string(d, field, &dbase)?.filter(|t| !t.is_empty()) {
                        out.push(text_delta(tpos, t, at(&dbase, &[key(field)])));
                    }
                }
                self.chat_tool_deltas(d, &dbase, choice, out)?;
            }
            if let Some(r) = meta(co, "finish_reason") {
                out.push(StreamItem::Finish(Finish {
                    index: choice,
                    reason: Some(r.to_owned()),
                    detail: None,
                }));
            }
        }
        if let Some(u) = o.get("usage").and_then(Usage::from_json) {
            out.push(StreamItem::Usage(u));
        }
        Ok(())
    }

    fn chat_tool_deltas(
        &mut self,
        d: &Map<String, Value>,
        dbase: &[PathElem],
        choice: usize,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), NormalizeError> {
        let mut calls: Vec<CallRef<'_>> = Vec::new();
        for (j, tc) in opt_array(d, "tool_calls", dbase)?.iter().enumerate() {
            let tbase = at(dbase, &[key("tool_calls"), PathElem::Index(j)]);
            let to = obj(tc, &tbase)?;
            let Some(f) = to.get("function").filter(|f| !f.is_null()) else {
                continue;
            };
            let fbase = at(&tbase, &[key("function")]);
            calls.push((
                meta_index(to, "index", j),
                meta(to, "id"),
                fbase.clone(),
                obj(f, &fbase)?,
            ));
        }
        if let Some(f) = d.get("function_call").filter(|f| !f.is_null()) {
            let fbase = at(dbase, &[key("function_call")]);
            calls.push((0, None, fbase.clone(), obj(f, &fbase)?));
        }
        for (index, id, fbase, fo) in calls {
            let pos = StreamPos {
                choice,
                item: index,
                part: 1,
            };
            let ids = self.tool(pos, id, opt_string(fo, "name", &fbase)?);
            let args = opt_string(fo, "arguments", &fbase)?;
            out.push(chat_tool_delta(pos, ids, args, &fbase));
        }
        Ok(())
    }

    fn responses(
        &mut self,
        ty: &str,
        o: &Map<String, Value>,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), NormalizeError> {
        let pos = StreamPos {
            choice: 0,
            item: meta_index(o, "output_index", 0),
            part: meta_index(o, "content_index", 0),
        };
        match ty {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = o.get("response").and_then(Value::as_object) {
                    self.meta_once(r, out);
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(t) = opt_string(o, "delta", &[])? {
                    out.push(text_delta(pos, t, vec![key("delta")]));
                }
            }
            "response.reasoning_text.delta" => {
                if let Some(t) = opt_string(o, "delta", &[])? {
                    out.push(reasoning_delta(pos, t, vec![key("delta")]));
                }
            }
            "response.reasoning_summary_text.delta" => {
                // Summary parts of a reasoning item: their own hold-back positions, apart
                // from the item's content parts.
                let pos = StreamPos {
                    part: SUMMARY_PART + meta_index(o, "summary_index", 0),
                    ..pos
                };
                if let Some(t) = opt_string(o, "delta", &[])? {
                    out.push(reasoning_delta(pos, t, vec![key("delta")]));
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let pos = StreamPos { part: 0, ..pos };
                let (id, name) = self.tool(pos, None, None);
                let frag = opt_string(o, "delta", &[])?;
                out.push(StreamItem::ToolCallDelta {
                    pos,
                    id,
                    name,
                    arguments: frag.unwrap_or_default().to_owned(),
                    path: frag.map(|_| vec![key("delta")]),
                });
            }
            "response.output_item.added" | "response.output_item.done" => {
                let item = o.get("item").filter(|i| !i.is_null());
                let pos = StreamPos { part: 0, ..pos };
                if let Some(io) = item.and_then(Value::as_object) {
                    let it = meta(io, "type").unwrap_or_default();
                    if ty.ends_with("added") && (it == "function_call" || it == "custom_tool_call")
                    {
                        let (id, name) = self.tool(pos, meta(io, "call_id"), meta(io, "name"));
                        out.push(StreamItem::ToolCallDelta {
                            pos,
                            id,
                            name,
                            arguments: String::new(),
                            path: None,
                        });
                    }
                }
                if let Some(item) = item {
                    let mut segs = Vec::new();
                    responses_item(item, &[key("item")], &mut HashMap::new(), &mut segs)?;
                    full_text(segs, out);
                }
                if ty.ends_with("done") {
                    out.push(StreamItem::BlockDone { pos });
                }
            }
            "response.content_part.added"
            | "response.content_part.done"
            | "response.reasoning_summary_part.added"
            | "response.reasoning_summary_part.done" => {
                if let Some(p) = o.get("part").filter(|p| !p.is_null()) {
                    let pbase = vec![key("part")];
                    let po = obj(p, &pbase)?;
                    let field = if meta(po, "type") == Some("refusal") {
                        "refusal"
                    } else {
                        "text"
                    };
                    let kind = if ty.starts_with("response.reasoning")
                        || meta(po, "type") == Some("reasoning_text")
                    {
                        SegmentKind::Reasoning
                    } else {
                        SegmentKind::Assistant
                    };
                    if let Some(t) = opt_string(po, field, &pbase)? {
                        full_text(
                            vec![Segment::new(kind, t, at(&pbase, &[key(field)]))
                                .role(Some("assistant"))],
                            out,
                        );
                    }
                }
            }
            "response.output_text.done"
            | "response.refusal.done"
            | "response.reasoning_text.done"
            | "response.reasoning_summary_text.done" => {
                let field = if ty == "response.refusal.done" {
                    "refusal"
                } else {
                    "text"
                };
                let kind = if ty.starts_with("response.reasoning") {
                    SegmentKind::Reasoning
                } else {
                    SegmentKind::Assistant
                };
                if let Some(t) = opt_string(o, field, &[])? {
                    full_text(
                        vec![Segment::new(kind, t, vec![key(field)]).role(Some("assistant"))],
                        out,
                    );
                }
            }
            "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                let pos = StreamPos { part: 0, ..pos };
                let (id, name) = self.tool(pos, None, None);
                let field = if ty.starts_with("response.function") {
                    "arguments"
                } else {
                    "input"
                };
                if let Some(a) = opt_string(o, field, &[])? {
                    full_text(
                        vec![
                            Segment::new(SegmentKind::ToolCallArguments, a, vec![key(field)])
                                .role(Some("assistant"))
                                .tool(id.as_deref(), name.as_deref()),
                        ],
                        out,
                    );
                }
                out.push(StreamItem::BlockDone { pos });
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(r) = o.get("response").filter(|r| !r.is_null()) {
                    let view =
                        parse_response_at(ApiFormat::OpenAiResponses, r, &[key("response")])?;
                    if let Some(ro) = r.as_object() {
                        self.meta_once(ro, out);
                    }
                    full_text(view.segments, out);
                    out.extend(view.usage.map(StreamItem::Usage));
                    out.extend(view.finish.into_iter().map(StreamItem::Finish));
                    out.extend(view.error.map(StreamItem::Error));
                }
                out.push(StreamItem::Done);
            }
            _ => {}
        }
        Ok(())
    }

    fn anthropic(
        &mut self,
        ty: &str,
        o: &Map<String, Value>,
        out: &mut Vec<StreamItem>,
    ) -> Result<(), NormalizeError> {
        let pos = StreamPos {
            choice: 0,
            item: meta_index(o, "index", 0),
            part: 0,
        };
        match ty {
            "message_start" => {
                if let Some(m) = o.get("message").filter(|m| !m.is_null()) {
                    let view =
                        parse_response_at(ApiFormat::AnthropicMessages, m, &[key("message")])?;
                    if let Some(mo) = m.as_object() {
                        self.meta_once(mo, out);
                    }
                    full_text(view.segments, out);
                    out.extend(view.usage.map(StreamItem::Usage));
                }
            }
            "content_block_start" => {
                let bbase = vec![key("content_block")];
                let Some(b) = o.get("content_block").filter(|b| !b.is_null()) else {
                    return Ok(());
                };
                let bo = obj(b, &bbase)?;
                match meta(bo, "type").unwrap_or_default() {
                    "text" => {
                        if let Some(t) = opt_string(bo, "text", &bbase)?.filter(|t| !t.is_empty()) {
                            out.push(text_delta(pos, t, at(&bbase, &[key("text")])));
                        }
                    }
                    "thinking" => {
                        let t = opt_string(bo, "thinking", &bbase)?.filter(|t| !t.is_empty());
                        if let Some(t) = t {
                            out.push(reasoning_delta(pos, t, at(&bbase, &[key("thinking")])));
                        }
                    }
                    "tool_use" => {
                        let (id, name) =
                            self.tool(pos, meta(bo, "id"), opt_string(bo, "name", &bbase)?);
                        out.push(StreamItem::ToolCallDelta {
                            pos,
                            id: id.clone(),
                            name: name.clone(),
                            arguments: String::new(),
                            path: None,
                        });
                        let ipath = at(&bbase, &[key("input")]);
                        let input =
                            input_object_text(bo.get("input"), &ipath)?.filter(|t| t != "{}");
                        if let Some(text) = input {
                            full_text(
                                vec![Segment::new(SegmentKind::ToolCallArguments, text, ipath)
                                    .role(Some("assistant"))
                                    .tool(id.as_deref(), name.as_deref())],
                                out,
                            );
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let dbase = vec![key("delta")];
                let Some(d) = o.get("delta").filter(|d| !d.is_null()) else {
                    return Ok(());
                };
                let d = obj(d, &dbase)?;
                match meta(d, "type").unwrap_or_default() {
                    "text_delta" => {
                        if let Some(t) = opt_string(d, "text", &dbase)? {
                            out.push(text_delta(pos, t, at(&dbase, &[key("text")])));
                        }
                    }
                    "thinking_delta" => {
                        if let Some(t) = opt_string(d, "thinking", &dbase)? {
                            out.push(reasoning_delta(pos, t, at(&dbase, &[key("thinking")])));
                        }
                    }
                    // The block's signature comes after its last thinking delta: text held
                    // back goes out first, as it would at the block's end.
                    "signature_delta" => out.push(StreamItem::BlockDone { pos }),
                    "input_json_delta" => {
                        let (id, name) = self.tool(pos, None, None);
                        let frag = opt_string(d, "partial_json", &dbase)?;
                        out.push(StreamItem::ToolCallDelta {
                            pos,
                            id,
                            name,
                            arguments: frag.unwrap_or_default().to_owned(),
                            path: frag.map(|_| at(&dbase, &[key("partial_json")])),
                        });
                    }
                    _ => {}
                }
            }
            "content_block_stop" => out.push(StreamItem::BlockDone { pos }),
            "message_delta" => {
                if let Some(d) = o.get("delta").and_then(Value::as_object) {
                    if let Some(r) = meta(d, "stop_reason") {
                        out.push(StreamItem::Finish(Finish {
                            index: 0,
                            reason: Some(r.to_owned()),
                            detail: None,
                        }));
                    }
                }
                if let Some(u) = o.get("usage").and_then(Usage::from_json) {
                    out.push(StreamItem::Usage(u));
                }
            }
            "message_stop" => out.push(StreamItem::Done),
            _ => {}
        }
        Ok(())
    }
}

/// A chat tool-call delta before state lookup: (index, id, path of `function`, `function` object).
type CallRef<'a> = (
    usize,
    Option<&'a str>,
    Vec<PathElem>,
    &'a Map<String, Value>,
);

/// Records / completes the id and name of the tool call at `pos`; returns both so far.
fn remember_tool(
    tools: &mut HashMap<StreamPos, (Option<String>, Option<String>)>,
    pos: StreamPos,
    id: Option<&str>,
    name: Option<&str>,
) -> (Option<String>, Option<String>) {
    let e = tools.entry(pos).or_default();
    if let Some(id) = id {
        e.0 = Some(id.to_owned());
    }
    if let Some(n) = name {
        e.1 = Some(n.to_owned());
    }
    e.clone()
}

/// A chat tool-call fragment at `pos` (`function` object at `fbase`), with the call's id
/// and name as known so far.
pub(super) fn chat_tool_delta(
    pos: StreamPos,
    (id, name): (Option<String>, Option<String>),
    args: Option<&str>,
    fbase: &[PathElem],
) -> StreamItem {
    StreamItem::ToolCallDelta {
        pos,
        id,
        name,
        arguments: args.unwrap_or_default().to_owned(),
        path: args.map(|_| at(fbase, &[key("arguments")])),
    }
}

pub(super) fn text_delta(pos: StreamPos, text: &str, path: Vec<PathElem>) -> StreamItem {
    StreamItem::TextDelta {
        pos,
        text: text.to_owned(),
        path,
        reasoning: false,
    }
}

/// A [`StreamItem::TextDelta`] of the model's reasoning.
fn reasoning_delta(pos: StreamPos, text: &str, path: Vec<PathElem>) -> StreamItem {
    StreamItem::TextDelta {
        pos,
        text: text.to_owned(),
        path,
        reasoning: true,
    }
}

/// Pushes the non-empty segments as one [`StreamItem::FullText`].
fn full_text(mut segments: Vec<Segment>, out: &mut Vec<StreamItem>) {
    segments.retain(|s| !s.text.is_empty());
    if !segments.is_empty() {
        out.push(StreamItem::FullText { segments });
    }
}

/// Rebuilds `ev` with the text at each path of its data JSON replaced (meaning of
/// [`set_text`]), keeping `event`, `id` and `retry`; the result's `raw` is its fresh
/// encoding. `ev.data` must be JSON the normalizer accepted. When every path leads to one
/// string, the new text is spliced into the original bytes (`splice`: the rest stays as the
/// provider sent it); otherwise the data is parsed, rewritten and serialized compactly.
pub fn rebuild_event(
    ev: &SseEvent,
    edits: &[(&[PathElem], &str)],
) -> Result<SseEvent, NormalizeError> {
    // Text into strings (the common case): spliced into the original bytes, no re-parse.
    let spliced = match edits {
        [] => None,
        _ => super::splice::splice_strings(&ev.data, edits),
    };
    let data = match spliced {
        Some(d) => d,
        None => {
            let mut v: Value = serde_json::from_str(&ev.data)
                .map_err(|e| NormalizeError::InvalidJson(e.to_string()))?;
            for (path, text) in edits {
                set_text(&mut v, path, text)?;
            }
            v.to_string()
        }
    };
    let mut out = SseEvent {
        event: ev.event.clone(),
        data,
        id: ev.id.clone(),
        retry: ev.retry,
        raw: bytes::Bytes::new(),
    };
    out.raw = encode(&out);
    Ok(out)
}
