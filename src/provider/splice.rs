//! Text write-back into raw JSON without a parse and re-serialization: locate the string
//! value at a [`PathElem`] path in the original bytes and splice the new text in.
//!
//! The streaming guard rewrites most text deltas of a guarded stream (the held-back window
//! shifts the text between events); parsing each event into a `Value` and serializing it
//! again was a third of the guard's time. The splice keeps every other byte of the event as
//! the provider sent it. It declines (`None`: the caller falls back to the `Value` rewrite)
//! whenever the answer would not be the same as that rewrite's: a path that is missing or
//! not a string, or a key that occurs twice in an object on the path (a parser that keeps
//! the first occurrence would otherwise still see the unrewritten text).

use super::PathElem;
use crate::store::evidence::push_json_str;

/// `data` with the string at each path replaced by its text (JSON-escaped), or `None` when
/// any path does not lead to exactly one JSON string. `data` must be one JSON value.
pub fn splice_strings(data: &str, edits: &[(&[PathElem], &str)]) -> Option<String> {
    let mut spans: Vec<(usize, usize, &str)> = Vec::with_capacity(edits.len());
    for (path, text) in edits {
        let (start, end) = string_span(data, path)?;
        spans.push((start, end, text));
    }
    spans.sort_by_key(|s| s.0);
    if spans.windows(2).any(|w| w[0].1 > w[1].0) {
        return None;
    }
    write_spans(data, &spans)
}

/// `data` with each of the sorted, disjoint `spans` replaced by its text as a JSON string.
fn write_spans(data: &str, spans: &[(usize, usize, &str)]) -> Option<String> {
    let extra: usize = spans.iter().map(|s| s.2.len()).sum();
    let mut out = String::with_capacity(data.len() + extra + 16);
    let mut at = 0;
    for &(start, end, text) in spans {
        out.push_str(data.get(at..start)?);
        push_json_str(&mut out, text);
        at = end;
    }
    out.push_str(data.get(at..)?);
    Some(out)
}

/// The byte span (quotes included) of the one JSON string at `path` in `data`, with the
/// same checks as [`splice_strings`] (`None` = missing, not a string, or a repeated key).
pub fn string_span(data: &str, path: &[PathElem]) -> Option<(usize, usize)> {
    let b = data.as_bytes();
    let start = locate(b, skip_ws(b, 0), path)?;
    if b.get(start) != Some(&b'"') {
        return None;
    }
    Some((start, skip_string(b, start)?))
}

/// The span of the string in `data` that sits where `prev[start..end]` (a span found by
/// [`string_span`]) sat, when `data` is `prev` with only that string's content changed:
/// the same bytes before and after it (but for the volatile members, see [`lockstep`]), a
/// string token in between. Every byte the path walk of [`string_span`] looks at is then
/// the same (a number's digits and a string's content do not change the walk), so the
/// result is the one it would give, without walking the JSON again (stream chunks of one
/// answer usually differ only in their text, and Responses events in their number).
pub fn same_layout(prev: &str, start: usize, end: usize, data: &str) -> Option<(usize, usize)> {
    let (p, b) = (prev.as_bytes(), data.as_bytes());
    let (pp, bp) = (p.get(..start)?, b.get(..start)?);
    let start = if pp == bp { start } else { lockstep(pp, b)? };
    let e = skip_string(b, start)?;
    let (pt, bt) = (p.get(end..)?, b.get(e..)?);
    (pt == bt || lockstep(pt, bt) == Some(bt.len())).then_some((start, e))
}

/// Walk `p` and `b` together while they are the same bytes, except that the value of a
/// `"sequence_number"` member may be other digits (Responses events number themselves) and
/// the value of an `"obfuscation"` member another string (OpenAI pads every stream chunk
/// with a random one, `stream_options.include_obfuscation`): no reader of an event's items
/// looks at either. Returns how much of `b` matched all of `p`.
fn lockstep(p: &[u8], b: &[u8]) -> Option<usize> {
    const SEQ: &[u8] = b"\"sequence_number\":";
    const PAD: &[u8] = b"\"obfuscation\":";
    let (mut i, mut j) = (0, 0);
    while i < p.len() {
        if p[i] != *b.get(j)? {
            return None;
        }
        if p[i] == b'"' {
            let (pr, br) = (&p[i..], &b[j..]);
            if pr.starts_with(SEQ) && br.starts_with(SEQ) {
                let digits = |x: &[u8]| x.iter().take_while(|c| c.is_ascii_digit()).count();
                let (pd, bd) = (digits(&pr[SEQ.len()..]), digits(&br[SEQ.len()..]));
                if pd == 0 || bd == 0 {
                    return None;
                }
                i += SEQ.len() + pd;
                j += SEQ.len() + bd;
                continue;
            }
            if pr.starts_with(PAD) && br.starts_with(PAD) {
                i = skip_string(p, i + PAD.len())?;
                j = skip_string(b, j + PAD.len())?;
                continue;
            }
        }
        i += 1;
        j += 1;
    }
    Some(j)
}

