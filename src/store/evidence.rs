//! Seed-003 evidence integrity: RFC 3339 timestamps, the normalized canonical string and
//! `evidence_hash`, the full-record hash, and the per-workspace chain link.
//!
//! Canonical serialization (documented in `docs/EVIDENCE.md`; never change it without
//! bumping `schema_version`): the 15 canonical fields in [`CANONICAL_FIELDS`] order as
//! `name=value` lines joined by `\n` (no trailing newline), UTF-8. Values: strings trimmed
//! (Unicode White_Space), missing/null = empty; `\` `\n` `\r` escaped as `\\` `\n` `\r`;
//! `recorded_at` as UTC `YYYY-MM-DDTHH:MM:SS[.fraction without trailing zeros]Z`; booleans
//! `true`/`false`; `guard_flags` trimmed, empty items dropped, sorted by code point, `,` in
//! an item escaped as `\,`, joined by `,`, and `none` when empty.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::event::Evidence;

/// The seed-003 canonical fields, in hashing order.
pub const CANONICAL_FIELDS: [&str; 15] = [
    "schema_version",
    "project_id",
    "application_id",
    "event_id",
    "session_id",
    "recorded_at",
    "user_ref",
    "input_summary",
    "output_summary",
    "provider",
    "model",
    "route_path",
    "fallback_used",
    "guard_flags",
    "final_status",
];

/// Chain hash before a workspace's first record.
pub const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// `sha256:<lowercase hex>` of bytes.
pub fn sha256_tagged(bytes: &[u8]) -> String {
    tagged_hex(&Sha256::digest(bytes))
}

/// `sha256:` followed by the lowercase hex of a digest.
pub fn tagged_hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(7 + 2 * digest.len());
    s.push_str("sha256:");
    for b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// Append `s` with the canonical-string escapes (`\\` `\n` `\r`, and `,` when `comma`).
/// Runs without an escape are copied whole (every escaped character is ASCII, so a cut
/// before or after one is a char boundary).
fn escape_into(out: &mut String, s: &str, comma: bool) {
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let esc = match b {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b',' if comma => "\\,",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// The normalized canonical string that `evidence_hash` is the SHA-256 of.
pub fn canonical_string(ev: &Evidence) -> String {
    let mut out = String::with_capacity(512);
    let opt = |out: &mut String, v: &Option<String>| {
        if let Some(v) = v {
            escape_into(out, v.trim(), false);
        }
    };
    let field = |out: &mut String, i: usize| {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(CANONICAL_FIELDS[i]);
        out.push('=');
    };
    field(&mut out, 0);
    escape_into(&mut out, ev.schema_version.trim(), false);
    field(&mut out, 1);
    opt(&mut out, &ev.project_id);
    field(&mut out, 2);
    opt(&mut out, &ev.application_id);
    field(&mut out, 3);
    escape_into(&mut out, ev.event_id.trim(), false);
    field(&mut out, 4);
    opt(&mut out, &ev.session_id);
    field(&mut out, 5);
    match Timestamp::parse(ev.recorded_at.trim()) {
        Some(t) => out.push_str(&t.to_rfc3339()),
        None => escape_into(&mut out, ev.recorded_at.trim(), false),
    }
    field(&mut out, 6);
    opt(&mut out, &ev.user_ref);
    field(&mut out, 7);
    opt(&mut out, &ev.input_summary);
    field(&mut out, 8);
    opt(&mut out, &ev.output_summary);
    field(&mut out, 9);
    opt(&mut out, &ev.provider);
    field(&mut out, 10);
    opt(&mut out, &ev.model);
    field(&mut out, 11);
    opt(&mut out, &ev.route_path);
    field(&mut out, 12);
    out.push_str(if ev.fallback_used { "true" } else { "false" });
    field(&mut out, 13);
    let mut flags: Vec<&str> = ev
        .guard_flags
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .collect();
    if flags.is_empty() {
        out.push_str("none");
    } else {
        flags.sort_unstable();
        for (i, f) in flags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            escape_into(&mut out, f, true);
        }
    }
    field(&mut out, 14);
    escape_into(&mut out, ev.final_status.trim(), false);
    out
}

/// Seed-003 `evidence_hash`: `sha256:<hex>` of [`canonical_string`].
pub fn evidence_hash(ev: &Evidence) -> String {
    sha256_tagged(canonical_string(ev).as_bytes())
}

/// Canonical JSON: object keys sorted by code point, no whitespace, strings escaped as
/// serde_json does (same as Python `json.dumps(v, sort_keys=True, separators=(",", ":"),
/// ensure_ascii=False)` for strings, integers and ordinary decimals).
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => canonical_object(m, &[], out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        Value::String(s) => push_json_str(out, s),
        other => out.push_str(&other.to_string()),
    }
}

