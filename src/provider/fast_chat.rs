//! Typed fast path of [`StreamNormalizer`](super::StreamNormalizer) for OpenAI chat /
//! completions chunks: the same items as the `serde_json::Value` walk (`chat`), from a
//! borrowed typed parse (no `Value` tree, no map of every member).
//!
//! Every guarded stream and every recorded stream normalizes each event; the `Value` parse
//! was about a third of the stream guard's time. This path only takes chunks of the usual
//! shape and *declines* (`None`: the caller runs the `Value` walk, which then gives the
//! exact items or error) whenever its answer could differ: a member of an unexpected type,
//! a repeated member, `type` / `error` members, an array where an object is expected. The
//! stream's first chunk takes it too (its `id` / `model` make the `Meta` item).

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{value::MapAccessDeserializer, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::response::{Finish, Usage};
use super::stream::{chat_tool_delta, text_delta, StreamItem, StreamPos};
use super::walk::{at as path, key};
use super::{PathElem, SegmentKind};

/// `T` read only from a JSON object (derived structs would also accept an array).
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: MetaField<'a>,
    #[serde(default, borrow)]
    model: MetaField<'a>,
    #[serde(default, borrow)]
    choices: Option<Vec<Obj<Choice<'a>>>>,
    #[serde(default)]
    usage: UsageIn,
    #[serde(default, rename = "type")]
    ty: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Obj<Delta<'a>>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<Obj<ToolCall<'a>>>>,
    #[serde(default, borrow)]
    function_call: Option<Obj<Function<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<Obj<Function<'a>>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// The visits of JSON values a visitor below does not read: each consumed, `$none`. Always
/// booleans, floats, null and arrays; `str`, `ints` and `map` add strings, integers and
/// objects for the visitors that do not read those either.
macro_rules! other_values {
    ($none:expr $(, $extra:ident)*) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($none)
        }
        $(other_values!(@$extra $none);)*
    };
    (@str $none:expr) => {
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
    (@ints $none:expr) => {
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
    (@map $none:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

/// An `id` / `model` member as the `Meta` item reads it: whether it is there at all (any
/// value, `null` included) and its text when it is a string.
#[derive(Default)]
enum MetaField<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Other,
}

impl<'a> MetaField<'a> {
    fn present(&self) -> bool {
        !matches!(self, MetaField::Absent)
    }

    fn text(&self) -> Option<String> {
        match self {
            MetaField::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MetaField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MetaField<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MetaField::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MetaField::Str(Cow::Owned(v.to_owned())))
            }
            other_values!(MetaField::Other, ints, map);
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A `usage` member read straight into [`Usage`], exactly as [`Usage::from_json`] reads its
/// `Value` (the `Value` tree was most of a short answer's parse): any JSON accepted, `None`
/// unless an object; a repeated member counts once, the last one (as `Value` keeps it); a
/// count is `Some` only for a non-negative integer that fits `u64`.
#[derive(Default)]
struct UsageIn(Option<Usage>);

/// The usage members [`Usage::from_json`] reads.
enum UsageKey {
    Prompt,
    Input,
    Completion,
    Output,
    Total,
    CacheCreation,
    CacheRead,
    PromptDetails,
    InputDetails,
    CachedTokens,
    Other,
}

impl<'de> Deserialize<'de> for UsageKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = UsageKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<UsageKey, E> {
                Ok(match k {
                    "prompt_tokens" => UsageKey::Prompt,
                    "input_tokens" => UsageKey::Input,
                    "completion_tokens" => UsageKey::Completion,
                    "output_tokens" => UsageKey::Output,
                    "total_tokens" => UsageKey::Total,
                    "cache_creation_input_tokens" => UsageKey::CacheCreation,
                    "cache_read_input_tokens" => UsageKey::CacheRead,
                    "prompt_tokens_details" => UsageKey::PromptDetails,
                    "input_tokens_details" => UsageKey::InputDetails,
                    "cached_tokens" => UsageKey::CachedTokens,
                    _ => UsageKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A token count: `Some` for an integer `Value::as_u64` would take (`Value` stores a
/// non-negative `i64` as unsigned), `None` for any other JSON value.
struct Count(Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, n: u64) -> Result<Count, E> {
                Ok(Count(Some(n)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(n).ok()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            other_values!(Count(None), str);
        }
        d.deserialize_any(V)
    }
}

/// A `*_tokens_details` member: its `cached_tokens` count when it is an object.
struct Details(Option<u64>);

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Details;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Details, A::Error> {
                let mut cached = None;
                while let Some(k) = map.next_key::<UsageKey>()? {
                    match k {
                        UsageKey::CachedTokens => cached = map.next_value::<Count>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Details(cached))
            }
            other_values!(Details(None), str, ints);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for UsageIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UsageIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UsageIn, A::Error> {
                // One slot per member `Usage::from_json` reads; a repeated member overwrites.
                let [mut prompt, mut input, mut completion, mut output, mut total] = [None; 5];
                let [mut creation, mut read, mut prompt_details, mut input_details] = [None; 4];
                while let Some(k) = map.next_key::<UsageKey>()? {
                    let slot = match k {
                        UsageKey::Prompt => &mut prompt,
                        UsageKey::Input => &mut input,
                        UsageKey::Completion => &mut completion,
                        UsageKey::Output => &mut output,
                        UsageKey::Total => &mut total,
                        UsageKey::CacheCreation => &mut creation,
                        UsageKey::CacheRead => &mut read,
                        UsageKey::PromptDetails => {
                            prompt_details = map.next_value::<Details>()?.0;
                            continue;
                        }
                        UsageKey::InputDetails => {
                            input_details = map.next_value::<Details>()?.0;
                            continue;
                        }
                        UsageKey::CachedTokens | UsageKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<Count>()?.0;
                }
                Ok(UsageIn(Some(Usage {
                    input_tokens: prompt.or(input),
                    output_tokens: completion.or(output),
                    total_tokens: total,
                    cache_creation_input_tokens: creation,
                    cache_read_input_tokens: read.or(prompt_details).or(input_details),
                })))
            }
            other_values!(UsageIn(None), str, ints);
        }
        d.deserialize_any(V)
    }
}

fn index(n: Option<u64>, default: usize) -> usize {
    n.and_then(|n| usize::try_from(n).ok()).unwrap_or(default)
}

/// A tool call's id and name as known so far.
type ToolIds = (Option<String>, Option<String>);

/// The normalizer's tool memo: records and completes a call's id and name.
type ToolMemo<'t> = dyn FnMut(StreamPos, Option<&str>, Option<&str>) -> ToolIds + 't;

/// The items of one chat chunk (`data`, trimmed, not `[DONE]`), or `None` to let the
/// `Value` walk decide. With `want_meta` (no `Meta` item yet in this stream) a chunk with
/// an `id` member starts with the `Meta` item. `tool` records and completes a tool call's
/// id and name, as the normalizer's own memo does.
pub(super) fn chunk_items(
    data: &str,
    want_meta: bool,
    tool: &mut ToolMemo<'_>,
) -> Option<Vec<StreamItem>> {
    if !data.starts_with('{') {
        return None;
    }
    let Obj(chunk) = serde_json::from_str::<Obj<Chunk<'_>>>(data).ok()?;
    if chunk.ty.is_some() || chunk.error.is_some() {
        return None;
    }
    let mut out = Vec::new();
    if want_meta && chunk.id.present() {
        out.push(StreamItem::Meta {
            id: chunk.id.text(),
            model: chunk.model.text(),
        });
    }
    for (i, Obj(c)) in chunk.choices.iter().flatten().enumerate() {
        let cbase = [key("choices"), PathElem::Index(i)];
        let choice = index(c.index, i);
        let tpos = StreamPos {
            choice,
            item: 0,
            part: 0,
        };
        if let Some(t) = c.text.as_deref().filter(|t| !t.is_empty()) {
            out.push(text_delta(tpos, t, path(&cbase, &[key("text")])));
        }
        if let Some(Obj(d)) = &c.delta {
            let dbase = path(&cbase, &[key("delta")]);
            for (field, t) in [("content", &d.content), ("refusal", &d.refusal)] {
                if let Some(t) = t.as_deref().filter(|t| !t.is_empty()) {
                    out.push(text_delta(tpos, t, path(&dbase, &[key(field)])));
                }
            }
            let mut calls: Vec<(usize, Option<&str>, Vec<PathElem>, &Function<'_>)> = Vec::new();
            for (j, Obj(tc)) in d.tool_calls.iter().flatten().enumerate() {
                let Some(Obj(f)) = &tc.function else {
                    continue;
                };
                let fbase = path(
                    &dbase,
                    &[key("tool_calls"), PathElem::Index(j), key("function")],
                );
                calls.push((index(tc.index, j), tc.id.as_deref(), fbase, f));
            }
            if let Some(Obj(f)) = &d.function_call {
                calls.push((0, None, path(&dbase, &[key("function_call")]), f));
            }
            for (item, id, fbase, f) in calls {
                let pos = StreamPos {
                    choice,
                    item,
                    part: 1,
                };
                let ids = tool(pos, id, f.name.as_deref());
                out.push(chat_tool_delta(pos, ids, f.arguments.as_deref(), &fbase));
            }
        }
        if let Some(r) = &c.finish_reason {
            out.push(StreamItem::Finish(Finish {
                index: choice,
                reason: Some(r.to_string()),
                detail: None,
            }));
        }
    }
    if let UsageIn(Some(u)) = chunk.usage {
        out.push(StreamItem::Usage(u));
    }
    if out.is_empty() {
        out.push(StreamItem::Other);
    }
    Some(out)
}

/// What a recorder keeps of a non-streamed answer besides its tool calls and error: the
/// model, the assistant texts (segments of kind `Assistant` joined with `\n`), usage and
/// finish reasons.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnswerSummary {
    pub model: Option<String>,
    pub text: String,
    pub usage: Option<Usage>,
    pub finish: Vec<String>,
}

impl AnswerSummary {
    /// The summary of a parsed response (the reference the fast path is tested against).
    pub fn of_view(view: &super::ResponseView) -> AnswerSummary {
        AnswerSummary {
            model: view.model.clone(),
            text: view
                .segments
                .iter()
                .filter(|s| s.kind == super::SegmentKind::Assistant)
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            usage: view.usage,
            finish: view
                .finish
                .iter()
                .filter_map(|f| f.reason.clone())
                .collect(),
        }
    }
}

/// A non-streamed answer; `U` is [`UsageIn`] where usage is kept, [`IgnoredAny`] where not.
#[derive(Deserialize)]
struct Completion<'a, U> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Option<Vec<Obj<FullChoice<'a>>>>,
    #[serde(default)]
    usage: Option<U>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct FullChoice<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Obj<Message<'a>>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

/// The [`AnswerSummary`] of a non-streamed OpenAI chat / completions answer without tool
/// calls or error, from a borrowed typed parse; `None` (the caller runs the `Value` walk,
/// which gives the exact answer or error) for any other shape: tool calls, an `error`,
/// content parts, a member of an unexpected type, a repeated member, not an object.
pub fn answer_summary(body: &[u8]) -> Option<AnswerSummary> {
    let Obj(c) = serde_json::from_slice::<Obj<Completion<'_, UsageIn>>>(body).ok()?;
    let (texts, finish) = usual_answer(&c)?;
    Some(AnswerSummary {
        model: c.model.as_deref().map(str::to_owned),
        text: texts.join("\n"),
        usage: c.usage.and_then(|UsageIn(u)| u),
        finish,
    })
}

/// The text segments of a non-streamed OpenAI chat / completions answer of the usual shape
/// (as [`answer_summary`]), all of kind `Assistant`, in `parse_response`'s order; `None`
/// for any other shape.
pub fn answer_texts(body: &[u8]) -> Option<Vec<String>> {
    let Obj(c) = serde_json::from_slice::<Obj<Completion<'_, IgnoredAny>>>(body).ok()?;
    let (texts, _) = usual_answer(&c)?;
    Some(texts.into_iter().map(str::to_owned).collect())
}

/// The assistant texts and finish reasons of a parsed answer of the usual shape.
fn usual_answer<'c, U>(c: &'c Completion<'_, U>) -> Option<(Vec<&'c str>, Vec<String>)> {
    if c.error.is_some() {
        return None;
    }
    let mut texts: Vec<&str> = Vec::new();
    let mut finish = Vec::new();
    for Obj(ch) in c.choices.iter().flatten() {
        texts.extend(ch.text.as_deref());
        if let Some(Obj(m)) = &ch.message {
            if m.function_call.is_some() || m.tool_calls.as_ref().is_some_and(|t| !t.is_empty()) {
                return None;
            }
            texts.extend(m.content.as_deref());
            texts.extend(m.refusal.as_deref());
        }
        finish.extend(ch.finish_reason.as_deref().map(str::to_owned));
    }
    Some((texts, finish))
}

/// The request text a recorder summarizes: the last user-side segment (user message,
/// prompt, embedding input, tool result), else the last segment.
pub fn input_text_of(segments: &[super::Segment]) -> Option<String> {
    let user_side = |k: SegmentKind| {
        matches!(
            k,
            SegmentKind::User
                | SegmentKind::Prompt
                | SegmentKind::EmbeddingInput
                | SegmentKind::ToolResult
        )
    };
    segments
        .iter()
        .rev()
        .find(|s| user_side(s.kind))
        .or_else(|| segments.last())
        .map(|s| s.text.clone())
}

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(default, borrow)]
    messages: Option<Vec<Obj<RequestMessage<'a>>>>,
    /// Read only so a non-boolean `stream` declines, as `parse_request` refuses it.
    #[serde(default, rename = "stream")]
    _stream: Option<bool>,
    /// Tool definitions carry developer text (`parse_request` segments it): declines.
    #[serde(default)]
    tools: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RequestMessage<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

/// The text segments (kind, text) of a chat completions request, in `parse_request`'s
/// order, from a borrowed typed parse: for requests whose messages all have string (or
/// null) content and no tool calls; `None` (the caller runs `parse_request` on a `Value`)
/// for any other shape.
pub fn chat_request_texts(body: &[u8]) -> Option<Vec<(SegmentKind, String)>> {
    let Obj(r) = serde_json::from_slice::<Obj<ChatRequest<'_>>>(body).ok()?;
    if r.tools.is_some() {
        return None;
    }
    let mut out = Vec::new();
    for Obj(m) in r.messages.as_deref()? {
        if m.function_call.is_some() || m.tool_calls.as_ref().is_some_and(|t| !t.is_empty()) {
            return None;
        }
        let kind = SegmentKind::from_role(m.role.as_deref().unwrap_or_default());
        for t in [m.content.as_deref(), m.refusal.as_deref()]
            .into_iter()
            .flatten()
        {
            out.push((kind, t.to_owned()));
        }
    }
    Some(out)
}

/// [`input_text_of`] a chat completions request's segments, from [`chat_request_texts`]:
/// `None` for a request of another shape (the caller runs `parse_request`).
pub fn chat_input_text(body: &[u8]) -> Option<Option<String>> {
    let texts = chat_request_texts(body)?;
    let user_side = |k: SegmentKind| matches!(k, SegmentKind::User | SegmentKind::ToolResult);
    let last_user = texts.iter().rposition(|(k, _)| user_side(*k));
    let pick = last_user.or(texts.len().checked_sub(1));
    Some(pick.and_then(|i| texts.into_iter().nth(i)).map(|(_, t)| t))
}

#[cfg(test)]
mod tests {
    use super::super::stream::StreamNormalizer;
    use super::super::ApiFormat;
    use super::Usage;
    use crate::sse::SseEvent;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn started(format: ApiFormat) -> StreamNormalizer {
        let mut n = StreamNormalizer::new(format);
        let first = SseEvent::with_data(
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
        );
        n.push(&first).unwrap();
        n
    }

    #[test]
    fn usual_chunks_take_the_fast_path() {
        let calls = std::cell::Cell::new(0);
        let mut tool = |_, _: Option<&str>, _: Option<&str>| {
            calls.set(calls.get() + 1);
            (None, None)
        };
        for data in [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"He said \"hi\"\n"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
            r#"{"id":"c1","choices":[],"usage":null}"#,
        ] {
            assert!(
                super::chunk_items(data, false, &mut tool).is_some(),
                "{data}"
            );
        }
        assert_eq!(calls.get(), 1);
        // Shapes left to the Value walk.
        for data in [
            r#"{"error":{"message":"x"}}"#,
            r#"{"type":"error"}"#,
            r#"{"choices":[{"delta":["x"]}]}"#,
            r#"{"choices":[{"delta":{"content":1}}]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[{"index":-1,"delta":{"content":"a"}}]}"#,
            r#"[1]"#,
        ] {
            assert!(
                super::chunk_items(data, false, &mut tool).is_none(),
                "{data}"
            );
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..5).prop_map(|n| json!(n)),
            Just(json!(1.5)),
            "[a-c\"\\\\\n]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec(("[a-c]", inner), 0..3)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// A field that is usually of the expected kind and sometimes anything.
    fn maybe(usual: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
        prop_oneof![
            3 => usual.prop_map(Some),
            1 => any_json().prop_map(Some),
            2 => Just(None),
        ]
        .boxed()
    }

    fn text() -> BoxedStrategy<Value> {
        prop_oneof![
            "[a-z \"\\\\\n\u{e9}]{0,6}".prop_map(Value::String),
            Just(Value::Null)
        ]
        .boxed()
    }

    fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
        Value::Object(
            fields
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect(),
        )
    }

    fn chunk() -> impl Strategy<Value = String> {
        let function = (maybe(text()), maybe(text()))
            .prop_map(|(n, a)| object(vec![("name", n), ("arguments", a)]));
        let tool_call = (
            maybe((0u64..3).prop_map(|n| json!(n)).boxed()),
            maybe(text()),
            maybe(function.clone().boxed()),
        )
            .prop_map(|(i, id, f)| object(vec![("index", i), ("id", id), ("function", f)]));
        let delta = (
            maybe(text()),
            maybe(text()),
            maybe(
                prop::collection::vec(tool_call, 0..3)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
            maybe(function.boxed()),
        )
            .prop_map(|(c, r, t, f)| {
                object(vec![
                    ("content", c),
                    ("refusal", r),
                    ("tool_calls", t),
                    ("function_call", f),
                ])
            });
        let choice = (
            maybe((0u64..3).prop_map(|n| json!(n)).boxed()),
            maybe(text()),
            maybe(delta.boxed()),
            maybe(text()),
        )
            .prop_map(|(i, t, d, f)| {
                object(vec![
                    ("index", i),
                    ("text", t),
                    ("delta", d),
                    ("finish_reason", f),
                ])
            });
        let usage = Just(json!({"prompt_tokens": 2, "completion_tokens": 3})).boxed();
        (
            maybe(
                prop::collection::vec(choice, 0..3)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
            maybe(usage),
            prop::option::weighted(0.05, any_json()),
            prop::option::weighted(0.05, any_json()),
            any::<bool>(),
            // `id` / `model`: usually strings, sometimes absent, null or another value.
            maybe(Just(json!("c1")).boxed()),
            maybe(Just(json!("gpt-4o-mini")).boxed()),
        )
            .prop_map(|(choices, usage, ty, error, dup, id, model)| {
                let s = object(vec![
                    ("id", id),
                    ("model", model),
                    ("choices", choices),
                    ("usage", usage),
                    ("type", ty),
                    ("error", error),
                ]);
                with_dup_content(s, dup)
            })
    }

    /// `v` as JSON; with `dup`, its first `content` member repeated (serde_json's `Value`
    /// keeps the last one; the fast paths must decline).
    fn with_dup_content(v: Value, dup: bool) -> String {
        let s = v.to_string();
        if dup && s.contains("\"content\":") {
            s.replacen("\"content\":", "\"content\":\"dup\",\"content\":", 1)
        } else {
            s
        }
    }

    /// A chat completion body of the usual shape or an unusual one.
    fn completion() -> impl Strategy<Value = String> {
        let text = || {
            prop_oneof![
                4 => "[a-c\"\\\n ]{0,6}".prop_map(|s| Some(Value::String(s))),
                1 => Just(None),
                1 => Just(Some(Value::Null)),
                1 => any_json().prop_map(Some),
            ]
        };
        let message = (
            text(),
            text(),
            prop_oneof![
                6 => Just(None),
                1 => Just(Some(json!([]))),
                1 => Just(Some(json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]))),
                1 => any_json().prop_map(Some),
            ],
            prop::option::weighted(0.05, any_json()),
            prop_oneof![
                6 => Just(Some(json!("assistant"))),
                1 => any_json().prop_map(Some),
            ],
        )
            .prop_map(|(content, refusal, tool_calls, function_call, role)| {
                object(vec![
                    ("role", role),
                    ("content", content),
                    ("refusal", refusal),
                    ("tool_calls", tool_calls),
                    ("function_call", function_call),
                ])
            });
        let choice = (
            prop_oneof![4 => (0u64..3).prop_map(|i| Some(json!(i))), 1 => any_json().prop_map(Some)],
            prop::option::weighted(0.15, text()),
            prop_oneof![
                6 => message.prop_map(Some),
                1 => Just(Some(Value::Null)),
                1 => Just(None),
                1 => any_json().prop_map(Some),
            ],
            prop_oneof![
                4 => Just(Some(json!("stop"))),
                2 => Just(Some(Value::Null)),
                1 => any_json().prop_map(Some),
            ],
        )
            .prop_map(|(i, t, m, f)| {
                object(vec![
                    ("index", i),
                    ("text", t.flatten()),
                    ("message", m),
                    ("finish_reason", f),
                ])
            });
        let usage = prop_oneof![
            Just(
                json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 1}})
            ),
            any_json(),
        ];
        (
            maybe(
                prop::collection::vec(choice, 0..3)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
            maybe(usage.boxed()),
            prop::option::weighted(0.1, any_json()),
            prop_oneof![3 => Just(Some(json!("gpt-4o-mini"))), 1 => any_json().prop_map(Some)],
            any::<bool>(),
        )
            .prop_map(|(choices, usage, error, model, dup)| {
                let s = object(vec![
                    ("id", Some(json!("chatcmpl-1"))),
                    ("object", Some(json!("chat.completion"))),
                    ("model", model),
                    ("choices", choices),
                    ("usage", usage),
                    ("error", error),
                ]);
                with_dup_content(s, dup)
            })
    }

    #[test]
    fn usual_answers_take_the_fast_path() {
        let usual = r#"{"id":"chatcmpl-mock-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant","content":"He said \"hi\"\n","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":22,"total_tokens":41,"prompt_tokens_details":{"cached_tokens":0}}}"#;
        let s = super::answer_summary(usual.as_bytes()).unwrap();
        assert_eq!(s.text, "He said \"hi\"\n");
        assert_eq!(s.finish, vec!["stop".to_string()]);
        assert_eq!(s.usage.unwrap().total(), Some(41));
        for other in [
            r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"}]}}]}"#,
            r#"{"model":"a","model":"b","choices":[]}"#,
            r#"[1]"#,
        ] {
            assert!(super::answer_summary(other.as_bytes()).is_none(), "{other}");
        }
    }

    proptest! {
        /// Wherever the fast path answers, it gives exactly the `Value` walk's summary (and
        /// the walk does not fail there).
        #[test]
        fn answer_fast_path_equals_the_value_walk(body in completion(), completions in any::<bool>()) {
            let format = if completions { ApiFormat::OpenAiCompletions } else { ApiFormat::OpenAiChat };
            if let Some(fast) = super::answer_summary(body.as_bytes()) {
                let v: Value = serde_json::from_str(&body).unwrap();
                let view = crate::provider::parse_response(format, &v);
                prop_assert!(view.is_ok(), "{} {:?}", body, view);
                let view = view.unwrap();
                let reference = super::AnswerSummary::of_view(&view);
                prop_assert_eq!(fast, reference, "{}", body);
                let texts = super::answer_texts(body.as_bytes()).unwrap();
                let all: Vec<_> = view.segments.iter().map(|s| (s.kind, s.text.clone())).collect();
                let fast_all: Vec<_> = texts.into_iter().map(|t| (crate::provider::SegmentKind::Assistant, t)).collect();
                prop_assert_eq!(fast_all, all, "{}", body);
            }
        }
    }

    /// A JSON value text a usage count might be (integers at the `u64` edges, `-0`, floats,
    /// other types).
    fn count_text() -> BoxedStrategy<String> {
        prop_oneof![
            4 => (0u64..100).prop_map(|n| n.to_string()),
            1 => prop::sample::select(vec![
                "-0", "-3", "18446744073709551615", "18446744073709551616", "1.0", "2e3",
                "null", "true", "\"5\"", "[1]", "{}", "{\"cached_tokens\":1}",
            ])
            .prop_map(str::to_owned),
        ]
        .boxed()
    }

    /// An object text of `keys`' members (repeats allowed, so the text can hold what a
    /// `Value` cannot), each value from `value`.
    fn members(keys: Vec<&'static str>, value: BoxedStrategy<String>) -> BoxedStrategy<String> {
        prop::collection::vec((prop::sample::select(keys), value), 0..6)
            .prop_map(|kv| {
                let m: Vec<String> = kv
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", m.join(","))
            })
            .boxed()
    }

    /// A `usage` member text: mostly an object of the usage names, sometimes anything.
    fn usage_text() -> BoxedStrategy<String> {
        let details = prop_oneof![
            3 => members(vec!["cached_tokens", "audio_tokens", "cached_tokens"], count_text()),
            1 => count_text(),
        ]
        .boxed();
        let value = prop_oneof![3 => count_text(), 1 => details].boxed();
        prop_oneof![
            6 => members(
                vec![
                    "prompt_tokens", "input_tokens", "completion_tokens", "output_tokens",
                    "total_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                    "prompt_tokens_details", "input_tokens_details", "cached_tokens", "x",
                ],
                value,
            ),
            1 => count_text(),
            1 => any_json().prop_map(|v| v.to_string()),
        ]
        .boxed()
    }

    proptest! {
        /// The typed usage reader gives exactly `Usage::from_json` of the `Value`.
        #[test]
        fn usage_reader_equals_from_json(text in usage_text()) {
            let v: Value = serde_json::from_str(&text).unwrap();
            let typed = serde_json::from_str::<super::UsageIn>(&text).unwrap();
            prop_assert_eq!(typed.0, Usage::from_json(&v), "{}", text);
        }
    }

    /// A chat completions request of the usual shape or an unusual one.
    fn chat_request() -> impl Strategy<Value = String> {
        let text = || {
            prop_oneof![
                4 => "[a-c\"\\\n ]{0,6}".prop_map(|s| Some(Value::String(s))),
                1 => Just(None),
                1 => Just(Some(Value::Null)),
                1 => Just(Some(json!([{"type": "text", "text": "part"}]))),
                1 => any_json().prop_map(Some),
            ]
        };
        let role = prop_oneof![
            3 => Just(Some(json!("user"))),
            2 => Just(Some(json!("system"))),
            2 => Just(Some(json!("assistant"))),
            1 => Just(Some(json!("tool"))),
            1 => Just(Some(json!("developer"))),
            1 => Just(Some(json!("function"))),
            1 => Just(None),
            1 => any_json().prop_map(Some),
        ];
        let message = (
            role,
            text(),
            prop::option::weighted(0.1, text()),
            prop_oneof![
                8 => Just(None),
                1 => Just(Some(json!([]))),
                1 => Just(Some(json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]))),
                1 => any_json().prop_map(Some),
            ],
            prop::option::weighted(0.05, any_json()),
        )
            .prop_map(|(role, content, refusal, tool_calls, function_call)| {
                object(vec![
                    ("role", role),
                    ("content", content),
                    ("refusal", refusal.flatten()),
                    ("tool_calls", tool_calls),
                    ("function_call", function_call),
                ])
            });
        (
            prop_oneof![
                6 => prop::collection::vec(message, 0..5).prop_map(|m| Some(Value::Array(m))),
                1 => Just(None),
                1 => any_json().prop_map(Some),
            ],
            prop_oneof![
                3 => Just(None),
                2 => any::<bool>().prop_map(|b| Some(json!(b))),
                1 => any_json().prop_map(Some),
            ],
            any::<bool>(),
        )
            .prop_map(|(messages, stream, dup)| {
                let s = object(vec![
                    ("model", Some(json!("gpt-4o-mini"))),
                    ("messages", messages),
                    ("stream", stream),
                ]);
                with_dup_content(s, dup)
            })
    }

    #[test]
    fn usual_requests_take_the_input_fast_path() {
        let usual = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Mail a@b.example \"now\""},{"role":"assistant","content":null,"refusal":"no"}],"stream":false}"#;
        assert_eq!(
            super::chat_input_text(usual.as_bytes()),
            Some(Some("Mail a@b.example \"now\"".to_string()))
        );
        let only_system = r#"{"messages":[{"role":"system","content":"s"}]}"#;
        assert_eq!(
            super::chat_input_text(only_system.as_bytes()),
            Some(Some("s".into()))
        );
        assert_eq!(super::chat_input_text(br#"{"messages":[]}"#), Some(None));
        for other in [
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}"#,
            r#"{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":"a"}],"stream":"yes"}"#,
            r#"{"model":"x"}"#,
            r#"[1]"#,
        ] {
            assert!(
                super::chat_input_text(other.as_bytes()).is_none(),
                "{other}"
            );
        }
    }

    proptest! {
        /// Wherever the request fast path answers, it gives exactly the text
        /// `input_text_of` picks from `parse_request`'s segments (and the walk does not fail).
        #[test]
        fn input_fast_path_equals_the_value_walk(body in chat_request()) {
            if let Some(fast) = super::chat_input_text(body.as_bytes()) {
                let v: Value = serde_json::from_str(&body).unwrap();
                let view = crate::provider::parse_request(ApiFormat::OpenAiChat, &v);
                prop_assert!(view.is_ok(), "{} {:?}", body, view);
                let segments = view.unwrap().segments;
                prop_assert_eq!(fast, super::input_text_of(&segments), "{}", body);
                let texts = super::chat_request_texts(body.as_bytes()).unwrap();
                let reference: Vec<_> = segments.into_iter().map(|s| (s.kind, s.text)).collect();
                prop_assert_eq!(texts, reference, "{}", body);
            }
        }
    }

    proptest! {
        /// Over a stream of chunks of any shape, the normalizer (fast path where it
        /// applies) gives exactly the `Value` walk's items and errors, tool memo included.
        #[test]
        fn fast_path_equals_the_value_walk(
            chunks in prop::collection::vec(chunk(), 1..8),
            completions in any::<bool>(),
            fresh in any::<bool>(),
        ) {
            let format = if completions { ApiFormat::OpenAiCompletions } else { ApiFormat::OpenAiChat };
            // Fresh: the stream's first chunks, which carry the `Meta` item.
            let (mut fast, mut reference) = if fresh {
                (StreamNormalizer::new(format), StreamNormalizer::new(format))
            } else {
                (started(format), started(format))
            };
            for data in &chunks {
                let ev = SseEvent::with_data(data);
                let a = fast.push(&ev);
                let b = reference.push_value(ev.event.as_deref(), data.trim());
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "{}", data);
            }
        }
    }
}
