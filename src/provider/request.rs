//! Request bodies of every [`ApiFormat`] parsed into a [`RequestView`] of segments.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::walk::{
    at, content_texts, input_object_text, key, meta, obj, opt_array, opt_string, push_content,
    root_obj, wrong,
};
use super::{ApiFormat, NormalizeError, PathElem, Segment, SegmentKind};

/// The normalized view of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    /// The body format.
    pub format: ApiFormat,
    /// The requested model, if given as a string.
    pub model: Option<String>,
    /// Whether the client asked for an SSE stream (`"stream": true`).
    pub stream: bool,
    /// Inspectable text in body order.
    pub segments: Vec<Segment>,
}

/// Parses a request body of `format`.
///
/// Errors name the offending field when a known field has the wrong type (e.g.
/// `messages` not an array); unknown fields, roles, item and part types are ignored.
pub fn parse_request(format: ApiFormat, body: &Value) -> Result<RequestView, NormalizeError> {
    let root = root_obj(body)?;
    let model = meta(root, "model").map(str::to_owned);
    let stream = match root.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(wrong(&[key("stream")], "boolean")),
    };
    let mut segs = Vec::new();
    match format {
        ApiFormat::OpenAiChat => chat(root, &mut segs)?,
        ApiFormat::OpenAiResponses => responses(root, &mut segs)?,
        ApiFormat::OpenAiEmbeddings => {
            strings_or_tokens(root, "input", SegmentKind::EmbeddingInput, &mut segs)?
        }
        ApiFormat::OpenAiCompletions => {
            strings_or_tokens(root, "prompt", SegmentKind::Prompt, &mut segs)?;
            if let Some(s) = opt_string(root, "suffix", &[])? {
                segs.push(Segment::new(SegmentKind::Prompt, s, vec![key("suffix")]));
            }
        }
        ApiFormat::AnthropicMessages => anthropic(root, &mut segs)?,
    }
    if matches!(
        format,
        ApiFormat::OpenAiChat | ApiFormat::OpenAiResponses | ApiFormat::AnthropicMessages
    ) {
        tool_definitions(root, &mut segs);
    }
    Ok(RequestView {
        format,
        model,
        stream,
        segments: segs,
    })
}

fn required_array<'a>(
    root: &'a Map<String, Value>,
    k: &'static str,
) -> Result<&'a [Value], NormalizeError> {
    match root.get(k) {
        None => Err(NormalizeError::MissingField {
            field: k.to_owned(),
        }),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(wrong(&[key(k)], "array")),
    }
}

/// Chat text parts: `text` and (assistant) `refusal`.
const CHAT_PARTS: &[(&str, &str)] = &[("text", "text"), ("refusal", "refusal")];

fn chat(root: &Map<String, Value>, segs: &mut Vec<Segment>) -> Result<(), NormalizeError> {
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, m) in required_array(root, "messages")?.iter().enumerate() {
        let base = vec![key("messages"), PathElem::Index(i)];
        let mo = obj(m, &base)?;
        let role = meta(mo, "role");
        let kind = SegmentKind::from_role(role.unwrap_or_default());
        let call_id = meta(mo, "tool_call_id");
        let name = meta(mo, "name")
            .filter(|_| role == Some("function"))
            .or_else(|| call_id.and_then(|id| names.get(id)).map(String::as_str));
        let texts = content_texts(mo.get("content"), &at(&base, &[key("content")]), CHAT_PARTS)?;
        let tool = if kind == SegmentKind::ToolResult {
            (call_id, name)
        } else {
            (None, None)
        };
        push_content(segs, texts, kind, role, tool);
        if let Some(r) = opt_string(mo, "refusal", &base)? {
            segs.push(Segment::new(kind, r, at(&base, &[key("refusal")])).role(role));
        }
        for (id, n) in chat_tool_calls(mo, &base, role, segs)? {
            names.insert(id, n);
        }
    }
    Ok(())
}

