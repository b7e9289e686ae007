#!/usr/bin/env python3
"""`helm lint` of the chart through Helm's own Go library (helm-sdkpy), once
with the chart's values.yaml and once per variant file merged over it.

Lint renders every template with the given values, validates the values
against values.schema.json, parses each rendered document as YAML and runs
Helm's template rules (metadata names, deprecated APIs, selectors). The
library reports severities and paths but not message texts; run `helm lint
CHART -f VARIANT` with a helm binary to read them.

Usage: helm_lint.py CHART_DIR [VARIANT.yaml ...]
"""
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from helm_sdkpy import Configuration
from helm_sdkpy.chart import Lint

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return over


def lint(config, chart):
    result = asyncio.run(Lint(config).run(str(chart)))
    msgs = result.get("Messages") or []
    errors = len(result.get("Errors") or []) + sum(1 for m in msgs if m.get("Severity", 0) >= 3)
    return msgs, errors


def main():
    chart = Path(sys.argv[1]).resolve()
    variants = [Path(v).resolve() for v in sys.argv[2:]]
    config = Configuration(namespace="default")
    failed = 0
    base_values = yaml.safe_load((chart / "values.yaml").read_text())
    runs = [("values.yaml", None)] + [(v.name, v) for v in variants]
    with tempfile.TemporaryDirectory() as tmp:
        for name, variant in runs:
            target = chart
            if variant is not None:
                target = Path(tmp) / variant.stem / chart.name
                shutil.copytree(chart, target)
                merged = merge(base_values, yaml.safe_load(variant.read_text()) or {})
                (target / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
            msgs, errors = lint(config, target)
            for m in msgs:
                sev = SEVERITY.get(m.get("Severity", 0), str(m.get("Severity")))
                if sev != "INFO":
                    print(f"  {sev} {name}: {m.get('Path')}")
            print(f"helm lint [{name}]: {'ok' if errors == 0 else f'{errors} error(s)'}")
            failed += errors > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
