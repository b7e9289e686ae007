//! The sled layout: records under time-ordered (per-workspace sequence) keys, secondary
//! indexes, idempotency map, chain heads and retention checkpoints, all in one sled tree so
//! one `apply_batch` is atomic; plus query, verify and retention over it.
//!
//! Keys (`ws` = workspace id, `seq` = 8-byte big-endian per-workspace sequence, assigned in
//! write order, so key order = ingestion time order):
//! - `e\0{ws}\0{seq}` → the record (JSON)
//! - `x\0{ws}\0{field}{len:u32}{value}{seq}` → empty (secondary index; `field` one byte)
//! - `t\0{ws}\0{recorded_at µs, sign-flipped BE}{seq}` → empty (time index)
//! - `d\0{ws}\0{event_id}` → seq (idempotency / event_id lookup)
//! - `h\0{ws}` → chain head `{"seq", "chain_hash"}`
//! - `c\0{ws}` → retention checkpoint `{"first_seq", "prev_chain_hash", "cut_at", "deleted"}`
//!
//! Outside sled, `chain-anchor.json` in the same directory holds every workspace's head as of
//! the last flushed batch (written after the flush, replaced atomically). sled drops a log
//! segment whose checksum fails when it recovers, which would silently shorten the chain;
//! `verify` compares the chain with this anchor, so a truncated or emptied store is reported.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::event::{Event, Evidence};
use super::evidence::{chain_link, evidence_hash, record_hash, Timestamp, GENESIS};

/// Indexed filter fields (seed-003 filters plus `request_id` and `type`), with their key byte.
pub const INDEXED: [(&str, u8); 8] = [
    ("request_id", 1),
    ("session_id", 2),
    ("project_id", 3),
    ("application_id", 4),
    ("route_path", 5),
    ("record_origin", 6),
    ("final_status", 7),
    ("type", 8),
];

/// Store failure (I/O or corruption); never carries event content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store: {0}")]
    Sled(#[from] sled::Error),
    #[error("event store: {0}")]
    Other(String),
}

/// A chain head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub chain_hash: String,
}

/// Where retention cut a workspace's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub first_seq: u64,
    pub prev_chain_hash: String,
    pub cut_at: String,
    pub deleted: u64,
}

/// Result of writing one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    New {
        seq: u64,
        event_id: String,
        evidence_hash: String,
    },
    /// `event_id` was already stored in the workspace; nothing new was written.
    Duplicate { seq: u64, event_id: String },
}

fn ws_key(tag: u8, ws: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ws.len() + 12);
    k.push(tag);
    k.push(0);
    k.extend_from_slice(ws.as_bytes());
    k.push(0);
    k
}

