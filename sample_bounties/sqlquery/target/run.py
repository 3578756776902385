"""Run phase (fixed): build the database from the CSVs, then run the query workload.

Usage: python3 run.py INPUTS_DIR ARTIFACTS_DIR

1. opens a new database file ``work.db`` in the current directory and runs settings.sql;
2. runs schema.sql, then loads every ``INPUTS_DIR/<table>.csv.xz`` except
   workload.csv.xz into ``<table>`` (columns by the CSV header, one transaction);
3. runs indexes.sql;
4. for every row of workload.csv.xz (columns id, region, day_from, day_to), runs
   query.sql with those named parameters and writes one JSON line
   ``{"id": ..., "rows": [[...], ...]}`` to ``ARTIFACTS_DIR/results.jsonl``.
The whole run is timed by the harness from outside.
"""

from __future__ import annotations

import csv
import io
import json
import lzma
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DB_FILE = "work.db"


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with lzma.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise SystemExit(f"run.py: {path.name} is empty; expected a header line")
    return rows[0], rows[1:]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python3 run.py INPUTS_DIR ARTIFACTS_DIR", file=sys.stderr)
        return 2
    inputs, artifacts = Path(argv[1]), Path(argv[2])
    workload_file = inputs / "workload.csv.xz"
    if not workload_file.is_file():
        print(f"run.py: {workload_file} is missing", file=sys.stderr)
        return 2
    Path(DB_FILE).unlink(missing_ok=True)
    db = sqlite3.connect(DB_FILE, isolation_level=None)
    db.executescript((HERE / "settings.sql").read_text(encoding="utf-8"))
    db.executescript((HERE / "schema.sql").read_text(encoding="utf-8"))
    db.execute("BEGIN")
    for path in sorted(inputs.glob("*.csv.xz")):
        table = path.name[: -len(".csv.xz")]
        if table == "workload":
            continue
        header, rows = read_csv(path)
        cols = ", ".join(f'"{c}"' for c in header)
        marks = ", ".join("?" for _ in header)
        db.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)
    db.execute("COMMIT")
    db.executescript((HERE / "indexes.sql").read_text(encoding="utf-8"))

    query = (HERE / "query.sql").read_text(encoding="utf-8")
    header, rows = read_csv(workload_file)
    out = io.StringIO()
    for row in rows:
        params = dict(zip(header, row))
        result = db.execute(query, {k: params[k] for k in ("region", "day_from", "day_to")}).fetchall()
        out.write(json.dumps({"id": params["id"], "rows": [list(r) for r in result]}) + "\n")
    db.close()
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "results.jsonl").write_text(out.getvalue(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
