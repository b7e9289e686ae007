//! Shared JSON-walking helpers for the request, response and stream parsers (crate-private).

use serde_json::{Map, Value};

use super::{path_to_string, NormalizeError, PathElem, Segment, SegmentKind};

/// `base` extended by `more`.
pub(crate) fn at(base: &[PathElem], more: &[PathElem]) -> Vec<PathElem> {
    let mut p = Vec::with_capacity(base.len() + more.len());
    p.extend_from_slice(base);
    p.extend_from_slice(more);
    p
}

pub(crate) fn key(k: &'static str) -> PathElem {
    PathElem::Key(std::borrow::Cow::Borrowed(k))
}

pub(crate) fn wrong(path: &[PathElem], expected: &'static str) -> NormalizeError {
    NormalizeError::WrongType {
        field: path_to_string(path),
        expected,
    }
}

/// The root object of a body.
pub(crate) fn root_obj(v: &Value) -> Result<&Map<String, Value>, NormalizeError> {
    v.as_object().ok_or(NormalizeError::NotAnObject)
}

/// `v` as an object, or a `WrongType` error naming `path`.
pub(crate) fn obj<'a>(
    v: &'a Value,
    path: &[PathElem],
) -> Result<&'a Map<String, Value>, NormalizeError> {
    v.as_object().ok_or_else(|| wrong(path, "object"))
}

/// An optional array member: absent or null gives an empty slice.
pub(crate) fn opt_array<'a>(
    o: &'a Map<String, Value>,
    k: &'static str,
    base: &[PathElem],
) -> Result<&'a [Value], NormalizeError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(wrong(&at(base, &[key(k)]), "array")),
    }
}

/// An optional string member: absent or null gives `None`, another type is an error.
pub(crate) fn opt_string<'a>(
    o: &'a Map<String, Value>,
    k: &'static str,
    base: &[PathElem],
) -> Result<Option<&'a str>, NormalizeError> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(&at(base, &[key(k)]), "string")),
    }
}

/// A metadata string (id, role, type, model): taken if it is a string, ignored otherwise.
pub(crate) fn meta<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

/// Metadata that may be a string or a number (error codes), rendered as text.
pub(crate) fn meta_text(o: &Map<String, Value>, k: &str) -> Option<String> {
    match o.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-negative integer metadata field.
pub(crate) fn meta_u64(o: &Map<String, Value>, k: &str) -> Option<u64> {
    o.get(k).and_then(Value::as_u64)
}

/// An index field (`index`, `output_index`, ...) or `default`.
pub(crate) fn meta_index(o: &Map<String, Value>, k: &str, default: usize) -> usize {
    meta_u64(o, k)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(default)
}

/// Text of a content value: a string, null, or an array of typed parts. `parts` maps a
/// part `type` to the member holding its text (e.g. `("text", "text")`,
/// `("refusal", "refusal")`). Unknown part types are skipped; non-object parts and
/// non-string texts are errors.
pub(crate) fn content_texts(
    v: Option<&Value>,
    base: &[PathElem],
    parts: &[(&str, &'static str)],
) -> Result<Vec<(Vec<PathElem>, String)>, NormalizeError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![(base.to_vec(), s.clone())]),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (j, part) in items.iter().enumerate() {
                let pbase = at(base, &[PathElem::Index(j)]);
                let po = obj(part, &pbase)?;
                let ty = meta(po, "type").unwrap_or_default();
                if let Some((_, field)) = parts.iter().find(|(t, _)| *t == ty) {
                    if let Some(text) = opt_string(po, field, &pbase)? {
                        out.push((at(&pbase, &[key(field)]), text.to_owned()));
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(wrong(base, "string, array or null")),
    }
}

/// Pushes one segment per content text.
pub(crate) fn push_content(
    segs: &mut Vec<Segment>,
    texts: Vec<(Vec<PathElem>, String)>,
    kind: SegmentKind,
    role: Option<&str>,
    tool: (Option<&str>, Option<&str>),
) {
    for (path, text) in texts {
        segs.push(
            Segment::new(kind, text, path)
                .role(role)
                .tool(tool.0, tool.1),
        );
    }
}

/// Compact JSON of an Anthropic `tool_use.input` (an object; other types are an error).
pub(crate) fn input_object_text(
    v: Option<&Value>,
    path: &[PathElem],
) -> Result<Option<String>, NormalizeError> {
    match v {
        None => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o.to_string())),
        Some(_) => Err(wrong(path, "object")),
    }
}