/// A canonical JSON object without the keys in `skip`.
pub fn canonical_object(m: &serde_json::Map<String, Value>, skip: &[&str], out: &mut String) {
    let mut keys: Vec<&String> = m.keys().filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort_unstable();
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, k);
        out.push(':');
        if let Some(x) = m.get(*k) {
            canonical_json(x, out);
        }
    }
    out.push('}');
}

/// A JSON string literal, escaped exactly as serde_json does (`"` `\\` and control
/// characters; `\b \f \n \r \t` short forms, else `\u00xx` lowercase; nothing else).
/// Length of the longest prefix of `b` with nothing to escape in a JSON string (no `"`,
/// `\\` or control byte), eight bytes per step.
fn clean_prefix(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero exactly when its high bit is set in `zero(x)` (the borrow can
    // only mark bytes above a true zero byte, and the first such byte is the one found).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        // Bytes below 0x20: (x & 0xE0…) has a zero byte there.
        let hit = zero(x & 0xE0E0_E0E0_E0E0_E0E0)
            | zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

pub fn push_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let clean = clean_prefix(bytes);
    if clean == bytes.len() {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // `b` is ASCII, so `i` and `i + 1` are char boundaries.
        out.push_str(&s[start..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Names of the record fields that are not covered by `record_hash` (they are derived).
pub const UNHASHED: [&str; 2] = ["record_hash", "chain_hash"];

/// `record_hash`: SHA-256 of the canonical JSON of the whole stored record without
/// `record_hash` and `chain_hash` (so metadata, payload and sequence are covered too).
pub fn record_hash(record: &Value) -> String {
    let mut out = String::with_capacity(1024);
    match record {
        Value::Object(m) => canonical_object(m, &UNHASHED, &mut out),
        other => canonical_json(other, &mut out),
    }
    sha256_tagged(out.as_bytes())
}

/// One chain link: `sha256(prev_chain_hash || evidence_hash || record_hash)` over the three
/// `sha256:<hex>` strings (ASCII, no separator).
pub fn chain_link(prev: &str, evidence_hash: &str, record_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(evidence_hash.as_bytes());
    h.update(record_hash.as_bytes());
    tagged_hex(&h.finalize())
}

/// A point in time (Unix seconds + nanoseconds, UTC), parsed from / printed as RFC 3339.
/// Hand-written (a few lines of civil-date arithmetic) instead of a date crate: the store
/// only needs RFC 3339 in and UTC out, and this keeps the dependency tree and build small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

impl Timestamp {
    /// The current time, at microsecond precision (what most languages' date types hold, so
    /// an auditor's script can parse it).
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_micros() * 1000,
        }
    }

    /// Microseconds since the Unix epoch (index keys, range filters).
    /// The instant `micros` microseconds after the Unix epoch.
    pub fn from_micros(micros: i64) -> Timestamp {
        Timestamp {
            secs: micros.div_euclid(1_000_000),
            nanos: u32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
        }
    }

    pub fn micros(&self) -> i64 {
        self.secs
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(self.nanos / 1000))
    }

    /// Parse RFC 3339 (`2026-04-08T18:02:43Z`, `...43.5+02:00`; `T`/`t`/space, `Z`/`z`).
    pub fn parse(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(r)?;
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(part).ok()?.parse().ok()
        };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let (y, mo, d) = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mdays = [
            31,
            if is_leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&mo) || d < 1 || d > mdays[(mo - 1) as usize] {
            return None;
        }
        if h > 23 || mi > 59 || se > 59 {
            return None;
        }
        let mut i = 19;
        let mut nanos: u32 = 0;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + u32::from(b[i] - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return None;
            }
            for _ in n..9 {
                nanos *= 10;
            }
        }
        let offset: i64 = match b.get(i..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let _ = (h1, h2, m1, m2);
                if oh > 23 || om > 59 {
                    return None;
                }
                let o = i64::from(oh * 3600 + om * 60);
                if *sign == b'-' {
                    -o
                } else {
                    o
                }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + se) - offset;
        Some(Timestamp { secs, nanos })
    }

    /// Canonical UTC form: `YYYY-MM-DDTHH:MM:SS[.fraction, trailing zeros trimmed]Z`.
    pub fn to_rfc3339(&self) -> String {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut s = String::with_capacity(30);
        // Digits written directly (this runs for every stored event); years outside
        // 0..=9999 keep `format!`'s sign and width.
        if (0..=9999).contains(&y) {
            push_digits(&mut s, y as u64, 4);
        } else {
            s.push_str(&format!("{y:04}"));
        }
        for (sep, v) in [('-', m as u64), ('-', d as u64)] {
            s.push(sep);
            push_digits(&mut s, v, 2);
        }
        for (sep, v) in [('T', rem / 3600), (':', (rem / 60) % 60), (':', rem % 60)] {
            s.push(sep);
            push_digits(&mut s, v as u64, 2);
        }
        if self.nanos > 0 {
            let mut n = self.nanos;
            let mut width = 9;
            while n % 10 == 0 {
                n /= 10;
                width -= 1;
            }
            s.push('.');
            push_digits(&mut s, u64::from(n), width);
        }
        s.push('Z');
        s
    }
}