/// Assistant `tool_calls[]` (function and custom) and legacy `function_call`; returns
/// the (id, name) pairs seen so tool results can be attributed.
pub(crate) fn chat_tool_calls(
    mo: &Map<String, Value>,
    base: &[PathElem],
    role: Option<&str>,
    segs: &mut Vec<Segment>,
) -> Result<Vec<(String, String)>, NormalizeError> {
    let mut seen = Vec::new();
    let calls_base = at(base, &[key("tool_calls")]);
    for (j, c) in opt_array(mo, "tool_calls", base)?.iter().enumerate() {
        let cbase = at(&calls_base, &[PathElem::Index(j)]);
        let co = obj(c, &cbase)?;
        let id = meta(co, "id");
        for (holder, args_field) in [("function", "arguments"), ("custom", "input")] {
            let Some(f) = co.get(holder) else { continue };
            let fbase = at(&cbase, &[key(holder)]);
            let fo = obj(f, &fbase)?;
            let name = opt_string(fo, "name", &fbase)?;
            tool_pair(segs, &fbase, fo, args_field, role, id, name)?;
            if let (Some(id), Some(n)) = (id, name) {
                seen.push((id.to_owned(), n.to_owned()));
            }
        }
    }
    if let Some(f) = mo.get("function_call").filter(|v| !v.is_null()) {
        let fbase = at(base, &[key("function_call")]);
        let fo = obj(f, &fbase)?;
        let name = opt_string(fo, "name", &fbase)?;
        tool_pair(segs, &fbase, fo, "arguments", role, None, name)?;
    }
    Ok(seen)
}

/// A ToolCallName segment for `name` and a ToolCallArguments segment for the string `args_field`.
pub(crate) fn tool_pair(
    segs: &mut Vec<Segment>,
    base: &[PathElem],
    o: &Map<String, Value>,
    args_field: &'static str,
    role: Option<&str>,
    id: Option<&str>,
    name: Option<&str>,
) -> Result<(), NormalizeError> {
    if let Some(n) = name {
        segs.push(
            Segment::new(SegmentKind::ToolCallName, n, at(base, &[key("name")]))
                .role(role)
                .tool(id, name),
        );
    }
    if let Some(a) = opt_string(o, args_field, base)? {
        segs.push(
            Segment::new(
                SegmentKind::ToolCallArguments,
                a,
                at(base, &[key(args_field)]),
            )
            .role(role)
            .tool(id, name),
        );
    }
    Ok(())
}

/// Responses message parts: input and output text, refusals.
pub(crate) const RESPONSES_PARTS: &[(&str, &str)] = &[
    ("input_text", "text"),
    ("output_text", "text"),
    ("text", "text"),
    ("refusal", "refusal"),
];

fn responses(root: &Map<String, Value>, segs: &mut Vec<Segment>) -> Result<(), NormalizeError> {
    match root.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => segs.push(Segment::new(
            SegmentKind::System,
            s,
            vec![key("instructions")],
        )),
        Some(Value::Array(items)) => responses_items(items, &[key("instructions")], segs)?,
        Some(_) => return Err(wrong(&[key("instructions")], "string, array or null")),
    }
    match root.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            segs.push(Segment::new(SegmentKind::User, s, vec![key("input")]).role(Some("user")));
        }
        Some(Value::Array(items)) => responses_items(items, &[key("input")], segs)?,
        Some(_) => return Err(wrong(&[key("input")], "string or array")),
    }
    Ok(())
}

/// Responses items (request `input[]` or response `output[]`).
pub(crate) fn responses_items(
    items: &[Value],
    base: &[PathElem],
    segs: &mut Vec<Segment>,
) -> Result<(), NormalizeError> {
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        responses_item(item, &at(base, &[PathElem::Index(i)]), &mut names, segs)?;
    }
    Ok(())
}