/// The JSON string token at `span` of `data`, decoded; `None` if it is not a valid one.
pub fn string_at(data: &str, span: (usize, usize)) -> Option<std::borrow::Cow<'_, str>> {
    let tok = data.get(span.0..span.1)?;
    let inner = tok.strip_prefix('"')?.strip_suffix('"')?;
    if inner.bytes().all(|c| c != b'\\' && c >= 0x20) {
        return Some(std::borrow::Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(tok)
        .ok()
        .map(std::borrow::Cow::Owned)
}

/// `data` with the JSON token at `span` replaced by `text` as a JSON string.
pub fn splice_at(data: &str, span: (usize, usize), text: &str) -> Option<String> {
    write_spans(data, &[(span.0, span.1, text)])
}

/// Start of the value at `path` inside the value starting at `i`.
fn locate(b: &[u8], i: usize, path: &[PathElem]) -> Option<usize> {
    let Some((step, rest)) = path.split_first() else {
        return Some(i);
    };
    let found = match step {
        PathElem::Key(k) => member(b, i, k)?,
        PathElem::Index(n) => element(b, i, *n)?,
    };
    locate(b, found, rest)
}

/// Start of the value of member `key` in the object at `i`; `None` if absent or repeated.
fn member(b: &[u8], i: usize, key: &str) -> Option<usize> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut j = skip_ws(b, i + 1);
    if b.get(j) == Some(&b'}') {
        return None;
    }
    let mut found = None;
    loop {
        let key_end = skip_string(b, j)?;
        let same = key_eq(&b[j..key_end], key)?;
        j = skip_ws(b, key_end);
        if b.get(j) != Some(&b':') {
            return None;
        }
        j = skip_ws(b, j + 1);
        if same {
            if found.is_some() {
                return None;
            }
            found = Some(j);
        }
        j = skip_ws(b, skip_value(b, j)?);
        match b.get(j) {
            Some(b',') => j = skip_ws(b, j + 1),
            Some(b'}') => return found,
            _ => return None,
        }
    }
}

/// Start of element `n` of the array at `i`.
fn element(b: &[u8], i: usize, n: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut j = skip_ws(b, i + 1);
    if b.get(j) == Some(&b']') {
        return None;
    }
    let mut k = 0;
    loop {
        if k == n {
            return Some(j);
        }
        j = skip_ws(b, skip_value(b, j)?);
        match b.get(j) {
            Some(b',') => j = skip_ws(b, j + 1),
            _ => return None,
        }
        k += 1;
    }
}

