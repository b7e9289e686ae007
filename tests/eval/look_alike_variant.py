"""A look-alike variant of a presidio-format PII set: every labeled value rewritten in one of
five styles chosen at random (fullwidth forms, a zero-width space every 4 characters, en dashes
and no-break spaces, Arabic-Indic digits, Bengali digits), labels moved to match, so
`parapet eval OUT` shows whether the detectors read such values as they read ASCII ones.

    .venv/bin/python tests/eval/faker_heldout.py 303 20 /tmp/ho3      # or any presidio-format set
    python3 tests/eval/look_alike_variant.py SEED /tmp/ho3 /tmp/la
    cp -r ../shared/eval/secrets ../shared/eval/injection /tmp/la/
    cargo run --release -- eval /tmp/la --policies policies
"""
import json, os, random, sys


def fullwidth(v):
    return "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else c for c in v)


def zero_width(v):
    return "\u200b".join(v[i:i + 4] for i in range(0, len(v), 4))


def dashes(v):
    return v.replace("-", "\u2013").replace(" ", "\u00a0")


def arabic_indic(v):
    return "".join(chr(0x0660 + int(c)) if c in "0123456789" else c for c in v)


def bengali(v):
    return "".join(chr(0x09E6 + int(c)) if c in "0123456789" else c for c in v)


STYLES = [fullwidth, zero_width, dashes, arabic_indic, bengali]
NAME = "presidio_synth_dataset_v2.json"


def main():
    seed, src, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    random.seed(seed)
    records = json.load(open(os.path.join(src, "pii", NAME), encoding="utf-8"))
    variant = []
    for r in records:
        text, at, new_text, new_spans = r["full_text"], 0, "", []
        for s in sorted(r["spans"], key=lambda s: s["start_position"]):
            a, b = s["start_position"], s["end_position"]
            if a < at:  # overlapping labels: keep the first
                continue
            style = random.choice(STYLES)
            value = style(text[a:b])
            new_text += text[at:a]
            start = len(new_text)
            new_text += value
            new_spans.append(dict(s, entity_value=value, start_position=start,
                                  end_position=len(new_text)))
            at = b
        new_text += text[at:]
        variant.append({"full_text": new_text, "spans": new_spans})
    os.makedirs(os.path.join(out, "pii"), exist_ok=True)
    with open(os.path.join(out, "pii", NAME), "w", encoding="utf-8") as f:
        json.dump(variant, f, ensure_ascii=False)
    print(f"{len(variant)} sentences, {sum(len(v['spans']) for v in variant)} values rewritten")


if __name__ == "__main__":
    main()
