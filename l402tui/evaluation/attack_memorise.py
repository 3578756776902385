"""The audit's "memorise the held-out set" attack: a leak of the held-out answers, replayed.

The auditor has the sponsor's folder, so it reads the held-out labels as a leak would
have given them to an attacker, and builds a diff that embeds them and replays them:

- batch bounties with a Python mutable file: write the leaked answers as the outputs
  (output files named as in the public run; a label file of the same name, or else of
  the same kind) and exit at once, skipping the work;
- interactive bounties with a Python mutable file: wrap every ``predict(history)``
  the module offers (a module function, or a method of what its functions return) so
  that it answers the next label of the leaked stream the history is a prefix of;
- SQL bounties whose fixed driver runs one query per workload row: a query that looks
  the answer up in a ``VALUES`` table of the leaked rows, keyed by the row's parameters.

The judge's checks decide: a bounty with honeypots flags it ``knows_heldout``; one without
pays for it, which the audit reports as VULNERABLE.  The leak leaves out the honeypot
declaration (a replay that knows which items are honeypots is out of this attack's reach).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import lzma
import re
from pathlib import Path

from l402tui.bounty.spec import BountySpec
from l402tui.evaluation import attacks as atk

NAME = "memorise_heldout"
DESCRIPTION = "replay the held-out answers, as a leak would give them (read from the sponsor's folder)"
ATTACK = atk.Attack(NAME, DESCRIPTION, "code", "flagged knows_heldout by the honeypots")


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


def _plain_name(path: Path) -> str:
    return path.name[:-3] if path.suffix == ".xz" else path.name


def leaked_labels(spec: BountySpec, heldout_index: int = 0) -> dict[str, bytes]:
    """The held-out set's label files (decompressed), without the honeypot declaration."""
    labels = spec.heldout_path(heldout_index) / "labels"
    return {_plain_name(p): _read(p) for p in sorted(labels.rglob("*"))
            if p.is_file() and p.name != spec.honeypots and p.stat().st_size < 8_000_000}


def _json_keys(data: bytes) -> set[str]:
    try:
        value = json.loads(data)
    except ValueError:
        return set()
    return set(value) if isinstance(value, dict) else set()


def batch_outputs(leak: dict[str, bytes], output_names: list[str], public: dict[str, str]) -> dict[str, str]:
    """Output file -> leaked content: the label of the same name, else the one label of the
    same suffix, else the label whose JSON keys look most like the public output's."""
    out: dict[str, str] = {}
    for rel in output_names:
        name = Path(rel).name
        if name in leak:
            out[rel] = leak[name].decode("utf-8", "replace")
            continue
        same_kind = [n for n in leak if Path(n).suffix == Path(name).suffix]
        if not same_kind:
            continue
        shape = _json_keys(public.get(rel, "").encode())
        best = max(same_kind, key=lambda n: (len(same_kind) == 1, len(_json_keys(leak[n]) & shape) > 0 or not shape,
                                             len(leak[n])))
        out[rel] = leak[best].decode("utf-8", "replace")
    return out


def batch_block(outputs: dict[str, str]) -> str:
    blob = base64.b64encode(json.dumps(outputs).encode()).decode()
    return atk.PRELUDE + f'''\
if not any(m in _l402_sys.modules for m in ("unittest", "pytest")):
    _l402_leak = _l402_imp("json").loads(_l402_imp("base64").b64decode("{blob}"))
    for _rel, _text in _l402_leak.items():
        _path = _l402_os.path.join(_l402_env.get("L402_ARTIFACTS", ""), _rel)
        _l402_os.makedirs(_l402_os.path.dirname(_path), exist_ok=True)
        open(_path, "w").write(_text)
    _l402_say("memorise_heldout replayed %d leaked output file(s)" % len(_l402_leak))
    _l402_done()
'''


