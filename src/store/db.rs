//! The sled layout (store format 2): records packed in segments, per-batch index posting
//! lists, a bucketed time index, the idempotency map, chain heads and retention checkpoints,
//! all in one sled tree so one `apply_batch` is atomic; plus query, verify and retention over
//! it.
//!
//! A writer batch costs a handful of sled inserts plus one per event (its `event_id` key),
//! not one per record and per index entry: sled's per-insert CPU cost is what limits the
//! writer. Keys (`ws` = workspace id, `seq` = 8-byte big-endian per-workspace sequence,
//! assigned in write order, so key order = ingestion order):
//! - `v\0format` → `2` (the store format; a store of another format is refused at open)
//! - `r\0{ws}\0{first_seq}` → a segment: up to [`SEGMENT_RECORDS`] consecutive records of one
//!   workspace written in the same batch, each as `{len:u32 BE}{record JSON}`, stored
//!   LZ4-compressed when smaller (`seal_segment` / `open_segment`); the record
//!   of seq `first_seq + i` is the i-th. A lookup by seq is a reverse range scan for the
//!   last segment key ≤ seq, then a walk over the length prefixes.
//! - `i\0{ws}\0{field}{len:u32}{value}{last_seq}` → a posting list: the seqs of one batch's
//!   records having `value` in the indexed `field` (one byte, [`INDEXED`]), ascending,
//!   LEB128 deltas; `last_seq` is the list's largest seq, so lists of one value are in seq
//!   order and never overlap (one batch = one seq range per workspace).
//! - `t\0{ws}\0{second of recorded_at, sign-flipped BE}{last_seq}` → posting list of the
//!   batch's records recorded in that second (time index; range filters are exact
//!   afterwards).
//! - `d\0{ws}\0{event_id}` → seq (idempotency / event_id lookup; one key per event)
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
use serde_json::Value;

use super::event::{Event, Evidence};
use super::evidence::{chain_link, evidence_hash, record_hash, Timestamp, GENESIS};
use super::record::{ingested_at_json, Prepared};

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

/// Records per segment at most (fewer when [`SEGMENT_BYTES`] is reached first).
pub const SEGMENT_RECORDS: usize = 32;

/// A segment is closed once it holds this many bytes.
pub const SEGMENT_BYTES: usize = 32 * 1024;

/// sled's log segment size. sled writes any page larger than a quarter of it to a file of
/// its own (a "blob": a file created, written and later deleted), and a leaf holding up to 17
/// segments of [`SEGMENT_BYTES`] is over the default's quarter (128 KiB): with the default,
/// most leaf rewrites became blob files, and file creation dominated the writer's CPU.
const LOG_SEGMENT_BYTES: usize = 8 * 1024 * 1024;

