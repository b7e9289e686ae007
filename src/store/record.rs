//! The stored record built without `serde_json::Value`: an [`Event`] is turned into a
//! [`Prepared`] record (evidence hash, canonical JSON of every field the writer does not
//! assign, index values) by the producer — a Tokio task, in parallel with the writer — and
//! the single writer thread only splices in `seq` and `ingested_at`, hashes the bytes
//! (`record_hash`), links the chain and frames the record.
//!
//! The bytes are exactly what [`super::evidence::record_hash`] computes over the
//! `serde_json::Value` of the record (canonical JSON: keys sorted by code point, no
//! whitespace); the stored record is that canonical JSON with `chain_hash` and
//! `record_hash` inserted at their sorted places, so a stored record is itself canonical.
//! `tests::prepared_matches_value_form` checks the equivalence on random events.

use sha2::{Digest, Sha256};

use super::db::INDEXED;
use super::event::{Event, Evidence};
use super::evidence::Timestamp;
use super::evidence::{canonical_object, chain_link, evidence_hash, push_json_str, tagged_hex};

/// An event ready for the writer.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub workspace: String,
    pub event_id: String,
    /// The id was generated here: no duplicate lookup needed.
    pub fresh_id: bool,
    pub evidence_hash: String,
    /// Canonical JSON of the record with the `ingested_at` and `seq` values left out (cut
    /// at `cut_ingested` and `cut_seq`).
    canon: String,
    /// Where `"chain_hash":"…",` goes in the stored form.
    cut_chain: usize,
    cut_ingested: usize,
    /// Where `"record_hash":"…",` goes in the stored form.
    cut_record_hash: usize,
    cut_seq: usize,
    /// Indexed field values present: (key byte of [`INDEXED`], value).
    pub indexed: Vec<(u8, String)>,
    /// `recorded_at` in µs, for the time index.
    pub recorded_micros: Option<i64>,
}

fn key(out: &mut String, name: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
}

fn opt_str(out: &mut String, v: &Option<String>) {
    match v {
        Some(s) => push_json_str(out, s),
        None => out.push_str("null"),
    }
}

