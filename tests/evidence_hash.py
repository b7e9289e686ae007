#!/usr/bin/env python3
"""Independent implementation of Parapet's evidence hashing (docs/EVIDENCE.md).

Reads exported records (JSON Lines, one workspace, in seq order) on stdin, recomputes
each record's seed-003 `evidence_hash`, its `record_hash` and the chain, and prints
`ok <n> <head chain_hash>` or `MISMATCH <seq> <what>` (exit 1). Written from the
specification, not from the Rust code: only the Python standard library.
"""
import hashlib
import json
import sys
from datetime import datetime, timezone

CANONICAL = ["schema_version", "project_id", "application_id", "event_id", "session_id",
             "recorded_at", "user_ref", "input_summary", "output_summary", "provider",
             "model", "route_path", "fallback_used", "guard_flags", "final_status"]
GENESIS = "sha256:" + "0" * 64
# Unicode White_Space (what the spec trims; Python's str.strip() set differs slightly).
WHITE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
        "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def sha(text):
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def esc(s, comma=False):
    s = s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return s.replace(",", "\\,") if comma else s


def ts(s):
    d = datetime.fromisoformat(s.strip().replace("z", "Z").replace("Z", "+00:00"))
    d = d.astimezone(timezone.utc)
    out = d.strftime("%Y-%m-%dT%H:%M:%S")
    if d.microsecond:
        out += ("." + "%06d" % d.microsecond).rstrip("0")
    return out + "Z"


def value(name, v):
    if name == "fallback_used":
        return "true" if v else "false"
    if name == "guard_flags":
        items = sorted(x.strip(WHITE) for x in (v or []) if x.strip(WHITE))
        return ",".join(esc(x, True) for x in items) if items else "none"
    if v is None:
        return ""
    if name == "recorded_at":
        return ts(v)
    return esc(v.strip(WHITE))


def evidence_hash(rec):
    return sha("\n".join(f"{n}={value(n, rec.get(n))}" for n in CANONICAL))


def record_hash(rec):
    body = {k: v for k, v in rec.items() if k not in ("record_hash", "chain_hash")}
    return sha(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def main():
    prev, n = GENESIS, 0
    for line in sys.stdin:
        if not line.strip():
            continue
        rec = json.loads(line)
        eh, rh = evidence_hash(rec), record_hash(rec)
        if eh != rec["evidence_hash"]:
            print("MISMATCH", rec["seq"], "evidence_hash", eh)
            return 1
        if rh != rec["record_hash"]:
            print("MISMATCH", rec["seq"], "record_hash", rh)
            return 1
        chain = "sha256:" + hashlib.sha256((prev + eh + rh).encode()).hexdigest()
        if chain != rec["chain_hash"]:
            print("MISMATCH", rec["seq"], "chain_hash", chain)
            return 1
        prev, n = chain, n + 1
    print("ok", n, prev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