/// Whether the JSON string token `tok` (with its quotes) decodes to `key`; `None` if it is
/// not a valid string.
fn key_eq(tok: &[u8], key: &str) -> Option<bool> {
    let inner = tok.get(1..tok.len().checked_sub(1)?)?;
    if !inner.contains(&b'\\') {
        return Some(inner == key.as_bytes());
    }
    let s = std::str::from_utf8(tok).ok()?;
    serde_json::from_str::<String>(s).ok().map(|d| d == key)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// End (exclusive) of the string token starting at `i`.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// End (exclusive) of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::path::set_text;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn p(elems: &[PathElem]) -> Vec<PathElem> {
        elems.to_vec()
    }

    #[test]
    fn same_layout_allows_only_a_different_obfuscation_value() {
        let prev =
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}],"obfuscation":"abc"}"#;
        let path = p(&["choices".into(), 0.into(), "delta".into(), "content".into()]);
        let (start, end) = string_span(prev, &path).unwrap();
        let next = r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo \"x\""}}],"obfuscation":"Zq"}"#;
        let span = same_layout(prev, start, end, next);
        assert_eq!(span, string_span(next, &path));
        assert_eq!(string_at(next, span.unwrap()).as_deref(), Some("lo \"x\""));
        // Any other difference after the text is a different layout.
        let moved = r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo"}}],"obfuscation":"Zq","x":1}"#;
        assert_eq!(same_layout(prev, start, end, moved), None);
        let other = r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"obfuscation":"abc"}"#;
        assert_eq!(same_layout(prev, start, end, other), None);
    }

    #[test]
    fn same_layout_allows_only_a_different_sequence_number() {
        let prev = r#"{"type":"response.output_text.delta","sequence_number":9,"item_id":"m","output_index":0,"delta":"Hel","logprobs":[]}"#;
        let path = p(&["delta".into()]);
        let (start, end) = string_span(prev, &path).unwrap();
        let next = r#"{"type":"response.output_text.delta","sequence_number":10,"item_id":"m","output_index":0,"delta":"lo","logprobs":[]}"#;
        let span = same_layout(prev, start, end, next);
        assert_eq!(span, string_span(next, &path));
        assert_eq!(string_at(next, span.unwrap()).as_deref(), Some("lo"));
        // Another number before the text is another layout (a position may have changed).
        let moved = r#"{"type":"response.output_text.delta","sequence_number":10,"item_id":"m","output_index":1,"delta":"lo","logprobs":[]}"#;
        assert_eq!(same_layout(prev, start, end, moved), None);
        let not_a_number = r#"{"type":"response.output_text.delta","sequence_number":"10","item_id":"m","output_index":0,"delta":"lo","logprobs":[]}"#;
        assert_eq!(same_layout(prev, start, end, not_a_number), None);
    }

    #[test]
    fn splices_an_openai_delta_and_keeps_the_rest_byte_for_byte() {
        let data =
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#;
        let path = p(&["choices".into(), 0.into(), "delta".into(), "content".into()]);
        let out = splice_strings(data, &[(&path, "He said \"hi\"\n")]).unwrap();
        assert_eq!(
            out,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"He said \"hi\"\n"},"finish_reason":null}]}"#
        );
    }

    #[test]
    fn declines_missing_paths_non_strings_and_repeated_keys() {
        let path = p(&["a".into()]);
        assert_eq!(splice_strings(r#"{"b":"x"}"#, &[(&path, "y")]), None);
        assert_eq!(splice_strings(r#"{"a":1}"#, &[(&path, "y")]), None);
        assert_eq!(splice_strings(r#"{"a":{"b":1}}"#, &[(&path, "y")]), None);
        // A client keeping the first "a" would still read the secret.
        assert_eq!(
            splice_strings(r#"{"a":"secret","a":"x"}"#, &[(&path, "y")]),
            None
        );
        let deep = p(&["o".into(), "a".into()]);
        assert_eq!(
            splice_strings(r#"{"o":{"a":"s"},"o":{"a":"t"}}"#, &[(&deep, "y")]),
            None
        );
        let idx = p(&[3.into()]);
        assert_eq!(splice_strings(r#"["a","b"]"#, &[(&idx, "y")]), None);
    }

    #[test]
    fn escaped_keys_and_whitespace_are_understood() {
        let data = "{ \"a\\u0062\" : [ 1 , { \"t\" : \"old\" } ] }";
        let path = p(&["ab".into(), 1.into(), "t".into()]);
        let out = splice_strings(data, &[(&path, "new")]).unwrap();
        assert_eq!(out, "{ \"a\\u0062\" : [ 1 , { \"t\" : \"new\" } ] }");
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
            "[a-z\"\\\\{}\\[\\],: ]{0,12}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-c\"\\\\]{0,3}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Every path of `v` that leads to a string.
    fn string_paths(v: &Value, at: &mut Vec<PathElem>, out: &mut Vec<Vec<PathElem>>) {
        match v {
            Value::String(_) => out.push(at.clone()),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    at.push(PathElem::Index(i));
                    string_paths(x, at, out);
                    at.pop();
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    at.push(PathElem::Key(k.clone().into()));
                    string_paths(x, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    proptest! {
        /// The splice means exactly what the `Value` rewrite of the same bytes means, compact
        /// or pretty input.
        #[test]
        fn splice_equals_the_value_rewrite(
            inner in value(),
            leaf in any::<String>(),
            as_object in any::<bool>(),
            pick in any::<prop::sample::Index>(),
            text in any::<String>(),
            pretty in any::<bool>(),
        ) {
            // At least one string to rewrite.
            let v = if as_object {
                json!({"v": inner, "s": leaf})
            } else {
                json!([inner, leaf])
            };
            let mut paths = Vec::new();
            string_paths(&v, &mut Vec::new(), &mut paths);
            let path = pick.get(&paths).clone();
            let data = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                v.to_string()
            };
            let spliced = splice_strings(&data, &[(&path, &text)]).unwrap();
            // Parsed from the same bytes (serde_json's float parsing does not round-trip
            // every f64; the splice keeps the number's original text).
            let mut expected: Value = serde_json::from_str(&data).unwrap();
            set_text(&mut expected, &path, &text).unwrap();
            let got: Value = serde_json::from_str(&spliced).unwrap();
            prop_assert_eq!(got, expected);
        }

        /// The layout shortcut finds exactly what the path walk finds: on the same document
        /// with another text at the path, and (when it answers at all) on any other document.
        #[test]
        fn same_layout_equals_the_path_walk(
            inner in value(),
            other in value(),
            pick in any::<prop::sample::Index>(),
            text in any::<String>(),
        ) {
            let v = json!({"v": inner, "s": "x", "w": other});
            let mut paths = Vec::new();
            string_paths(&v, &mut Vec::new(), &mut paths);
            let path = pick.get(&paths).clone();
            let prev = v.to_string();
            let Some((start, end)) = string_span(&prev, &path) else {
                return Ok(());
            };
            let next = splice_strings(&prev, &[(&path, &text)]).unwrap();
            prop_assert_eq!(same_layout(&prev, start, end, &next), string_span(&next, &path));
            for doc in [other.to_string(), json!({"v": other, "s": text}).to_string()] {
                if let Some(span) = same_layout(&prev, start, end, &doc) {
                    prop_assert_eq!(Some(span), string_span(&doc, &path));
                }
            }
        }

        /// Arbitrary text as the document never makes it panic.
        #[test]
        fn any_input_is_handled(data in any::<String>(), key in "[a-c]{1,2}") {
            let path = vec![PathElem::Key(key.into()), PathElem::Index(0)];
            let _ = splice_strings(&data, &[(&path, "x")]);
        }
    }
}