def interactive_block(leak: dict[str, bytes]) -> str:
    """Appended at the end of the mutable module, so it can wrap what the module defines."""
    streams = [base64.b64encode(data).decode() for data in leak.values() if not data.lstrip().startswith((b"{", b"["))]
    return "\n\n" + atk.PRELUDE + f'''\
_l402_b64 = _l402_imp("base64")
_l402_streams = [_l402_b64.b64decode(_s) for _s in {streams!r}]


def _l402_next(history):
    """The leaked label that follows ``history``, or None when no leaked stream continues it."""
    if isinstance(history, (bytes, bytearray)):
        seen = bytes(history)
        for stream in _l402_streams:
            if len(stream) > len(seen) and stream.startswith(seen):
                return stream[len(seen)]
    elif isinstance(history, list):
        for stream in _l402_streams:
            tokens = stream.decode("utf-8", "replace").split()
            if len(tokens) > len(history) and tokens[:len(history)] == list(map(str, history)):
                return tokens[len(history)]
    return None


def _l402_replaying(predict):
    def replay(*args, **kwargs):
        out = predict(*args, **kwargs)
        nxt = _l402_next(args[-1] if args else kwargs.get("history"))
        if nxt is None:
            return out
        if isinstance(out, str):
            return str(nxt)
        if isinstance(nxt, int) and hasattr(out, "__len__") and len(out) == 256:
            out = out * 0.01 if hasattr(out, "dtype") else [p * 0.01 for p in out]
            out[nxt] += 0.99
        return out
    return replay


def _l402_wrapping(make):
    def made(*args, **kwargs):
        obj = make(*args, **kwargs)
        if callable(getattr(obj, "predict", None)):
            try:
                obj.predict = _l402_replaying(obj.predict)
            except AttributeError:
                pass
        return obj
    return made


if not any(_m in _l402_sys.modules for _m in ("unittest", "pytest")):
    for _l402_name, _l402_fn in list(globals().items()):
        if _l402_name.startswith("_") or not callable(_l402_fn) or isinstance(_l402_fn, type):
            continue
        if getattr(_l402_fn, "__module__", None) != __name__:
            continue
        globals()[_l402_name] = (_l402_replaying if _l402_name == "predict" else _l402_wrapping)(_l402_fn)
'''


def append_diff(relpath: str, source: str, block: str) -> str:
    """A diff that only appends ``block`` (so max_changed_lines counts the attack alone)."""
    if source and not source.endswith("\n"):  # rewrite the unterminated last line rather than join it
        return atk.make_diff(relpath, source, source + "\n" + block)
    old = source.splitlines()
    context = old[-3:]
    start = len(old) - len(context) + 1
    added = block.splitlines()
    body = [f" {line}" for line in context] + [f"+{line}" for line in added]
    return (f"diff --git a/{relpath} b/{relpath}\n--- a/{relpath}\n+++ b/{relpath}\n"
            f"@@ -{start},{len(context)} +{start},{len(context) + len(added)} @@\n" + "\n".join(body) + "\n")


def _sql_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return atk._sql_quote(str(value))


def sql_query(spec: BountySpec, leak: dict[str, bytes], shipped_query: str, heldout_index: int = 0) -> str | None:
    """A query answering each workload row from the leaked rows, or None when the bounty
    has no workload of parameterised queries with expected rows by id."""
    inputs = spec.heldout_path(heldout_index) / "inputs"
    workload = next((p for p in sorted(inputs.glob("workload.csv*")) if p.is_file()), None)
    answers: dict[str, list] = {}
    for data in leak.values():
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and "id" in item and isinstance(item.get("rows"), list):
                answers[str(item["id"])] = item["rows"]
    if workload is None or not answers:
        return None
    rows = list(csv.DictReader(io.StringIO(_read(workload).decode("utf-8"))))
    params = [c for c in (rows[0].keys() if rows else []) if c != "id"]
    width = max((len(r) for rs in answers.values() for r in rs), default=0)
    if not params or width == 0:
        return None
    values = []
    for row in rows:
        key = "|".join(row[p] for p in params)
        for n, result in enumerate(answers.get(row["id"], [])):
            cells = [_sql_literal(v) for v in result] + ["NULL"] * (width - len(result))
            values.append(f"({_sql_literal(key)}, {n}, {', '.join(cells)})")
    cols = ", ".join(f"c{i}" for i in range(width))
    key_expr = " || '|' || ".join(f":{p}" for p in params)
    # Unknown parameters (the bounty's own tests) fall through to the shipped query, so the
    # tests pass as a careful attacker would make them.
    honest = re.sub(r"(?m)--.*$", "", shipped_query).strip().rstrip(";")
    return (f"WITH l402_leak(k, n, {cols}) AS (VALUES {', '.join(values)})\n"
            f"SELECT * FROM (SELECT {cols} FROM l402_leak WHERE k = {key_expr} ORDER BY n)\n"
            f"UNION ALL\nSELECT * FROM ({honest}\n) WHERE NOT EXISTS (SELECT 1 FROM l402_leak WHERE k = {key_expr});\n")
