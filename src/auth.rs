//! Keys: SHA-256 hashing, constant-time comparison, and extracting a presented key from headers.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::VirtualKey;

/// SHA-256 of a key; the only form in which Parapet keeps keys.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

impl KeyHash {
    /// Hash a presented key.
    pub fn of(key: &[u8]) -> KeyHash {
        KeyHash(Sha256::digest(key).into())
    }

    /// Parse `sha256:<hex>` or bare 64-digit hex.
    pub fn parse(s: &str) -> Option<KeyHash> {
        let hex = s.trim().strip_prefix("sha256:").unwrap_or(s.trim());
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let hi = hex_val(chunk[0])?;
            let lo = hex_val(chunk[1])?;
            out[i] = (hi << 4) | lo;
        }
        Some(KeyHash(out))
    }

    /// `sha256:<hex>` form written in config files.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The key a client presented: `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let b = v.as_bytes();
        if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"bearer ") {
            let k = b[7..].trim_ascii();
            if !k.is_empty() {
                return Some(k);
            }
        }
    }
    headers
        .get("x-api-key")
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|k| !k.is_empty())
}

/// Find the virtual key matching `presented`. Every configured key is compared (in constant
/// time each) so the time taken does not reveal which key, if any, matched.
pub fn find_key<'a>(keys: &'a [VirtualKey], presented: &[u8]) -> Option<&'a VirtualKey> {
    let h = KeyHash::of(presented);
    let mut found = None;
    for k in keys {
        if k.hash.ct_eq(&h) && found.is_none() {
            found = Some(k);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_and_compares() {
        let h = KeyHash::of(b"pk-test-123");
        let parsed = KeyHash::parse(&h.to_hex()).unwrap();
        assert!(parsed.ct_eq(&h));
        assert!(!KeyHash::of(b"pk-test-124").ct_eq(&h));
        let bare = h.to_hex().trim_start_matches("sha256:").to_uppercase();
        assert!(KeyHash::parse(&bare).unwrap().ct_eq(&h));
    }

    #[test]
    fn parse_rejects_bad_hex() {
        assert!(KeyHash::parse("sha256:abc").is_none());
        assert!(KeyHash::parse(&"g".repeat(64)).is_none());
    }

    #[test]
    fn presented_key_sources() {
        let mut h = HeaderMap::new();
        assert!(presented_key(&h).is_none());
        h.insert("x-api-key", "  k1 ".parse().unwrap());
        assert_eq!(presented_key(&h), Some(&b"k1"[..]));
        h.insert("authorization", "Bearer k2".parse().unwrap());
        assert_eq!(presented_key(&h), Some(&b"k2"[..]));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), Some(&b"k1"[..]));
    }

    #[test]
    fn find_key_matches_only_the_right_key() {
        let keys = vec![
            VirtualKey {
                id: "a".into(),
                hash: KeyHash::of(b"ka"),
                routes: None,
                workspace: "default".into(),
                scopes: Vec::new(),
            },
            VirtualKey {
                id: "b".into(),
                hash: KeyHash::of(b"kb"),
                routes: None,
                workspace: "default".into(),
                scopes: Vec::new(),
            },
        ];
        assert_eq!(find_key(&keys, b"kb").map(|k| k.id.as_str()), Some("b"));
        assert!(find_key(&keys, b"kc").is_none());
    }
}
