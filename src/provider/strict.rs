//! Strict JSON parsing for inspected bodies: a `Value` like `serde_json::from_slice` gives,
//! except that an object repeating a key is an error instead of "the last one wins".
//!
//! Parapet guards the text it parsed but forwards the bytes it received. With a repeated
//! key (`{"content": "<secret>", "content": "hi"}`) the guard would read one value and a
//! provider or SDK whose parser keeps the first would read the other, unguarded. An
//! ambiguous body is therefore refused, not guessed at.

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parse `bytes` as one JSON value; `Err` for invalid JSON and for a repeated object key
/// (the error says `duplicate key`, without the key or any other content).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|s| s.0)
}

/// Whether a [`parse_strict`] error is a repeated key (rather than invalid JSON).
pub fn is_duplicate_key(e: &serde_json::Error) -> bool {
    e.to_string().starts_with(DUPLICATE)
}

const DUPLICATE: &str = "duplicate key in a JSON object";

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own `Value`: a non-finite float (not JSON) becomes null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            // `insert` hands back the value it replaced: the key was there before.
            if out.insert(key, v).is_some() {
                return Err(A::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"messages":[{"role":"user","content":"x","content":"y"}]}"#,
            r#"[{"k":{"z":null,"z":null}}]"#,
        ] {
            let e = parse_strict(bad.as_bytes()).unwrap_err();
            assert!(is_duplicate_key(&e), "{bad}: {e}");
        }
        let e = parse_strict(b"{\"a\":").unwrap_err();
        assert!(!is_duplicate_key(&e));
        // The same key in different objects is fine.
        assert!(parse_strict(br#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#).is_ok());
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            any::<u64>().prop_map(|n| Value::Number(n.into())),
            (-1e300f64..1e300).prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c]{0,2}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Without repeated keys it is exactly serde_json's parse.
        #[test]
        fn equals_serde_json_without_repeated_keys(v in json()) {
            let text = serde_json::to_string(&v).unwrap();
            let ours = parse_strict(text.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(&text).unwrap();
            // (Not compared with `text`: serde_json's float parsing is not always exact,
            // for its own `Value` alike.)
            prop_assert_eq!(&ours, &theirs);
        }
    }
}
