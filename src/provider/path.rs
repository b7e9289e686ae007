//! JSON locations of segments ([`PathElem`]) and in-place text write-back.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;
use serde_json::Value;

use super::{NormalizeError, Segment, SegmentKind};

/// One step of a JSON path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathElem {
    /// Object member (the API formats' own keys are static: no allocation per path).
    Key(Cow<'static, str>),
    /// Array element.
    Index(usize),
}

impl From<&str> for PathElem {
    fn from(k: &str) -> Self {
        PathElem::Key(Cow::Owned(k.to_owned()))
    }
}

impl From<usize> for PathElem {
    fn from(i: usize) -> Self {
        PathElem::Index(i)
    }
}

/// Renders a path as `messages[2].content[0].text` (for errors and logs).
pub fn path_to_string(path: &[PathElem]) -> String {
    let mut s = String::new();
    for p in path {
        match p {
            PathElem::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathElem::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

/// The value at `path`, if it exists.
pub fn get_path<'a>(root: &'a Value, path: &[PathElem]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, p| match p {
        PathElem::Key(k) => v.as_object()?.get(k.as_ref()),
        PathElem::Index(i) => v.as_array()?.get(*i),
    })
}

fn get_path_mut<'a>(root: &'a mut Value, path: &[PathElem]) -> Option<&'a mut Value> {
    path.iter().try_fold(root, |v, p| match p {
        PathElem::Key(k) => v.as_object_mut()?.get_mut(k.as_ref()),
        PathElem::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

/// Removes the per-token log probabilities that belong to the texts at `text_paths`: a
/// `logprobs` member of the object holding the text (completions `choices[i].text`,
/// Responses `output_text` parts and delta / done events) or of the object one level up
/// (chat `choices[i].delta.content` / `choices[i].message.content` -> `choices[i]`). An
/// object becomes `null`, a non-empty array `[]`, as the provider writes "no logprobs".
///
/// Tokens spell the answer text, so once that text is redacted, or held back and released
/// in other events than the provider's, the provider's tokens would leak what the guard
/// withheld. Returns whether anything was removed.
pub fn strip_logprobs<'a>(
    root: &mut Value,
    text_paths: impl IntoIterator<Item = &'a [PathElem]>,
) -> bool {
    let mut changed = false;
    for path in text_paths {
        for up in 1..=2 {
            let Some(parent) = path.len().checked_sub(up).map(|n| &path[..n]) else {
                continue;
            };
            let Some(lp) = get_path_mut(root, parent)
                .and_then(Value::as_object_mut)
                .and_then(|o| o.get_mut("logprobs"))
            else {
                continue;
            };
            match lp {
                Value::Object(_) => {
                    *lp = Value::Null;
                    changed = true;
                }
                Value::Array(a) if !a.is_empty() => {
                    a.clear();
                    changed = true;
                }
                _ => {}
            }
        }
    }
    changed
}

/// Whether raw JSON may hold log probabilities [`strip_logprobs`] would remove (a cheap
/// byte test before any parse). The key is written by the provider's serializer, never by
/// the model, and no serializer escapes ASCII letters, so the literal key is what to find.
/// Occurrences whose value is `null` or `[]` (OpenAI chunks carry `"logprobs":null` when
/// none were asked for) do not count.
pub fn may_have_logprobs(data: &str) -> bool {
    static KEY: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\"logprobs\""));
    let b = data.as_bytes();
    KEY.find_iter(b).any(|at| {
        let rest = b.get(at + 10..).unwrap_or_default();
        let value = rest.trim_ascii_start();
        let Some(value) = value.strip_prefix(b":") else {
            return true;
        };
        let value = value.trim_ascii_start();
        if value.starts_with(b"null") {
            return false;
        }
        match value.strip_prefix(b"[") {
            Some(inner) => !inner.trim_ascii_start().starts_with(b"]"),
            None => true,
        }
    })
}