/// One Responses item at `ibase`: `message` (string or parts), `function_call` /
/// `custom_tool_call` (name + arguments/input string), `reasoning` (summary texts and
/// reasoning text parts, as assistant text), `function_call_output` /
/// `custom_tool_call_output` (string or parts). `names` maps call ids to tool names.
pub(crate) fn responses_item(
    item: &Value,
    ibase: &[PathElem],
    names: &mut HashMap<String, String>,
    segs: &mut Vec<Segment>,
) -> Result<(), NormalizeError> {
    let io = obj(item, ibase)?;
    let role = meta(io, "role");
    let ty = meta(io, "type").unwrap_or(if role.is_some() { "message" } else { "" });
    let call_id = meta(io, "call_id");
    match ty {
        "message" => {
            let kind = SegmentKind::from_role(role.unwrap_or("assistant"));
            let texts = content_texts(
                io.get("content"),
                &at(ibase, &[key("content")]),
                RESPONSES_PARTS,
            )?;
            push_content(segs, texts, kind, role, (None, None));
        }
        "function_call" | "custom_tool_call" => {
            let name = opt_string(io, "name", ibase)?;
            let field = if ty == "function_call" {
                "arguments"
            } else {
                "input"
            };
            tool_pair(segs, ibase, io, field, Some("assistant"), call_id, name)?;
            if let (Some(id), Some(n)) = (call_id, name) {
                names.insert(id.to_owned(), n.to_owned());
            }
        }
        "reasoning" => {
            // Model output like any answer text: the summaries (`summary_text`) and, for
            // models that expose it, the reasoning itself (`reasoning_text` parts).
            // `encrypted_content` is opaque and left alone.
            for (field, parts) in [
                ("summary", &[("summary_text", "text")][..]),
                ("content", &[("reasoning_text", "text")][..]),
            ] {
                let texts = content_texts(io.get(field), &at(ibase, &[key(field)]), parts)?;
                push_content(
                    segs,
                    texts,
                    SegmentKind::Reasoning,
                    Some("assistant"),
                    (None, None),
                );
            }
        }
        "function_call_output" | "custom_tool_call_output" => {
            let name = call_id.and_then(|id| names.get(id)).map(String::as_str);
            let texts = content_texts(
                io.get("output"),
                &at(ibase, &[key("output")]),
                RESPONSES_PARTS,
            )?;
            push_content(segs, texts, SegmentKind::ToolResult, None, (call_id, name));
        }
        _ => {}
    }
    Ok(())
}

/// Embeddings `input` / completions `prompt`: a string or an array; token arrays
/// (numbers, arrays of numbers) are not text and are skipped.
fn strings_or_tokens(
    root: &Map<String, Value>,
    k: &'static str,
    kind: SegmentKind,
    segs: &mut Vec<Segment>,
) -> Result<(), NormalizeError> {
    match root.get(k) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => segs.push(Segment::new(kind, s, vec![key(k)])),
        Some(Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                match it {
                    Value::String(s) => {
                        segs.push(Segment::new(kind, s, vec![key(k), PathElem::Index(i)]))
                    }
                    Value::Number(_) | Value::Array(_) => {}
                    _ => {
                        return Err(wrong(
                            &[key(k), PathElem::Index(i)],
                            "string or token array",
                        ))
                    }
                }
            }
        }
        Some(_) => return Err(wrong(&[key(k)], "string or array")),
    }
    Ok(())
}

fn anthropic(root: &Map<String, Value>, segs: &mut Vec<Segment>) -> Result<(), NormalizeError> {
    let texts = content_texts(root.get("system"), &[key("system")], &[("text", "text")])?;
    push_content(
        segs,
        texts,
        SegmentKind::System,
        Some("system"),
        (None, None),
    );
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, m) in required_array(root, "messages")?.iter().enumerate() {
        let base = vec![key("messages"), PathElem::Index(i)];
        let mo = obj(m, &base)?;
        let role = meta(mo, "role");
        anthropic_content(
            mo.get("content"),
            &at(&base, &[key("content")]),
            role,
            &mut names,
            segs,
            false,
        )?;
    }
    Ok(())
}

/// Deepest JSON Schema nesting searched for `description` texts in a tool definition.
const SCHEMA_DEPTH: usize = 32;