impl Prepared {
    /// Hash and serialize everything of `ev` the writer does not assign.
    pub fn new(ev: Event) -> Prepared {
        let Event {
            kind,
            workspace,
            request_id,
            evidence,
            data,
            fresh_id,
        } = ev;
        let eh = evidence_hash(&evidence);
        let Evidence {
            schema_version,
            record_origin,
            project_id,
            application_id,
            event_id,
            session_id,
            recorded_at,
            user_ref,
            input_summary,
            output_summary,
            provider,
            model,
            route_path,
            fallback_used,
            guard_flags,
            confidence_signals,
            operator_action,
            final_status,
            metadata,
        } = evidence;
        let recorded_micros = Timestamp::parse(&recorded_at).map(|t| t.micros());

        // Keys in code-point order (the record's key set is fixed).
        let mut o = String::with_capacity(
            768 + input_summary.as_ref().map_or(0, String::len)
                + output_summary.as_ref().map_or(0, String::len),
        );
        o.push('{');
        key(&mut o, "application_id");
        opt_str(&mut o, &application_id);
        o.push(',');
        let cut_chain = o.len();
        key(&mut o, "confidence_signals");
        canonical_object(&confidence_signals, &[], &mut o);
        o.push(',');
        key(&mut o, "data");
        canonical_object(&data, &[], &mut o);
        o.push(',');
        key(&mut o, "event_id");
        push_json_str(&mut o, &event_id);
        o.push(',');
        key(&mut o, "evidence_hash");
        push_json_str(&mut o, &eh);
        o.push(',');
        key(&mut o, "fallback_used");
        o.push_str(if fallback_used { "true" } else { "false" });
        o.push(',');
        key(&mut o, "final_status");
        push_json_str(&mut o, &final_status);
        o.push(',');
        key(&mut o, "guard_flags");
        o.push('[');
        for (i, f) in guard_flags.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_json_str(&mut o, f);
        }
        o.push(']');
        o.push(',');
        key(&mut o, "ingested_at");
        let cut_ingested = o.len();
        o.push(',');
        key(&mut o, "input_summary");
        opt_str(&mut o, &input_summary);
        o.push(',');
        key(&mut o, "metadata");
        canonical_object(&metadata, &[], &mut o);
        o.push(',');
        key(&mut o, "model");
        opt_str(&mut o, &model);
        o.push(',');
        key(&mut o, "operator_action");
        opt_str(&mut o, &operator_action);
        o.push(',');
        key(&mut o, "output_summary");
        opt_str(&mut o, &output_summary);
        o.push(',');
        key(&mut o, "project_id");
        opt_str(&mut o, &project_id);
        o.push(',');
        key(&mut o, "provider");
        opt_str(&mut o, &provider);
        o.push(',');
        let cut_record_hash = o.len();
        key(&mut o, "record_origin");
        push_json_str(&mut o, &record_origin);
        o.push(',');
        key(&mut o, "recorded_at");
        push_json_str(&mut o, &recorded_at);
        o.push(',');
        key(&mut o, "request_id");
        opt_str(&mut o, &request_id);
        o.push(',');
        key(&mut o, "route_path");
        opt_str(&mut o, &route_path);
        o.push(',');
        key(&mut o, "schema_version");
        push_json_str(&mut o, &schema_version);
        o.push(',');
        key(&mut o, "seq");
        let cut_seq = o.len();
        o.push(',');
        key(&mut o, "session_id");
        opt_str(&mut o, &session_id);
        o.push(',');
        key(&mut o, "type");
        push_json_str(&mut o, &kind);
        o.push(',');
        key(&mut o, "user_ref");
        opt_str(&mut o, &user_ref);
        o.push(',');
        key(&mut o, "workspace");
        push_json_str(&mut o, &workspace);
        o.push('}');
        // The indexed values are moved in, now that the canonical form is written.
        let mut indexed = Vec::with_capacity(INDEXED.len());
        let mut fields = [
            ("request_id", request_id),
            ("session_id", session_id),
            ("project_id", project_id),
            ("application_id", application_id),
            ("route_path", route_path),
            ("record_origin", Some(record_origin)),
            ("final_status", Some(final_status)),
            ("type", Some(kind)),
        ];
        for (name, byte) in INDEXED {
            if let Some(v) = fields
                .iter_mut()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.take())
            {
                indexed.push((byte, v));
            }
        }
        Prepared {
            workspace,
            event_id,
            fresh_id,
            evidence_hash: eh,
            canon: o,
            cut_chain,
            cut_ingested,
            cut_record_hash,
            cut_seq,
            indexed,
            recorded_micros,
        }
    }

    /// Assign `seq` and `ingested_at` (a JSON string literal), compute `record_hash` and
    /// the chain link after `prev_chain`, and append the stored record (length-prefixed
    /// frame, as `db` segments hold them) to `out`. Returns the new chain hash.
    pub fn link_into(
        &self,
        seq: u64,
        ingested_at_json: &str,
        prev_chain: &str,
        out: &mut Vec<u8>,
    ) -> String {
        let seq_s = seq.to_string();
        let c = &self.canon;
        let mut h = Sha256::new();
        h.update(&c.as_bytes()[..self.cut_ingested]);
        h.update(ingested_at_json.as_bytes());
        h.update(&c.as_bytes()[self.cut_ingested..self.cut_seq]);
        h.update(seq_s.as_bytes());
        h.update(&c.as_bytes()[self.cut_seq..]);
        let rh = tagged_hex(&h.finalize());
        let chain = chain_link(prev_chain, &self.evidence_hash, &rh);
        const CHAIN_KEY: &str = "\"chain_hash\":\"";
        const RH_KEY: &str = "\"record_hash\":\"";
        let len = c.len()
            + ingested_at_json.len()
            + seq_s.len()
            + CHAIN_KEY.len()
            + chain.len()
            + 2
            + RH_KEY.len()
            + rh.len()
            + 2;
        out.reserve(len + 4);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        let b = c.as_bytes();
        out.extend_from_slice(&b[..self.cut_chain]);
        out.extend_from_slice(CHAIN_KEY.as_bytes());
        out.extend_from_slice(chain.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&b[self.cut_chain..self.cut_ingested]);
        out.extend_from_slice(ingested_at_json.as_bytes());
        out.extend_from_slice(&b[self.cut_ingested..self.cut_record_hash]);
        out.extend_from_slice(RH_KEY.as_bytes());
        out.extend_from_slice(rh.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&b[self.cut_record_hash..self.cut_seq]);
        out.extend_from_slice(seq_s.as_bytes());
        out.extend_from_slice(&b[self.cut_seq..]);
        chain
    }
}