/// Replaces the text at `path` in place, keeping the JSON type of the value there.
///
/// - a JSON string (message text, or OpenAI tool-call `arguments`, which is a
///   JSON-encoded string) is replaced by `new_text` verbatim; this function does not
///   check that new arguments are JSON (use [`set_segment_text`] for that);
/// - a JSON object or array (Anthropic `tool_use.input`) is replaced by `new_text`
///   parsed as JSON, which must be of the same type (object stays object);
/// - anything else, or a missing path, is an error and leaves `root` unchanged.
pub fn set_text(root: &mut Value, path: &[PathElem], new_text: &str) -> Result<(), NormalizeError> {
    let field = || path_to_string(path);
    let slot =
        get_path_mut(root, path).ok_or_else(|| NormalizeError::PathNotFound { field: field() })?;
    match slot {
        Value::String(s) => {
            new_text.clone_into(s);
            Ok(())
        }
        Value::Object(_) | Value::Array(_) => {
            let parsed: Value =
                serde_json::from_str(new_text).map_err(|_| NormalizeError::InvalidReplacement {
                    field: field(),
                    expected: "valid JSON",
                })?;
            let same = matches!(
                (&*slot, &parsed),
                (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
            );
            if !same {
                return Err(NormalizeError::InvalidReplacement {
                    field: field(),
                    expected: if slot.is_object() {
                        "a JSON object"
                    } else {
                        "a JSON array"
                    },
                });
            }
            *slot = parsed;
            Ok(())
        }
        _ => Err(NormalizeError::NotText { field: field() }),
    }
}

/// [`set_text`] for a parsed segment, enforcing the tool-argument contract: when the
/// segment is [`SegmentKind::ToolCallArguments`] and its current text is valid JSON,
/// `new_text` must be valid JSON too (redact inside string values, not across syntax).
pub fn set_segment_text(
    root: &mut Value,
    seg: &Segment,
    new_text: &str,
) -> Result<(), NormalizeError> {
    if seg.kind == SegmentKind::ToolCallArguments
        && serde_json::from_str::<serde::de::IgnoredAny>(&seg.text).is_ok()
        && serde_json::from_str::<serde::de::IgnoredAny>(new_text).is_err()
    {
        return Err(NormalizeError::InvalidReplacement {
            field: path_to_string(&seg.path),
            expected: "valid JSON (the original arguments were JSON)",
        });
    }
    set_text(root, &seg.path, new_text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(items: &[PathElem]) -> Vec<PathElem> {
        items.to_vec()
    }

    #[test]
    fn logprobs_are_found_and_stripped_beside_or_above_the_text() {
        assert!(!may_have_logprobs(
            r#"{"choices":[{"delta":{"content":"a"},"logprobs":null}]}"#
        ));
        assert!(!may_have_logprobs(r#"{"delta":"a","logprobs" : [ ]}"#));
        assert!(!may_have_logprobs(r#"{"delta":"the \"logprobs\" key"}"#));
        assert!(may_have_logprobs(
            r#"{"choices":[{"logprobs":{"content":[]}}]}"#
        ));
        assert!(may_have_logprobs(
            r#"{"delta":"a","logprobs":[{"token":"a"}]}"#
        ));

        let mut chat = json!({"choices": [
            {"index": 0, "delta": {"content": "x"}, "logprobs": {"content": [{"token": "x"}]}},
            {"index": 1, "delta": {"content": "y"}, "logprobs": {"content": [{"token": "y"}]}}]});
        let path = p(&["choices".into(), 0.into(), "delta".into(), "content".into()]);
        assert!(strip_logprobs(&mut chat, [path.as_slice()]));
        assert!(chat["choices"][0]["logprobs"].is_null());
        assert_eq!(chat["choices"][1]["logprobs"]["content"][0]["token"], "y");
        assert!(
            !strip_logprobs(&mut chat, [path.as_slice()]),
            "nothing left to strip"
        );

        let mut part = json!({"output": [{"content": [{"type": "output_text", "text": "x",
            "logprobs": [{"token": "x"}]}]}]});
        let path = p(&[
            "output".into(),
            0.into(),
            "content".into(),
            0.into(),
            "text".into(),
        ]);
        assert!(strip_logprobs(&mut part, [path.as_slice()]));
        assert_eq!(part["output"][0]["content"][0]["logprobs"], json!([]));
    }

    #[test]
    fn render_and_get() {
        let path = p(&["messages".into(), 2.into(), "content".into()]);
        assert_eq!(path_to_string(&path), "messages[2].content");
        let v = json!({"messages": [1, 2, {"content": "hi"}]});
        assert_eq!(get_path(&v, &path), Some(&json!("hi")));
        assert_eq!(get_path(&v, &p(&["messages".into(), 9.into()])), None);
        assert_eq!(get_path(&v, &p(&["messages".into(), "x".into()])), None);
    }

    #[test]
    fn set_string_object_and_errors() {
        let mut v = json!({"a": "x", "o": {"k": 1}, "n": 3});
        set_text(&mut v, &p(&["a".into()]), "y").unwrap();
        set_text(&mut v, &p(&["o".into()]), r#"{"k":"[REDACTED]"}"#).unwrap();
        assert_eq!(v, json!({"a": "y", "o": {"k": "[REDACTED]"}, "n": 3}));
        let before = v.clone();
        assert!(matches!(
            set_text(&mut v, &p(&["o".into()]), "[1]"),
            Err(NormalizeError::InvalidReplacement { .. })
        ));
        assert!(matches!(
            set_text(&mut v, &p(&["o".into()]), "not json"),
            Err(NormalizeError::InvalidReplacement { .. })
        ));
        assert_eq!(
            set_text(&mut v, &p(&["n".into()]), "1"),
            Err(NormalizeError::NotText { field: "n".into() })
        );
        assert_eq!(
            set_text(&mut v, &p(&["zz".into()]), "1"),
            Err(NormalizeError::PathNotFound { field: "zz".into() })
        );
        assert_eq!(v, before);
    }

    #[test]
    fn segment_argument_contract() {
        let mut v = json!({"arguments": "{\"q\":\"a@b.c\"}"});
        let seg = Segment::new(
            SegmentKind::ToolCallArguments,
            "{\"q\":\"a@b.c\"}",
            p(&["arguments".into()]),
        );
        assert!(set_segment_text(&mut v, &seg, "{\"q\":").is_err());
        set_segment_text(&mut v, &seg, "{\"q\":\"[EMAIL_1]\"}").unwrap();
        assert_eq!(v, json!({"arguments": "{\"q\":\"[EMAIL_1]\"}"}));
        // Arguments that were not JSON (e.g. truncated) may be replaced by anything.
        let seg = Segment::new(
            SegmentKind::ToolCallArguments,
            "{\"q\":",
            p(&["arguments".into()]),
        );
        set_segment_text(&mut v, &seg, "X").unwrap();
    }
}