/// The developer's text in tool definitions, as system-prompt segments: each tool's
/// `description` (chat: `tools[].function.description`; Responses and Anthropic:
/// `tools[].description`) and every `description` string in its parameter schema
/// (`function.parameters`, `parameters`, `input_schema`). Shapes the provider would refuse
/// are skipped, not errors: the provider's own validation answers those.
fn tool_definitions(root: &Map<String, Value>, segs: &mut Vec<Segment>) {
    let Some(Value::Array(tools)) = root.get("tools") else {
        return;
    };
    for (i, t) in tools.iter().enumerate() {
        let Value::Object(to) = t else { continue };
        let tbase = vec![key("tools"), PathElem::Index(i)];
        let (def, dbase) = match to.get("function") {
            Some(Value::Object(f)) => (f, at(&tbase, &[key("function")])),
            _ => (to, tbase),
        };
        if let Some(Value::String(d)) = def.get("description") {
            segs.push(Segment::new(
                SegmentKind::System,
                d,
                at(&dbase, &[key("description")]),
            ));
        }
        for field in ["parameters", "input_schema"] {
            if let Some(schema) = def.get(field) {
                schema_descriptions(schema, &at(&dbase, &[key(field)]), SCHEMA_DEPTH, segs);
            }
        }
    }
}

/// Every `description` string member inside a JSON Schema value.
fn schema_descriptions(v: &Value, base: &[PathElem], depth: usize, segs: &mut Vec<Segment>) {
    if depth == 0 {
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let path = at(base, &[PathElem::Key(std::borrow::Cow::Owned(k.clone()))]);
                match x {
                    Value::String(d) if k == "description" => {
                        segs.push(Segment::new(SegmentKind::System, d, path));
                    }
                    _ => schema_descriptions(x, &path, depth - 1, segs),
                }
            }
        }
        Value::Array(a) => {
            for (j, x) in a.iter().enumerate() {
                schema_descriptions(x, &at(base, &[PathElem::Index(j)]), depth - 1, segs);
            }
        }
        _ => {}
    }
}

/// Anthropic content (request message content or response `content`): a string or
/// blocks `text`, `tool_use` (name + serialized `input` object), `tool_result`, and with
/// `thinking` (an answer) the `thinking` blocks' text. A request's history carries thinking
/// blocks back signed: any change there makes the API refuse the request, so they are not
/// segments of a request (they were guarded as the answer that produced them).
pub(crate) fn anthropic_content(
    v: Option<&Value>,
    base: &[PathElem],
    role: Option<&str>,
    names: &mut HashMap<String, String>,
    segs: &mut Vec<Segment>,
    thinking: bool,
) -> Result<(), NormalizeError> {
    let kind = SegmentKind::from_role(role.unwrap_or_default());
    let blocks = match v {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) => {
            segs.push(Segment::new(kind, s, base.to_vec()).role(role));
            return Ok(());
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(wrong(base, "string or array")),
    };
    for (j, b) in blocks.iter().enumerate() {
        let bbase = at(base, &[PathElem::Index(j)]);
        let bo = obj(b, &bbase)?;
        match meta(bo, "type").unwrap_or_default() {
            "text" => {
                if let Some(t) = opt_string(bo, "text", &bbase)? {
                    segs.push(Segment::new(kind, t, at(&bbase, &[key("text")])).role(role));
                }
            }
            "thinking" if thinking => {
                if let Some(t) = opt_string(bo, "thinking", &bbase)? {
                    segs.push(
                        Segment::new(SegmentKind::Reasoning, t, at(&bbase, &[key("thinking")]))
                            .role(role),
                    );
                }
            }
            "tool_use" => {
                let id = meta(bo, "id");
                let name = opt_string(bo, "name", &bbase)?;
                if let Some(n) = name {
                    segs.push(
                        Segment::new(SegmentKind::ToolCallName, n, at(&bbase, &[key("name")]))
                            .role(role)
                            .tool(id, name),
                    );
                    if let Some(id) = id {
                        names.insert(id.to_owned(), n.to_owned());
                    }
                }
                let ipath = at(&bbase, &[key("input")]);
                if let Some(text) = input_object_text(bo.get("input"), &ipath)? {
                    segs.push(
                        Segment::new(SegmentKind::ToolCallArguments, text, ipath)
                            .role(role)
                            .tool(id, name),
                    );
                }
            }
            "tool_result" => {
                let id = meta(bo, "tool_use_id");
                let name = id.and_then(|id| names.get(id)).map(String::as_str);
                let texts = content_texts(
                    bo.get("content"),
                    &at(&bbase, &[key("content")]),
                    &[("text", "text")],
                )?;
                push_content(segs, texts, SegmentKind::ToolResult, role, (id, name));
            }
            _ => {}
        }
    }
    Ok(())
}