/// `ingested_at` as the JSON string literal the writer splices in.
pub fn ingested_at_json(t: Timestamp) -> String {
    let mut s = String::with_capacity(40);
    push_json_str(&mut s, &t.to_rfc3339());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::build_record;
    use crate::store::evidence::{canonical_json, record_hash, GENESIS};
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 _.-]{0,20}",
            "\\PC{0,30}",
            proptest::collection::vec(any::<char>(), 0..12).prop_map(|v| v.into_iter().collect()),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1_000_000i32..1_000_000).prop_map(|x| Value::from(f64::from(x) / 8.0)),
            any_text().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((any_text(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn any_map() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::vec((any_text(), any_value()), 0..4)
            .prop_map(|kv| kv.into_iter().collect())
    }

    fn any_event() -> impl Strategy<Value = Event> {
        (
            (
                any_text(),
                any_text(),
                proptest::option::of(any_text()),
                any_text(),
                proptest::option::of(any_text()),
                proptest::option::of(any_text()),
                proptest::option::of(any_text()),
                any::<bool>(),
            ),
            (
                proptest::collection::vec(any_text(), 0..3),
                any_map(),
                any_map(),
                any_map(),
                proptest::option::of(any_text()),
                any_text(),
                prop_oneof![
                    Just("2026-04-08T18:02:43.25Z".to_string()),
                    Just("2026-04-08T20:02:43+02:00".to_string()),
                    any_text()
                ],
            ),
        )
            .prop_map(
                |((kind, ws, rid, id, sess, sum, model, fb), (flags, cs, md, data, op, fs, at))| {
                    let mut e = Event::new(&kind, ws, "r");
                    e.request_id = rid;
                    e.evidence.event_id = id;
                    e.evidence.session_id = sess.clone();
                    e.evidence.project_id = sess;
                    e.evidence.input_summary = sum.clone();
                    e.evidence.output_summary = sum;
                    e.evidence.model = model.clone();
                    e.evidence.route_path = model;
                    e.evidence.fallback_used = fb;
                    e.evidence.guard_flags = flags;
                    e.evidence.confidence_signals = cs;
                    e.evidence.metadata = md;
                    e.data = data;
                    e.evidence.operator_action = op;
                    e.evidence.final_status = fs;
                    e.evidence.recorded_at = at;
                    e
                },
            )
    }

    proptest! {
        #[test]
        fn json_strings_escape_like_serde(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn prepared_matches_value_form(ev in any_event(), seq in 1u64..u64::MAX / 2) {
            let at = Timestamp::parse("2026-12-02T13:00:00.5Z").unwrap();
            let (value, eh, chain) = build_record(ev.clone(), seq, GENESIS, &at.to_rfc3339());
            let p = Prepared::new(ev);
            prop_assert_eq!(&p.evidence_hash, &eh);
            let mut framed = Vec::new();
            let linked = p.link_into(seq, &ingested_at_json(at), GENESIS, &mut framed);
            prop_assert_eq!(&linked, &chain);
            let len = u32::from_be_bytes(framed[..4].try_into().unwrap()) as usize;
            prop_assert_eq!(len, framed.len() - 4);
            // Byte for byte the canonical JSON of the `Value` form (hashes included), so
            // the stored record is canonical itself.
            let mut canon = String::new();
            canonical_json(&value, &mut canon);
            prop_assert_eq!(std::str::from_utf8(&framed[4..]).unwrap(), canon.as_str());
            let stored: Value = serde_json::from_slice(&framed[4..]).unwrap();
            prop_assert_eq!(record_hash(&stored), record_hash(&value));
        }
    }
}
