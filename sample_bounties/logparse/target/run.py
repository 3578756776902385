"""Run phase (fixed): analyse every input log and write the reports.

Usage: python3 run.py INPUTS_DIR ARTIFACTS_DIR

Reads each ``*.log.xz`` in INPUTS_DIR (sorted by name), calls
``logparse.analyze(lines)`` and writes ``ARTIFACTS_DIR/reports.json`` mapping the
file name to its report.  Timing is measured by the harness from outside.
"""

from __future__ import annotations

import lzma
import json
import sys
from pathlib import Path

import logparse


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python3 run.py INPUTS_DIR ARTIFACTS_DIR", file=sys.stderr)
        return 2
    inputs, artifacts = Path(argv[1]), Path(argv[2])
    files = sorted(inputs.glob("*.log.xz"))
    if not files:
        print(f"no *.log.xz files in {inputs}", file=sys.stderr)
        return 2
    reports = {}
    for path in files:
        with lzma.open(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        reports[path.name] = logparse.analyze(lines)
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "reports.json").write_text(json.dumps(reports, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
