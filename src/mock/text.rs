//! Text helpers of the mock: prompt extraction, reply/tool-call decision, chunking, token estimates, JSON quoting, base64.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::controls::Controls;

/// Tool name used when a tool call is triggered by the word `weather`.
pub const DEFAULT_TOOL: &str = "get_weather";

/// What the mock "model" answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Assistant text.
    Text(String),
    /// One tool call with JSON-encoded arguments.
    Tool {
        /// Tool (function) name.
        name: String,
        /// Arguments as a JSON object text.
        arguments: String,
    },
}

/// Text of a message `content`: a string, or the concatenated `text` of its text parts.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match p {
                    Value::String(s) => out.push_str(s),
                    Value::Object(o) => {
                        let kind = o.get("type").and_then(Value::as_str).unwrap_or("text");
                        if matches!(kind, "text" | "input_text" | "output_text") {
                            if let Some(t) = o.get("text").and_then(Value::as_str) {
                                out.push_str(t);
                            }
                        }
                    }
                    _ => {}
                }
            }
            out
        }
        _ => String::new(),
    }
}

/// Text of the last message with `role: "user"` in a chat-style `messages` array.
pub fn last_user_text(messages: Option<&Value>) -> String {
    messages
        .and_then(Value::as_array)
        .and_then(|ms| {
            ms.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default()
}

/// The reply for a prompt: a tool call when `tools` is non-empty and the user asked about
/// `weather` (or `x-mock-tool-call` names a tool), else `x-mock-reply` or `You said: <text>`.
pub fn decide(req: &Value, user_text: &str, controls: &Controls) -> Reply {
    let has_tools = req
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let forced = controls.tool_call.as_deref();
    if forced.is_some() || (has_tools && user_text.to_ascii_lowercase().contains("weather")) {
        let location = location_of(user_text).unwrap_or("Paris, France");
        return Reply::Tool {
            name: forced.unwrap_or(DEFAULT_TOOL).to_owned(),
            arguments: format!(
                r#"{{"location":{},"unit":"celsius"}}"#,
                json_quote(location)
            ),
        };
    }
    Reply::Text(reply_text(user_text, controls))
}

/// `x-mock-reply` or `You said: <text>`.
pub fn reply_text(user_text: &str, controls: &Controls) -> String {
    match &controls.reply {
        Some(r) => r.clone(),
        None => format!("You said: {user_text}"),
    }
}

/// The words after the last ` in ` of a prompt ("weather in Oslo?" → "Oslo").
fn location_of(text: &str) -> Option<&str> {
    let idx = text.rfind(" in ")?;
    let loc = text[idx + 4..]
        .trim()
        .trim_end_matches(['?', '.', '!'])
        .trim();
    (!loc.is_empty() && loc.len() <= 200).then_some(loc)
}

/// Splits `s` into pieces of `n` characters (the last may be shorter); never empty for non-empty `s`.
pub fn chunks(s: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let mut out = Vec::with_capacity(s.len() / n + 1);
    let mut start = 0;
    let mut count = 0;
    for (i, _) in s.char_indices() {
        if count == n {
            out.push(&s[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// A rough token count (4 characters per token, at least 1).
pub fn estimate_tokens(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4).max(1)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `s` as a JSON string literal, quotes included.
pub fn json_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Standard base64 (RFC 4648, padded).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[*s as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A deterministic unit-length embedding of `text` with `dims` components.
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    // FNV-1a seed, then a xorshift sequence: same text → same vector.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks_split_by_characters() {
        assert_eq!(chunks("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(chunks("héllo", 2), vec!["hé", "ll", "o"]);
        assert_eq!(chunks("", 4), Vec::<&str>::new());
        assert_eq!(chunks("ab", 0), vec!["a", "b"]);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn json_quote_round_trips() {
        let s = "a\"b\\c\nd\u{1}é";
        let q = json_quote(s);
        assert_eq!(serde_json::from_str::<String>(&q).unwrap(), s);
    }

    #[test]
    fn extracts_last_user_text_from_parts() {
        let msgs = json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "input_text", "text": "b"}]},
            {"role": "assistant", "content": "y"}
        ]);
        assert_eq!(last_user_text(Some(&msgs)), "ab");
        assert_eq!(last_user_text(None), "");
    }

    #[test]
    fn decides_tool_calls() {
        let c = Controls::default();
        let with_tools = json!({"tools": [{"type": "function"}]});
        match decide(&with_tools, "What's the Weather in Oslo?", &c) {
            Reply::Tool { name, arguments } => {
                assert_eq!(name, DEFAULT_TOOL);
                let a: Value = serde_json::from_str(&arguments).unwrap();
                assert_eq!(a["location"], "Oslo");
            }
            other => panic!("expected tool call, got {other:?}"),
        }
        assert_eq!(
            decide(&json!({}), "weather?", &c),
            Reply::Text("You said: weather?".into())
        );
        let forced = Controls {
            tool_call: Some("lookup".into()),
            ..Controls::default()
        };
        assert!(
            matches!(decide(&json!({}), "hi", &forced), Reply::Tool { name, .. } if name == "lookup")
        );
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding("hello", 64);
        assert_eq!(a, embedding("hello", 64));
        assert_ne!(a, embedding("hullo", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert!(a.iter().all(|x| (-1.0..=1.0).contains(x)));
    }
}
