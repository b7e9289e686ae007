#!/usr/bin/env python3
"""Check that deploy/Dockerfile only uses build-context files a clean checkout has.

For every COPY/ADD without --from, each source must be tracked by git (a file,
or a directory holding tracked files) and not excluded by .dockerignore. For
RUN --mount=type=bind without from= (the whole context mounted at a target),
every <target>/<path> the command uses must be tracked too, unless the command
tests for it first ([ -d/-e/-f <target>/<path> ]). COPY --from must name an
earlier stage, and every `--bin NAME` must be a [[bin]] in Cargo.toml.

Usage: check_dockerfile.py REPO_ROOT DOCKERFILE
"""
import fnmatch
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path


def instructions(text):
    """Yield (line_no, keyword, rest) with continuations joined, comments dropped."""
    buf, start = "", None
    for no, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if start is None:
            start = no
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, rest = buf.partition(" ")
        yield start, keyword.upper(), rest.strip()
        buf, start = "", None


def tracked_files(root):
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"],
                         check=True, capture_output=True).stdout
    return {p for p in out.decode().split("\0") if p}


def dockerignore(root):
    path = root / ".dockerignore"
    pats = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = line[1:] if neg else line
            pats.append((neg, pat.strip("/")))
    return pats


def ignored(path, pats):
    """Docker semantics, simplified: last matching pattern wins; a pattern that
    matches a parent directory excludes everything below it."""
    parts = path.split("/")
    result = False
    for neg, pat in pats:
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.endswith("/**") and prefix.startswith(pat[:-3] + "/")):
                result = not neg
                break
    return result


def source_present(src, files):
    while src.startswith("./"):
        src = src[2:]
    src = "" if src in (".", "/") else src.rstrip("/")
    if not src:
        return sorted(files)
    if any(ch in src for ch in "*?["):
        return sorted(f for f in files if fnmatch.fnmatchcase(f, src) or fnmatch.fnmatchcase(f, src + "/*"))
    if src in files:
        return [src]
    return sorted(f for f in files if f.startswith(src.rstrip("/") + "/"))


def main():
    root, dockerfile = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    files = tracked_files(root)
    pats = dockerignore(root)
    cargo = tomllib.loads((root / "Cargo.toml").read_text())
    bins = {b["name"] for b in cargo.get("bin", [])}
    errors, checked = [], 0
    stages = set()
    for no, kw, rest in instructions(dockerfile.read_text()):
        if kw == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", rest, re.IGNORECASE)
            if m:
                stages.add(m.group(1).lower())
        elif kw in ("COPY", "ADD"):
            args = shlex.split(rest)
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            frm = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
            if frm:
                if frm[0].lower() not in stages:
                    errors.append(f"line {no}: COPY --from={frm[0]}: no earlier stage of that name")
                continue
            if len(paths) < 2:
                errors.append(f"line {no}: {kw} needs a source and a destination")
                continue
            for src in paths[:-1]:
                checked += 1
                present = [f for f in source_present(src, files) if not ignored(f, pats)]
                if not present:
                    errors.append(f"line {no}: {kw} source {src!r} is not tracked by git "
                                  f"(or is excluded by .dockerignore)")
        elif kw == "RUN":
            for m in re.finditer(r"--mount=(\S+)", rest):
                opts = dict(o.split("=", 1) if "=" in o else (o, "") for o in m.group(1).split(","))
                if opts.get("type") != "bind" or "from" in opts or "source" in opts:
                    continue
                target = opts.get("target") or opts.get("dst") or opts.get("destination")
                for ref in sorted(set(re.findall(re.escape(target) + r"/([\w.\-/]+)", rest))):
                    ref = ref.rstrip("/.")
                    if re.search(r"\[\s+-[def]\s+" + re.escape(f"{target}/{ref}") + r"\s+\]", rest):
                        continue
                    checked += 1
                    present = [f for f in source_present(ref, files) if not ignored(f, pats)]
                    if not present:
                        errors.append(f"line {no}: RUN uses context path {ref!r} (bind mount {target}), "
                                      f"which is not tracked by git or is excluded by .dockerignore")
            for b in re.findall(r"--bin\s+(\S+)", rest):
                checked += 1
                if b not in bins:
                    errors.append(f"line {no}: cargo --bin {b}: no such [[bin]] in Cargo.toml")
    for e in errors:
        print(f"ERROR {dockerfile.name}: {e}")
    print(f"dockerfile: {checked} context references checked, {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