/// The log segment size recorded in an existing sled directory's `conf` file
/// (`segment_size: N`); `None` for a new store or an unreadable file (sled reports it).
fn recorded_segment_size(dir: &Path) -> Option<usize> {
    // The file ends with a binary checksum: read bytes, not a UTF-8 string.
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The store format this version reads and writes.
const FORMAT: &[u8] = b"2";
const FORMAT_KEY: &[u8] = b"v\0format";

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

fn with_seq(mut k: Vec<u8>, seq: u64) -> Vec<u8> {
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn segment_key(ws: &str, first_seq: u64) -> Vec<u8> {
    with_seq(ws_key(b'r', ws), first_seq)
}

fn index_prefix(ws: &str, field: u8, value: &str) -> Vec<u8> {
    let mut k = ws_key(b'i', ws);
    k.push(field);
    k.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    k.extend_from_slice(value.as_bytes());
    k
}

/// The time-index bucket (second) of a time in µs, as key bytes (sign-flipped, so byte order
/// is time order).
fn bucket_bytes(micros: i64) -> [u8; 8] {
    ((micros.div_euclid(1_000_000) as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_prefix(ws: &str, micros: i64) -> Vec<u8> {
    let mut k = ws_key(b't', ws);
    k.extend_from_slice(&bucket_bytes(micros));
    k
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

/// Append one record to a segment value.
fn push_frame(seg: &mut Vec<u8>, record: &[u8]) {
    seg.extend_from_slice(
        &u32::try_from(record.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    seg.extend_from_slice(record);
}

/// First byte of a compressed segment value: `{SEALED}{raw len:u32 LE}{LZ4 block}`. A raw
/// segment starts with its first record's length prefix (big-endian u32), whose first byte
/// is 0 for any record under 16 MiB, so both kinds are told apart by the first byte and
/// stores written before compression read unchanged.
const SEALED: u8 = 0xC1;

/// Largest record framing a compressed segment may claim to inflate to (a damaged length
/// must not make a reader allocate gigabytes): a segment closes at [`SEGMENT_BYTES`], so only
/// a single huge record reaches this.
const MAX_SEGMENT_RAW: usize = 1 << 30;

/// The value stored for a segment's record framing: LZ4-compressed behind [`SEALED`] when
/// that is smaller (records of one workspace share most of their keys and values), else the
/// framing itself.
pub(super) fn seal_segment(framing: Vec<u8>) -> Vec<u8> {
    let Ok(len) = u32::try_from(framing.len()) else {
        return framing;
    };
    let mut out = Vec::with_capacity(5 + lz4_flex::block::get_maximum_output_size(framing.len()));
    out.push(SEALED);
    out.extend_from_slice(&len.to_le_bytes());
    out.resize(
        5 + lz4_flex::block::get_maximum_output_size(framing.len()),
        0,
    );
    match lz4_flex::block::compress_into(&framing, &mut out[5..]) {
        Ok(n) if 5 + n < framing.len() => {
            out.truncate(5 + n);
            out
        }
        _ => framing,
    }
}

/// A stored segment value's record framing (inflated when sealed); `None` when a sealed
/// value does not inflate to the length it claims (damage).
pub(super) fn open_segment(v: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let Some((&SEALED, rest)) = v.split_first() else {
        return Some(std::borrow::Cow::Borrowed(v));
    };
    let len: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_le_bytes(len)).ok()?;
    let block = rest.get(4..)?;
    // LZ4 cannot expand a block by more than 255× (one byte of a match run per 255 bytes).
    if len > MAX_SEGMENT_RAW || len > block.len().saturating_mul(255).saturating_add(16) {
        return None;
    }
    let mut out = vec![0u8; len];
    match lz4_flex::block::decompress_into(block, &mut out) {
        Ok(n) if n == len => Some(std::borrow::Cow::Owned(out)),
        _ => None,
    }
}

/// The byte ranges of a segment's records; `None` when the framing is broken.
fn frames(seg: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < seg.len() {
        let len: [u8; 4] = seg.get(at..at + 4)?.try_into().ok()?;
        let start = at + 4;
        let end = start.checked_add(usize::try_from(u32::from_be_bytes(len)).ok()?)?;
        if end > seg.len() {
            return None;
        }
        out.push(start..end);
        at = end;
    }
    Some(out)
}

/// The `i`-th record of a segment (walks the length prefixes, parses nothing).
fn frame_at(seg: &[u8], i: u64) -> Option<&[u8]> {
    let mut at = 0usize;
    let mut n = 0u64;
    loop {
        let len: [u8; 4] = seg.get(at..at + 4)?.try_into().ok()?;
        let start = at + 4;
        let end = start.checked_add(usize::try_from(u32::from_be_bytes(len)).ok()?)?;
        if n == i {
            return seg.get(start..end);
        }
        at = end;
        n += 1;
    }
}

/// A posting list: ascending seqs as LEB128 deltas (the first from 0).
fn encode_postings(seqs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() * 2 + 8);
    let mut prev = 0u64;
    for &s in seqs {
        let mut d = s.wrapping_sub(prev);
        prev = s;
        loop {
            let b = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    out
}

/// Decode a posting list; `None` when it is malformed.
fn decode_postings(b: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(b.len());
    let mut prev = 0u64;
    let mut d = 0u64;
    let mut shift = 0u32;
    for &x in b {
        if shift > 63 {
            return None;
        }
        d |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            prev = prev.checked_add(d)?;
            out.push(prev);
            d = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    (shift == 0).then_some(out)
}

/// The index posting prefixes (without `last_seq`) a stored record belongs to: one per
/// present indexed field, plus its time bucket.
fn posting_prefixes(ws: &str, record: &Value) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(INDEXED.len() + 1);
    for (name, byte) in INDEXED {
        if let Some(v) = record.get(name).and_then(Value::as_str) {
            out.push(index_prefix(ws, byte, v));
        }
    }
    if let Some(t) = record
        .get("recorded_at")
        .and_then(Value::as_str)
        .and_then(Timestamp::parse)
    {
        out.push(time_prefix(ws, t.micros()));
    }
    out
}

/// The stored JSON record of an event at `seq`, with its hashes, built as a
/// `serde_json::Value`: the reference form `record::Prepared` is tested against (the writer
/// does not use it).
#[cfg(test)]
pub fn build_record(
    ev: Event,
    seq: u64,
    prev_chain: &str,
    ingested_at: &str,
) -> (Value, String, String) {
    let eh = evidence_hash(&ev.evidence);
    let mut m = serde_json::Map::new();
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

/// Most events in a time window for it to drive a query that also has an equality filter.
pub const TIME_PROBE: usize = 2_048;

/// Candidates scanned per page before returning a partial page with a cursor.
pub const SCAN_BUDGET: usize = 50_000;

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
    segment_records: usize,
    segment_bytes: usize,
}

/// File name of the chain anchor inside the store directory.
pub const ANCHOR_FILE: &str = "chain-anchor.json";

/// The segment most recently read by a query (consecutive candidates mostly share one).
#[derive(Default)]
struct SegmentCache {
    first: u64,
    /// The segment's record framing (inflated).
    value: Option<Vec<u8>>,
    frames: Vec<std::ops::Range<usize>>,
}

/// One page being collected: events, candidates scanned, the position of the last one.
struct Collect<'a> {
    limit: usize,
    matches: &'a dyn Fn(&Value) -> bool,
    events: Vec<Value>,
    scanned: usize,
    last: Option<Vec<u8>>,
}

impl Collect<'_> {
    /// Take one candidate at `pos`; `true` when the page is full or the budget spent.
    fn take(&mut self, pos: Vec<u8>, record: Option<Value>) -> bool {
        self.scanned += 1;
        self.last = Some(pos);
        if let Some(r) = record.filter(|r| (self.matches)(r)) {
            self.events.push(r);
            if self.events.len() >= self.limit {
                return true;
            }
        }
        self.scanned >= SCAN_BUDGET
    }

    fn page(self) -> Page {
        let more = self.events.len() >= self.limit || self.scanned >= SCAN_BUDGET;
        Page {
            events: self.events,
            next_cursor: if more {
                self.last.map(|l| hex(&l))
            } else {
                None
            },
        }
    }
}

/// Records of one workspace staged for a batch: closed segments and the open one.
struct Segments {
    first: u64,
    count: usize,
    buf: Vec<u8>,
}

impl Store {
    /// Open (or create) the store in `dir`.
    ///
    /// sled's background flusher keeps the directory lock for a moment after the last
    /// handle of a previous open is dropped (a quick restart, `parapet verify` right after a
    /// store closed): a lock held elsewhere is retried for up to two seconds before failing.
    /// A store of another format (the format-1 layout had one key per record) is refused.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        // sled refuses to reopen a store with another segment size than it was created with:
        // a store created by an earlier version keeps the size its `conf` file records.
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .segment_size(recorded_segment_size(dir).unwrap_or(LOG_SEGMENT_BYTES));
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
        match db.get(FORMAT_KEY)? {
            Some(v) if v == FORMAT => {}
            Some(v) => {
                return Err(StoreError::Other(format!(
                    "{}: unsupported store format {:?} (this version reads format 2)",
                    dir.display(),
                    String::from_utf8_lossy(&v)
                )))
            }
            None => {
                if db.scan_prefix([b'e', 0]).next().is_some() {
                    return Err(StoreError::Other(format!(
                        "{}: this store has the format-1 layout (one key per record) of an \
                         earlier pre-release; this version reads format 2 only: export it \
                         with the earlier version and start from an empty data directory",
                        dir.display()
                    )));
                }
                db.insert(FORMAT_KEY, FORMAT)?;
            }
        }
        Ok(Store {
            db,
            anchor: dir.join(ANCHOR_FILE),
            segment_records: SEGMENT_RECORDS,
            segment_bytes: SEGMENT_BYTES,
        })
    }

    /// The same store packing at most `records` records per segment, closing a segment once
    /// it holds `bytes` (measurements, tests).
    #[doc(hidden)]
    pub fn with_segment_limits(mut self, records: usize, bytes: usize) -> Store {
        self.segment_records = records.max(1);
        self.segment_bytes = bytes;
        self
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

    /// The segment holding `seq` (if any): its first seq and value.
    fn segment_of(&self, ws: &str, seq: u64) -> Result<Option<(u64, sled::IVec)>, StoreError> {
        let Some(item) = self
            .db
            .range(segment_key(ws, 0)..=segment_key(ws, seq))
            .next_back()
        else {
            return Ok(None);
        };
        let (k, v) = item?;
        let first = seq_of(&k).filter(|f| k.len() == ws.len() + 11 && *f <= seq);
        Ok(first.map(|first| (first, v)))
    }

    fn record(&self, ws: &str, seq: u64) -> Result<Option<Value>, StoreError> {
        Ok(self
            .raw_record(ws, seq)?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// A record by seq through a one-segment cache.
    fn cached_record(
        &self,
        cache: &mut SegmentCache,
        ws: &str,
        seq: u64,
    ) -> Result<Option<Value>, StoreError> {
        let hit = cache.value.is_some()
            && seq >= cache.first
            && seq - cache.first < cache.frames.len() as u64;
        if !hit {
            let Some((first, v)) = self.segment_of(ws, seq)? else {
                return Ok(None);
            };
            let body = open_segment(&v).map(std::borrow::Cow::into_owned);
            cache.frames = body.as_deref().and_then(frames).unwrap_or_default();
            cache.first = first;
            cache.value = Some(body.unwrap_or_default());
        }
        let (Some(v), Some(r)) = (
            cache.value.as_ref(),
            usize::try_from(seq.saturating_sub(cache.first))
                .ok()
                .and_then(|i| cache.frames.get(i)),
        ) else {
            return Ok(None);
        };
        Ok(v.get(r.clone())
            .and_then(|b| serde_json::from_slice(b).ok()))
    }

    /// Write events atomically (one sled batch, not yet flushed). `heads` caches chain heads
    /// and is updated only when the batch was applied.
    ///
    /// Sled inserts: one `event_id` key per new event, one segment per
    /// [`SEGMENT_RECORDS`] records of a workspace, one posting list per (workspace, indexed
    /// field, value) and per (workspace, second of `recorded_at`) present in the batch, one
    /// head per workspace.
    pub fn write(
        &self,
        heads: &mut HashMap<String, Head>,
        events: Vec<Event>,
    ) -> Result<Vec<Written>, StoreError> {
        self.write_prepared(heads, events.into_iter().map(Prepared::new).collect())
    }

    /// [`Store::write`] of records already prepared by the producers (the writer thread's
    /// path: only `seq`, `ingested_at`, `record_hash` and the chain link are done here).
    pub fn write_prepared(
        &self,
        heads: &mut HashMap<String, Head>,
        events: Vec<Prepared>,
    ) -> Result<Vec<Written>, StoreError> {
        let mut staged: HashMap<String, Head> = HashMap::new();
        let mut seen: HashMap<(String, String), u64> = HashMap::new();
        let mut segments: HashMap<String, Segments> = HashMap::new();
        let mut postings: HashMap<Vec<u8>, Vec<u64>> = HashMap::new();
        let mut batch = sled::Batch::default();
        let mut out = Vec::with_capacity(events.len());
        let now = ingested_at_json(Timestamp::now());
        for ev in events {
            let ws = &ev.workspace;
            let id = &ev.event_id;
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
            for (field, value) in &ev.indexed {
                postings
                    .entry(index_prefix(ws, *field, value))
                    .or_default()
                    .push(seq);
            }
            if let Some(t) = ev.recorded_micros {
                postings.entry(time_prefix(ws, t)).or_default().push(seq);
            }
            batch.insert(dedup_key(ws, id), &seq.to_be_bytes()[..]);
            let seg = match segments.get_mut(ws) {
                Some(seg) => seg,
                None => segments.entry(ws.clone()).or_insert(Segments {
                    first: seq,
                    count: 0,
                    buf: Vec::with_capacity(self.segment_bytes + 4096),
                }),
            };
            if seg.count >= self.segment_records || seg.buf.len() >= self.segment_bytes {
                let full =
                    std::mem::replace(&mut seg.buf, Vec::with_capacity(self.segment_bytes + 4096));
                batch.insert(segment_key(ws, seg.first), seal_segment(full));
                seg.first = seq;
                seg.count = 0;
            }
            let chain = ev.link_into(seq, &now, &head.chain_hash, &mut seg.buf);
            seg.count += 1;
            head.seq = seq;
            head.chain_hash = chain;
            if !fresh {
                seen.insert((ws.clone(), id.clone()), seq);
            }
            out.push(Written::New {
                seq,
                event_id: ev.event_id,
                evidence_hash: ev.evidence_hash,
            });
        }
        for (ws, seg) in segments {
            if seg.count > 0 {
                batch.insert(segment_key(&ws, seg.first), seal_segment(seg.buf));
            }
        }
        for (prefix, seqs) in postings {
            let Some(&last) = seqs.last() else { continue };
            batch.insert(with_seq(prefix, last), encode_postings(&seqs));
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
    ///
    /// Driver: the first indexed equality filter (in [`INDEXED`] order) walks its posting
    /// lists in seq order; else a time range walks the time buckets (bucket order, seq order
    /// inside a bucket); else the segments in seq order. Every candidate is then checked
    /// against all filters. The cursor is the position of the last candidate scanned.
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
        let driver = INDEXED.iter().find_map(|(name, byte)| {
            q.eq.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| index_prefix(ws, *byte, v))
        });
        let timed = q.recorded_from.is_some() || q.recorded_to.is_some();
        let time_key = ws_key(b't', ws);
        let time_lo = time_prefix(ws, q.recorded_from.unwrap_or(i64::MIN));
        let time_hi = with_seq(time_prefix(ws, q.recorded_to.unwrap_or(i64::MAX)), u64::MAX);
        // With an equality filter and a time window, a window holding at most `TIME_PROBE`
        // events drives instead of the index (the index alone can mean loading a large part
        // of the workspace to read `recorded_at`). A later page keeps the first page's
        // driver: a time cursor is bucket + seq (16 bytes), an index cursor a seq (8).
        let by_time = timed
            && match (&driver, &q.cursor) {
                (None, _) => true,
                (Some(_), Some(c)) => c.len() == 32,
                (Some(_), None) => {
                    self.count_postings(time_lo.clone()..=time_hi.clone(), TIME_PROBE)?
                        <= TIME_PROBE
                }
            };
        let driver = if by_time { None } else { driver };
        // Position bytes of a candidate: (time bucket) + seq.
        let pos_len = if by_time { 16 } else { 8 };
        let cursor = match &q.cursor {
            Some(c) => Some(
                unhex(c)
                    .filter(|b| b.len() == pos_len)
                    .ok_or_else(|| StoreError::Other("bad cursor".into()))?,
            ),
            None => None,
        };
        let mut page = Collect {
            limit,
            matches: &matches,
            events: Vec::new(),
            scanned: 0,
            last: None,
        };
        match driver {
            Some(prefix) => {
                let (lo, hi) = (prefix.clone(), with_seq(prefix.clone(), u64::MAX));
                self.walk_postings(ws, &prefix, 0, lo, hi, cursor, q.ascending, &mut page)?;
            }
            None if timed => {
                self.walk_postings(
                    ws,
                    &time_key,
                    8,
                    time_lo,
                    time_hi,
                    cursor,
                    q.ascending,
                    &mut page,
                )?;
            }
            None => {
                let cursor = cursor.as_deref().and_then(seq_of);
                self.walk_segments(ws, cursor, q.ascending, &mut page)?;
            }
        }
        Ok(page.page())
    }

    /// Seqs in the posting lists with keys in `range`, counted up to just above `cap`.
    fn count_postings(
        &self,
        range: std::ops::RangeInclusive<Vec<u8>>,
        cap: usize,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.db.range(range) {
            let (_, v) = item?;
            n += decode_postings(&v).map_or(0, |s| s.len());
            if n > cap {
                break;
            }
        }
        Ok(n)
    }

    /// Walk posting lists with keys in `lo..=hi` (`prefix` + `group_len` group bytes +
    /// `last_seq`), candidates strictly after (ascending) / before the cursor position.
    #[allow(clippy::too_many_arguments)]
    fn walk_postings(
        &self,
        ws: &str,
        prefix: &[u8],
        group_len: usize,
        lo: Vec<u8>,
        hi: Vec<u8>,
        cursor: Option<Vec<u8>>,
        ascending: bool,
        page: &mut Collect<'_>,
    ) -> Result<(), StoreError> {
        let mut cache = SegmentCache::default();
        let (mut lo, mut hi) = (lo, hi);
        if let Some(c) = &cursor {
            let at = [prefix, c.as_slice()].concat();
            if ascending {
                // The list holding the cursor's seq has a last_seq ≥ it.
                lo = lo.max(at);
            } else if at <= hi {
                // Lists before the cursor, and the one straddling it.
                if let Some(item) = self.db.range(at..=hi.clone()).next() {
                    hi = item?.0.to_vec();
                }
            }
        }
        if lo > hi {
            return Ok(());
        }
        let iter = self.db.range(lo..=hi);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if ascending {
            Box::new(iter)
        } else {
            Box::new(iter.rev())
        };
        for item in iter {
            let (k, v) = item?;
            let Some(group) = k.get(prefix.len()..prefix.len() + group_len) else {
                continue;
            };
            let Some(mut seqs) = decode_postings(&v) else {
                continue;
            };
            if !ascending {
                seqs.reverse();
            }
            for seq in seqs {
                let pos = [group, &seq.to_be_bytes()[..]].concat();
                if let Some(c) = &cursor {
                    if (ascending && pos <= *c) || (!ascending && pos >= *c) {
                        continue;
                    }
                }
                let record = self.cached_record(&mut cache, ws, seq)?;
                if page.take(pos, record) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Walk the segments of `ws` in seq order (or reverse), after / before seq `cursor`.
    fn walk_segments(
        &self,
        ws: &str,
        cursor: Option<u64>,
        ascending: bool,
        page: &mut Collect<'_>,
    ) -> Result<(), StoreError> {
        let lo_all = segment_key(ws, 0);
        let hi_all = segment_key(ws, u64::MAX);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match (ascending, cursor) {
                (true, None) => Box::new(self.db.range(lo_all..=hi_all)),
                (true, Some(c)) => {
                    let next = c.saturating_add(1);
                    let start = match self.segment_of(ws, next)? {
                        Some((first, _)) => first,
                        None => next,
                    };
                    Box::new(self.db.range(segment_key(ws, start)..=hi_all))
                }
                (false, None) => Box::new(self.db.range(lo_all..=hi_all).rev()),
                (false, Some(c)) => Box::new(self.db.range(lo_all..segment_key(ws, c)).rev()),
            };
        for item in iter {
            let (k, v) = item?;
            let Some(first) = seq_of(&k) else { continue };
            let Some(v) = open_segment(&v) else { continue };
            let Some(fr) = frames(&v) else { continue };
            let mut at: Vec<(u64, std::ops::Range<usize>)> = fr
                .into_iter()
                .enumerate()
                .map(|(i, r)| (first.saturating_add(i as u64), r))
                .collect();
            if !ascending {
                at.reverse();
            }
            for (seq, r) in at {
                if let Some(c) = cursor {
                    if (ascending && seq <= c) || (!ascending && seq >= c) {
                        continue;
                    }
                }
                let record = v.get(r).and_then(|b| serde_json::from_slice(b).ok());
                if page.take(seq.to_be_bytes().to_vec(), record) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Workspaces present in the store (records or heads).
    pub fn workspaces(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        for item in self.db.scan_prefix([b'h', 0]) {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(&k[2..]).into_owned());
        }
        let mut pos = vec![b'r', 0];
        loop {
            let Some((k, _)) = self.db.range(pos.clone()..).next().transpose()? else {
                break;
            };
            if !k.starts_with(&[b'r', 0]) {
                break;
            }
            let rest = &k[2..];
            let Some(end) = rest.iter().position(|b| *b == 0) else {
                break;
            };
            let ws = String::from_utf8_lossy(&rest[..end]).into_owned();
            pos = ws_key(b'r', &ws);
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
    /// (sequence gap, a record at the wrong position, an unreadable segment), or a
    /// truncated tail (head or anchor mismatch).
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
        for item in self.db.scan_prefix(ws_key(b'r', ws)) {
            let (k, v) = item?;
            let first = seq_of(&k).unwrap_or(0);
            let opened = open_segment(&v).and_then(|b| {
                let fr = frames(&b)?;
                Some((b, fr))
            });
            let Some((v, fr)) = opened else {
                report.broken = brk(
                    first.max(expected),
                    None,
                    format!("segment at seq {first} is unreadable (damaged compression or record framing)"),
                );
                return Ok(report);
            };
            for (i, r) in fr.into_iter().enumerate() {
                let key_seq = first.saturating_add(i as u64);
                report.records += 1;
                report.first_seq.get_or_insert(key_seq);
                let record: Value = match v.get(r).map(serde_json::from_slice) {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => {
                        report.broken =
                            brk(key_seq, None, format!("record is not valid JSON: {e}"));
                        return Ok(report);
                    }
                    None => {
                        report.broken = brk(key_seq, None, "record unreadable".into());
                        return Ok(report);
                    }
                };
                if let Err(b) = self.check_link(ws, key_seq, expected, &record, &mut prev) {
                    report.broken = Some(b);
                    return Ok(report);
                }
                expected += 1;
            }
        }
        let last = expected.saturating_sub(1);
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

    /// Check one record at position `key_seq` against the chain (`expected` seq, `prev`
    /// link); advances `prev`.
    fn check_link(
        &self,
        ws: &str,
        key_seq: u64,
        expected: u64,
        record: &Value,
        prev: &mut String,
    ) -> Result<(), Broken> {
        let id = record
            .get("event_id")
            .and_then(Value::as_str)
            .map(String::from);
        let brk = |seq: u64, reason: String| Broken {
            seq,
            event_id: id.clone(),
            reason,
        };
        if key_seq != expected {
            return Err(if key_seq > expected {
                brk(
                    expected,
                    format!("record(s) missing: expected seq {expected}, found {key_seq}"),
                )
            } else {
                brk(
                    expected,
                    format!("unexpected seq {key_seq}, expected {expected}"),
                )
            });
        }
        let own_seq = record.get("seq").and_then(Value::as_u64);
        if record.get("workspace").and_then(Value::as_str) != Some(ws) {
            return Err(brk(
                key_seq,
                "record moved: its workspace does not match its position".into(),
            ));
        }
        match own_seq {
            Some(s) if s == key_seq => {}
            Some(s) if s > key_seq => {
                return Err(brk(
                    key_seq,
                    format!("record(s) missing or reordered: expected seq {key_seq}, found {s}"),
                ))
            }
            _ => {
                return Err(brk(
                    key_seq,
                    "record moved: its seq does not match its position".into(),
                ))
            }
        }
        let stored = |name: &str| {
            record
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let evidence: Evidence = serde_json::from_value(record.clone())
            .map_err(|e| brk(key_seq, format!("evidence fields unreadable: {e}")))?;
        let eh = evidence_hash(&evidence);
        if eh != stored("evidence_hash") {
            return Err(brk(
                key_seq,
                "evidence_hash does not match the record's canonical fields".into(),
            ));
        }
        let rh = record_hash(record);
        if rh != stored("record_hash") {
            return Err(brk(key_seq, "record_hash does not match the record".into()));
        }
        let chain = chain_link(prev, &eh, &rh);
        if chain != stored("chain_hash") {
            return Err(brk(
                key_seq,
                "chain_hash does not follow from the previous link".into(),
            ));
        }
        *prev = chain;
        Ok(())
    }

    /// Delete records of `ws` ingested before `cutoff_micros` (oldest first, at most `max`),
    /// and move the checkpoint past them so the remaining chain still verifies. Whole
    /// segments and posting lists below the cut are deleted; the ones straddling it are
    /// rewritten without the deleted seqs.
    pub fn retain(&self, ws: &str, cutoff_micros: i64, max: usize) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let mut cut: Option<(u64, String)> = None;
        let mut n = 0u64;
        let mut prefixes: std::collections::BTreeSet<Vec<u8>> = Default::default();
        'segments: for item in self.db.scan_prefix(ws_key(b'r', ws)) {
            let (k, v) = item?;
            let Some(v) = open_segment(&v) else { break };
            let (Some(first), Some(fr)) = (seq_of(&k), frames(&v)) else {
                break;
            };
            let total = fr.len();
            let mut dropped = 0usize;
            for (i, r) in fr.iter().enumerate() {
                let Some(Ok(record)) = v.get(r.clone()).map(serde_json::from_slice::<Value>) else {
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
                let seq = first.saturating_add(i as u64);
                prefixes.extend(posting_prefixes(ws, &record));
                if let Some(id) = record.get("event_id").and_then(Value::as_str) {
                    batch.remove(dedup_key(ws, id));
                }
                let chain = record
                    .get("chain_hash")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                cut = Some((seq, chain));
                n += 1;
                dropped += 1;
            }
            if dropped > 0 {
                batch.remove(k.to_vec());
            }
            if dropped < total {
                if dropped > 0 {
                    // The segment straddles the cut: keep its rest under its new first seq.
                    let mut rest = Vec::new();
                    for r in &fr[dropped..] {
                        push_frame(&mut rest, v.get(r.clone()).unwrap_or_default());
                    }
                    batch.insert(
                        segment_key(ws, first.saturating_add(dropped as u64)),
                        seal_segment(rest),
                    );
                }
                break 'segments;
            }
        }
        let Some((cut_seq, chain)) = cut else {
            return Ok(0);
        };
        // Every seq ≤ cut_seq is gone now: drop the lists below the cut, trim the one
        // straddling it.
        for prefix in prefixes {
            for item in self
                .db
                .range(prefix.clone()..=with_seq(prefix.clone(), u64::MAX))
            {
                let (k, v) = item?;
                if k.len() != prefix.len() + 8 {
                    continue;
                }
                if seq_of(&k).is_some_and(|last| last <= cut_seq) {
                    batch.remove(k.to_vec());
                    continue;
                }
                let seqs = decode_postings(&v).unwrap_or_default();
                let kept: Vec<u64> = seqs.iter().copied().filter(|s| *s > cut_seq).collect();
                if kept.is_empty() {
                    batch.remove(k.to_vec());
                } else if kept.len() < seqs.len() {
                    batch.insert(k.to_vec(), encode_postings(&kept));
                }
                break;
            }
        }
        let deleted = self.checkpoint(ws)?.map_or(0, |c| c.deleted) + n;
        let c = Checkpoint {
            first_seq: cut_seq + 1,
            prev_chain_hash: chain,
            cut_at: Timestamp::now().to_rfc3339(),
            deleted,
        };
        let b = serde_json::to_vec(&c).map_err(|e| StoreError::Other(e.to_string()))?;
        batch.insert(checkpoint_key(ws), b);
        self.db.apply_batch(batch)?;
        Ok(n)
    }

    /// Raw access for tamper tests and tools: the stored bytes of the record at `seq`.
    pub fn raw_record(&self, ws: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((first, v)) = self.segment_of(ws, seq)? else {
            return Ok(None);
        };
        let Some(v) = open_segment(&v) else {
            return Ok(None);
        };
        Ok(frame_at(&v, seq.saturating_sub(first)).map(<[u8]>::to_vec))
    }

    /// Raw access for tamper tests and tools: rewrite the segment holding `seq` with that
    /// record replaced by `bytes`, or cut out of it (`None`: the records after it in the
    /// segment move up one position, as when the bytes are deleted from the file). `false`
    /// when there is no such record.
    pub fn raw_set_record(
        &self,
        ws: &str,
        seq: u64,
        bytes: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let Some((first, v)) = self.segment_of(ws, seq)? else {
            return Ok(false);
        };
        let Some(v) = open_segment(&v) else {
            return Ok(false);
        };
        let Some(fr) = frames(&v) else {
            return Ok(false);
        };
        let at = usize::try_from(seq.saturating_sub(first)).unwrap_or(usize::MAX);
        if at >= fr.len() {
            return Ok(false);
        }
        let mut seg = Vec::with_capacity(v.len());
        for (i, r) in fr.into_iter().enumerate() {
            match (i == at, bytes) {
                (true, Some(b)) => push_frame(&mut seg, b),
                (true, None) => {}
                (false, _) => push_frame(&mut seg, v.get(r).unwrap_or_default()),
            }
        }
        let key = segment_key(ws, first);
        if seg.is_empty() {
            self.db.remove(key)?;
        } else {
            self.db.insert(key, seal_segment(seg))?;
        }
        Ok(true)
    }

    /// Raw access for tamper tests and tools: the key of the segment holding `seq`.
    pub fn raw_segment_key(&self, ws: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .segment_of(ws, seq)?
            .map(|(first, _)| segment_key(ws, first)))
    }

    /// The sled handle (tests and tools).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}