fn record_key(ws: &str, seq: u64) -> Vec<u8> {
    let mut k = ws_key(b'e', ws);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn index_prefix(ws: &str, field: u8, value: &str) -> Vec<u8> {
    let mut k = ws_key(b'x', ws);
    k.push(field);
    k.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    k.extend_from_slice(value.as_bytes());
    k
}

fn time_bytes(micros: i64) -> [u8; 8] {
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

fn dedup_key(ws: &str, event_id: &str) -> Vec<u8> {
    let mut k = ws_key(b'd', ws);
    k.extend_from_slice(event_id.as_bytes());
    k
}

fn head_key(ws: &str) -> Vec<u8> {
    let mut k = vec![b'h', 0];
    k.extend_from_slice(ws.as_bytes());
    k
}

fn checkpoint_key(ws: &str) -> Vec<u8> {
    let mut k = vec![b'c', 0];
    k.extend_from_slice(ws.as_bytes());
    k
}

fn seq_of(b: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = b.get(b.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Every index key of a stored record.
fn index_keys(ws: &str, record: &Value, seq: u64) -> Vec<Vec<u8>> {
    let mut keys = Vec::with_capacity(INDEXED.len() + 1);
    for (name, byte) in INDEXED {
        if let Some(v) = record.get(name).and_then(Value::as_str) {
            let mut k = index_prefix(ws, byte, v);
            k.extend_from_slice(&seq.to_be_bytes());
            keys.push(k);
        }
    }
    if let Some(t) = record
        .get("recorded_at")
        .and_then(Value::as_str)
        .and_then(Timestamp::parse)
    {
        let mut k = ws_key(b't', ws);
        k.extend_from_slice(&time_bytes(t.micros()));
        k.extend_from_slice(&seq.to_be_bytes());
        keys.push(k);
    }
    keys
}

/// The stored JSON record of an event at `seq`, with its hashes.
pub fn build_record(
    ev: Event,
    seq: u64,
    prev_chain: &str,
    ingested_at: &str,
) -> (Value, String, String) {
    let eh = evidence_hash(&ev.evidence);
    let mut m = Map::new();
    m.insert("seq".into(), seq.into());
    m.insert("workspace".into(), ev.workspace.into());
    m.insert("type".into(), ev.kind.into());
    m.insert("request_id".into(), ev.request_id.into());
    m.insert("ingested_at".into(), ingested_at.into());
    if let Ok(Value::Object(evm)) = serde_json::to_value(ev.evidence) {
        m.extend(evm);
    }
    m.insert("data".into(), Value::Object(ev.data));
    m.insert("evidence_hash".into(), eh.clone().into());
    let mut v = Value::Object(m);
    let rh = record_hash(&v);
    let chain = chain_link(prev_chain, &eh, &rh);
    if let Value::Object(m) = &mut v {
        m.insert("record_hash".into(), rh.into());
        m.insert("chain_hash".into(), chain.clone().into());
    }
    (v, eh, chain)
}

/// Query filters (seed 003 + `request_id`, `type`) and paging.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Exact-match filters: (field name, value); names from [`INDEXED`] or `event_id`.
    pub eq: Vec<(String, String)>,
    pub recorded_from: Option<i64>,
    pub recorded_to: Option<i64>,
    pub limit: usize,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Oldest first (exports); default newest first.
    pub ascending: bool,
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// Candidates scanned per page before returning a partial page with a cursor.
pub const SCAN_BUDGET: usize = 50_000;

/// A query with an equality filter and a time window is driven by the time index when the
/// window holds at most this many entries (counted, so the choice costs at most this many
/// key reads).
pub const TIME_PROBE: usize = 2_048;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Per-workspace verification result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceReport {
    pub workspace: String,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub head: Option<Head>,
    pub checkpoint: Option<Checkpoint>,
    pub broken: Option<Broken>,
}

/// The first broken link.
#[derive(Debug, Clone, Serialize)]
pub struct Broken {
    pub seq: u64,
    pub event_id: Option<String>,
    pub reason: String,
}

/// The sled-backed store (cheap to clone).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    anchor: std::path::PathBuf,
}

/// File name of the chain anchor inside the store directory.
pub const ANCHOR_FILE: &str = "chain-anchor.json";

impl Store {
    /// Open (or create) the store in `dir`.
    ///
    /// sled's background flusher keeps the directory lock for a moment after the last
    /// handle of a previous open is dropped (a quick restart, `parapet verify` right after a
    /// store closed): a lock held elsewhere is retried for up to two seconds before failing.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("could not acquire lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(sled::Error::Io(e).into());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Store {
            db,
            anchor: dir.join(ANCHOR_FILE),
        })
    }

    /// Record the heads of the workspaces in `heads` in the anchor file (call after a flush).
    pub fn write_anchor(&self, heads: &HashMap<String, Head>) -> Result<(), StoreError> {
        let mut all = self.read_anchor().unwrap_or_default();
        for (ws, h) in heads {
            all.insert(ws.clone(), h.clone());
        }
        let tmp = self.anchor.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&all).map_err(|e| StoreError::Other(e.to_string()))?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.anchor))
            .map_err(|e| StoreError::Other(format!("cannot write {}: {e}", self.anchor.display())))
    }

    /// The anchor file's heads (`None` if there is no anchor yet).
    pub fn read_anchor(&self) -> Option<std::collections::BTreeMap<String, Head>> {
        let b = std::fs::read(&self.anchor).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Flush everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The chain head of a workspace.
    pub fn head(&self, ws: &str) -> Result<Option<Head>, StoreError> {
        Ok(match self.db.get(head_key(ws))? {
            Some(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| StoreError::Other(format!("bad head: {e}")))?,
            ),
            None => None,
        })
    }

    /// The retention checkpoint of a workspace.
    pub fn checkpoint(&self, ws: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(match self.db.get(checkpoint_key(ws))? {
            Some(b) => serde_json::from_slice(&b).ok(),
            None => None,
        })
    }

    /// The record of `event_id` in `ws`.
    pub fn get(&self, ws: &str, event_id: &str) -> Result<Option<Value>, StoreError> {
        let Some(seq) = self
            .db
            .get(dedup_key(ws, event_id))?
            .and_then(|b| seq_of(&b))
        else {
            return Ok(None);
        };
        self.record(ws, seq)
    }

    fn record(&self, ws: &str, seq: u64) -> Result<Option<Value>, StoreError> {
        Ok(self
            .db
            .get(record_key(ws, seq))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Write events atomically (one sled batch, not yet flushed). `heads` caches chain heads
    /// and is updated only when the batch was applied.
    pub fn write(
        &self,
        heads: &mut HashMap<String, Head>,
        events: Vec<Event>,
    ) -> Result<Vec<Written>, StoreError> {
        let mut staged: HashMap<String, Head> = HashMap::new();
        let mut seen: HashMap<(String, String), u64> = HashMap::new();
        let mut batch = sled::Batch::default();
        let mut out = Vec::with_capacity(events.len());
        let now = Timestamp::now().to_rfc3339();
        for ev in events {
            let ws = &ev.workspace.clone();
            let id = &ev.evidence.event_id.clone();
            let fresh = ev.fresh_id;
            if !fresh {
                if let Some(seq) = seen.get(&(ws.clone(), id.clone())) {
                    out.push(Written::Duplicate {
                        seq: *seq,
                        event_id: id.clone(),
                    });
                    continue;
                }
                if let Some(seq) = self.db.get(dedup_key(ws, id))?.and_then(|b| seq_of(&b)) {
                    out.push(Written::Duplicate {
                        seq,
                        event_id: id.clone(),
                    });
                    continue;
                }
            }
            if !staged.contains_key(ws) {
                let h = match heads.get(ws) {
                    Some(h) => h.clone(),
                    None => match self.head(ws)? {
                        Some(h) => h,
                        None => Head {
                            seq: 0,
                            chain_hash: GENESIS.into(),
                        },
                    },
                };
                staged.insert(ws.clone(), h);
            }
            let Some(head) = staged.get_mut(ws) else {
                continue;
            };
            let seq = head.seq + 1;
            let (record, eh, chain) = build_record(ev, seq, &head.chain_hash, &now);
            let bytes =
                serde_json::to_vec(&record).map_err(|e| StoreError::Other(e.to_string()))?;
            for k in index_keys(ws, &record, seq) {
                batch.insert(k, &[][..]);
            }
            batch.insert(dedup_key(ws, id), &seq.to_be_bytes()[..]);
            batch.insert(record_key(ws, seq), bytes);
            head.seq = seq;
            head.chain_hash = chain;
            if !fresh {
                seen.insert((ws.clone(), id.clone()), seq);
            }
            out.push(Written::New {
                seq,
                event_id: id.clone(),
                evidence_hash: eh,
            });
        }
        for (ws, h) in &staged {
            let b = serde_json::to_vec(h).map_err(|e| StoreError::Other(e.to_string()))?;
            batch.insert(head_key(ws), b);
        }
        self.db.apply_batch(batch)?;
        heads.extend(staged);
        Ok(out)
    }

    /// One page of records of `ws` matching `q`.
    pub fn query(&self, ws: &str, q: &Query) -> Result<Page, StoreError> {
        let limit = q.limit.max(1);
        let matches = |r: &Value| -> bool {
            for (k, v) in &q.eq {
                if r.get(k.as_str()).and_then(Value::as_str) != Some(v.as_str()) {
                    return false;
                }
            }
            if q.recorded_from.is_some() || q.recorded_to.is_some() {
                let Some(t) = r
                    .get("recorded_at")
                    .and_then(Value::as_str)
                    .and_then(Timestamp::parse)
                else {
                    return false;
                };
                let m = t.micros();
                if q.recorded_from.is_some_and(|f| m < f) || q.recorded_to.is_some_and(|to| m > to)
                {
                    return false;
                }
            }
            true
        };
        // event_id: one lookup.
        if let Some((_, id)) = q.eq.iter().find(|(k, _)| k == "event_id") {
            let events: Vec<Value> = self
                .get(ws, id)?
                .into_iter()
                .filter(|r| matches(r))
                .collect();
            return Ok(Page {
                events,
                next_cursor: None,
            });
        }
        let cursor = match &q.cursor {
            Some(c) => Some(unhex(c).ok_or_else(|| StoreError::Other("bad cursor".into()))?),
            None => None,
        };
        // Driver: the first indexed equality filter, else the time index, else records.
        // With both an equality filter and a time window, a window holding at most
        // `TIME_PROBE` entries drives instead (the equality filter alone can mean scanning a
        // large part of the workspace, loading every record to read its `recorded_at`).
        let driver = INDEXED.iter().find_map(|(name, byte)| {
            q.eq.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| index_prefix(ws, *byte, v))
        });
        let windowed = q.recorded_from.is_some() || q.recorded_to.is_some();
        let time_lo = q
            .recorded_from
            .map(|f| time_bytes(f).to_vec())
            .unwrap_or_default();
        let mut time_hi = q
            .recorded_to
            .map(|t| time_bytes(t).to_vec())
            .unwrap_or(vec![0xff; 8]);
        time_hi.extend_from_slice(&[0xff; 9]);
        let time_prefix = ws_key(b't', ws);
        let by_time = windowed
            && match (&driver, &cursor) {
                (None, _) => true,
                // A page after the first continues with the driver of the first: a time
                // cursor is time + seq (16 bytes), an index cursor is a seq (8 bytes).
                (Some(_), Some(c)) => c.len() == 16,
                (Some(_), None) => {
                    let with = |s: &[u8]| [&time_prefix[..], s].concat();
                    self.db
                        .range(with(&time_lo)..=with(&time_hi))
                        .take(TIME_PROBE + 1)
                        .count()
                        <= TIME_PROBE
                }
            };
        // Equality filters checked on the index (no record load) when the time index drives.
        let index_checks: Vec<Vec<u8>> = if by_time {
            INDEXED
                .iter()
                .flat_map(|(name, byte)| {
                    q.eq.iter()
                        .filter(move |(k, _)| k == name)
                        .map(move |(_, v)| index_prefix(ws, *byte, v))
                })
                .collect()
        } else {
            Vec::new()
        };
        let (prefix, by_record, lo, hi) = match driver {
            _ if by_time => (time_prefix, false, time_lo, time_hi),
            Some(p) => (p, false, Vec::new(), vec![0xff; 9]),
            None => (ws_key(b'e', ws), true, Vec::new(), vec![0xff; 9]),
        };
        let with = |suffix: &[u8]| {
            let mut k = prefix.clone();
            k.extend_from_slice(suffix);
            k
        };
        let (mut start, mut end) = (with(&lo), with(&hi));
        let mut exclude: Option<Vec<u8>> = None;
        if let Some(c) = &cursor {
            let k = with(c);
            if q.ascending {
                start = k.clone();
            } else {
                end = k.clone();
            }
            exclude = Some(k);
        }
        let iter = self.db.range(start..=end);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if q.ascending
        {
            Box::new(iter)
        } else {
            Box::new(iter.rev())
        };
        let mut events = Vec::new();
        let mut scanned = 0usize;
        let mut last: Option<Vec<u8>> = None;
        for item in iter {
            let (k, v) = item?;
            if exclude.as_deref() == Some(&k[..]) {
                continue;
            }
            scanned += 1;
            last = Some(k[prefix.len()..].to_vec());
            let Some(seq) = seq_of(&k) else { continue };
            let mut indexed = true;
            for p in &index_checks {
                let mut ik = p.clone();
                ik.extend_from_slice(&seq.to_be_bytes());
                if !self.db.contains_key(ik)? {
                    indexed = false;
                    break;
                }
            }
            let record = if !indexed {
                None
            } else if by_record {
                serde_json::from_slice(&v).ok()
            } else {
                self.record(ws, seq)?
            };
            if let Some(r) = record.filter(|r| matches(r)) {
                events.push(r);
                if events.len() >= limit {
                    break;
                }
            }
            if scanned >= SCAN_BUDGET {
                break;
            }
        }
        let more = events.len() >= limit || scanned >= SCAN_BUDGET;
        Ok(Page {
            events,
            next_cursor: if more { last.map(|l| hex(&l)) } else { None },
        })
    }

    /// Workspaces present in the store (records or heads).
    pub fn workspaces(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        for item in self.db.scan_prefix([b'h', 0]) {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(&k[2..]).into_owned());
        }
        let mut pos = vec![b'e', 0];
        loop {
            let Some((k, _)) = self.db.range(pos.clone()..).next().transpose()? else {
                break;
            };
            if !k.starts_with(&[b'e', 0]) {
                break;
            }
            let rest = &k[2..];
            let Some(end) = rest.iter().position(|b| *b == 0) else {
                break;
            };
            let ws = String::from_utf8_lossy(&rest[..end]).into_owned();
            pos = ws_key(b'e', &ws);
            pos.extend_from_slice(&[0xff; 9]);
            if !out.contains(&ws) {
                out.push(ws);
            }
        }
        for ws in self.read_anchor().unwrap_or_default().into_keys() {
            if !out.contains(&ws) {
                out.push(ws);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Recompute a workspace's chain from its checkpoint (or genesis) to its head; report
    /// the first broken link: an edited record (hash mismatch), a deleted or reordered one
    /// (sequence gap or a record at the wrong key), or a truncated tail (head mismatch).
    pub fn verify(&self, ws: &str) -> Result<WorkspaceReport, StoreError> {
        let head = self.head(ws).ok().flatten();
        let checkpoint = self.checkpoint(ws)?;
        let (mut expected, mut prev) = match &checkpoint {
            Some(c) => (c.first_seq, c.prev_chain_hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        let mut report = WorkspaceReport {
            workspace: ws.into(),
            records: 0,
            first_seq: None,
            head: head.clone(),
            checkpoint: checkpoint.clone(),
            broken: None,
        };
        let brk = |seq: u64, id: Option<String>, reason: String| {
            Some(Broken {
                seq,
                event_id: id,
                reason,
            })
        };
        for item in self.db.scan_prefix(ws_key(b'e', ws)) {
            let (k, v) = item?;
            let key_seq = seq_of(&k).unwrap_or(0);
            report.records += 1;
            report.first_seq.get_or_insert(key_seq);
            let record: Value = match serde_json::from_slice(&v) {
                Ok(r) => r,
                Err(e) => {
                    report.broken = brk(key_seq, None, format!("record is not valid JSON: {e}"));
                    return Ok(report);
                }
            };
            let id = record
                .get("event_id")
                .and_then(Value::as_str)
                .map(String::from);
            if key_seq != expected {
                let reason = if key_seq > expected {
                    format!("record(s) missing: expected seq {expected}, found {key_seq}")
                } else {
                    format!("unexpected seq {key_seq}, expected {expected}")
                };
                report.broken = brk(expected, id, reason);
                return Ok(report);
            }
            if record.get("seq").and_then(Value::as_u64) != Some(key_seq)
                || record.get("workspace").and_then(Value::as_str) != Some(ws)
            {
                report.broken = brk(
                    key_seq,
                    id,
                    "record moved: its seq/workspace does not match its position".into(),
                );
                return Ok(report);
            }
            let stored = |name: &str| {
                record
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let evidence: Evidence = match serde_json::from_value(record.clone()) {
                Ok(e) => e,
                Err(e) => {
                    report.broken = brk(key_seq, id, format!("evidence fields unreadable: {e}"));
                    return Ok(report);
                }
            };
            let eh = evidence_hash(&evidence);
            if eh != stored("evidence_hash") {
                report.broken = brk(
                    key_seq,
                    id,
                    "evidence_hash does not match the record's canonical fields".into(),
                );
                return Ok(report);
            }
            let rh = record_hash(&record);
            if rh != stored("record_hash") {
                report.broken = brk(key_seq, id, "record_hash does not match the record".into());
                return Ok(report);
            }
            let chain = chain_link(&prev, &eh, &rh);
            if chain != stored("chain_hash") {
                report.broken = brk(
                    key_seq,
                    id,
                    "chain_hash does not follow from the previous link".into(),
                );
                return Ok(report);
            }
            prev = chain;
            expected += 1;
        }
        let last = expected - 1;
        match &head {
            Some(h) if h.seq == last && h.chain_hash == prev => {}
            Some(h) if h.seq == last => {
                report.broken = brk(
                    last,
                    None,
                    "head chain_hash differs from the last record".into(),
                );
            }
            Some(h) => {
                report.broken = brk(
                    last + 1,
                    None,
                    format!(
                        "records {}..={} missing (head is at seq {})",
                        last + 1,
                        h.seq,
                        h.seq
                    ),
                );
            }
            None if report.records > 0 => {
                report.broken = brk(last, None, "chain head missing".into());
            }
            None => {}
        }
        if report.broken.is_none() {
            if let Some(a) = self.read_anchor().and_then(|mut m| m.remove(ws)) {
                let below_checkpoint = checkpoint.as_ref().is_some_and(|c| a.seq < c.first_seq);
                if a.seq > last {
                    report.broken = brk(
                        last + 1,
                        None,
                        format!(
                            "records {}..={} missing (the anchor file saw seq {})",
                            last + 1,
                            a.seq,
                            a.seq
                        ),
                    );
                } else if !below_checkpoint {
                    let at = self.record(ws, a.seq)?;
                    let chain = at
                        .as_ref()
                        .and_then(|r| r.get("chain_hash"))
                        .and_then(Value::as_str);
                    if chain != Some(a.chain_hash.as_str()) {
                        report.broken = brk(
                            a.seq,
                            None,
                            "chain differs from the anchor file at its seq".into(),
                        );
                    }
                }
            }
        }
        Ok(report)
    }

    /// Delete records of `ws` ingested before `cutoff_micros` (oldest first, at most `max`),
    /// and move the checkpoint past them so the remaining chain still verifies.
    pub fn retain(&self, ws: &str, cutoff_micros: i64, max: usize) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let mut cut: Option<(u64, String)> = None;
        let mut n = 0u64;
        for item in self.db.scan_prefix(ws_key(b'e', ws)) {
            let (k, v) = item?;
            let Some(seq) = seq_of(&k) else { break };
            let Ok(record) = serde_json::from_slice::<Value>(&v) else {
                break;
            };
            let old = record
                .get("ingested_at")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse)
                .is_some_and(|t| t.micros() < cutoff_micros);
            if !old || n as usize >= max {
                break;
            }
            for ik in index_keys(ws, &record, seq) {
                batch.remove(ik);
            }
            if let Some(id) = record.get("event_id").and_then(Value::as_str) {
                batch.remove(dedup_key(ws, id));
            }
            batch.remove(k.to_vec());
            let chain = record
                .get("chain_hash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            cut = Some((seq, chain));
            n += 1;
        }
        if let Some((seq, chain)) = cut {
            let deleted = self.checkpoint(ws)?.map_or(0, |c| c.deleted) + n;
            let c = Checkpoint {
                first_seq: seq + 1,
                prev_chain_hash: chain,
                cut_at: Timestamp::now().to_rfc3339(),
                deleted,
            };
            let b = serde_json::to_vec(&c).map_err(|e| StoreError::Other(e.to_string()))?;
            batch.insert(checkpoint_key(ws), b);
            self.db.apply_batch(batch)?;
        }
        Ok(n)
    }

    /// Raw access for tamper tests and tools: the record key of `seq`.
    pub fn raw_record_key(ws: &str, seq: u64) -> Vec<u8> {
        record_key(ws, seq)
    }

    /// The sled handle (tests and tools).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

#[cfg(test)]
mod window_driver_tests {
    //! The driver choice for an equality filter plus a time window (`TIME_PROBE`).

    use super::*;

    fn event(i: usize) -> Event {
        let mut e = Event::new(crate::store::event::kind::AI_RESPONSE, "w", "r")
            .event_id(format!("e{i}"))
            .route(if i % 2 == 0 { "a" } else { "b" });
        e.evidence.recorded_at = Timestamp {
            secs: 1_790_812_800 + i as i64,
            nanos: 0,
        }
        .to_rfc3339();
        e
    }

    fn all_pages(s: &Store, from: usize, to: usize) -> (Vec<String>, usize) {
        let mut q = Query {
            eq: vec![("route_path".into(), "a".into())],
            recorded_from: Some((1_790_812_800 + from as i64) * 1_000_000),
            recorded_to: Some((1_790_812_800 + to as i64) * 1_000_000),
            limit: 20,
            ..Query::default()
        };
        let mut ids = Vec::new();
        let mut cursor_len = 0;
        loop {
            let p = s.query("w", &q).unwrap();
            for r in &p.events {
                assert_eq!(r["route_path"], "a");
                ids.push(r["event_id"].as_str().unwrap().to_string());
            }
            match p.next_cursor {
                Some(c) => {
                    cursor_len = c.len();
                    q.cursor = Some(c);
                }
                None => return (ids, cursor_len),
            }
        }
    }

    #[test]
    fn small_window_drives_by_time_and_pages_completely() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 8 << 20).unwrap();
        let n = TIME_PROBE + 200;
        let events: Vec<Event> = (0..n).map(event).collect();
        s.write(&mut HashMap::new(), events.clone()).unwrap();
        // 100 seconds = 101 events, 51 on route a: time-driven (16-byte cursor = 32 hex).
        let (ids, cursor_len) = all_pages(&s, 100, 200);
        let want: Vec<String> = (100..=200)
            .rev()
            .filter(|i| i % 2 == 0)
            .map(|i| format!("e{i}"))
            .collect();
        assert_eq!(
            ids, want,
            "newest recorded_at first, every page, no duplicate"
        );
        assert_eq!(cursor_len, 32);
        // The whole range (> TIME_PROBE entries): driven by the route index (8-byte cursor).
        let (ids, cursor_len) = all_pages(&s, 0, n);
        assert_eq!(ids.len(), n / 2);
        assert_eq!(cursor_len, 16);
    }
}