/// `v` in decimal, zero-padded to `width` digits.
fn push_digits(s: &mut String, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = v;
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    for &b in &buf[start..] {
        s.push(char::from(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digit writer agrees with `format!` (the reference it replaced) everywhere.
    #[test]
    fn rfc3339_digits_agree_with_format() {
        let reference = |t: &Timestamp| {
            let days = t.secs.div_euclid(86_400);
            let rem = t.secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            let mut s = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                rem / 3600,
                (rem / 60) % 60,
                rem % 60
            );
            if t.nanos > 0 {
                s.push('.');
                s.push_str(format!("{:09}", t.nanos).trim_end_matches('0'));
            }
            s.push('Z');
            s
        };
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 600_000_000_000) as i64 - 300_000_000_000 + i as i64 % 3;
            let nanos = match i % 4 {
                0 => 0,
                1 => (x >> 20) as u32 % 1_000_000_000,
                2 => ((x >> 20) as u32 % 1_000_000) * 1000,
                _ => 100_000_000,
            };
            let t = Timestamp { secs, nanos };
            assert_eq!(t.to_rfc3339(), reference(&t), "{secs} {nanos}");
        }
    }

    #[test]
    fn timestamps_parse_and_normalize() {
        let t = Timestamp::parse("2026-04-08T18:02:43+00:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-04-08T18:02:43Z");
        let t = Timestamp::parse("2026-04-08T20:02:43.250+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-04-08T18:02:43.25Z");
        let t = Timestamp::parse("2024-02-29t00:00:00.000000001z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-02-29T00:00:00.000000001Z");
        assert_eq!(Timestamp::parse("1970-01-01T00:00:00Z").unwrap().secs, 0);
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-04-08",
            "2026-04-08T25:00:00Z",
            "2026-04-08T18:02:43",
            "2026-04-08T18:02:43.Z",
            "x026-04-08T18:02:43Z",
            "2026-04-08T18:02:43+0200",
        ] {
            assert!(Timestamp::parse(bad).is_none(), "{bad}");
        }
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse(&now.to_rfc3339()), Some(now));
    }

    #[test]
    fn canonical_string_normalizes() {
        let mut ev = Evidence::new("evt_1".into(), "2026-04-08T17:58:11+00:00".into());
        ev.project_id = Some("  p1 ".into());
        ev.guard_flags = vec!["b".into(), " ".into(), "a,x".into()];
        ev.input_summary = Some("line1\nline2\\".into());
        let s = canonical_string(&ev);
        assert!(
            s.starts_with("schema_version=v1\nproject_id=p1\napplication_id=\nevent_id=evt_1\n")
        );
        assert!(s.contains("\nrecorded_at=2026-04-08T17:58:11Z\n"));
        assert!(s.contains("\ninput_summary=line1\\nline2\\\\\n"));
        assert!(s.contains("\nfallback_used=false\nguard_flags=a\\,x,b\nfinal_status=answered"));
        ev.guard_flags.clear();
        assert!(canonical_string(&ev).contains("\nguard_flags=none\n"));
        assert!(evidence_hash(&ev).starts_with("sha256:"));
        assert_eq!(evidence_hash(&ev).len(), 71);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v: Value = serde_json::json!({"b": 1, "a": {"d": [true, null, "é\n"], "c": 0.5}});
        let mut s = String::new();
        canonical_json(&v, &mut s);
        assert_eq!(s, r#"{"a":{"c":0.5,"d":[true,null,"é\n"]},"b":1}"#);
    }
}
