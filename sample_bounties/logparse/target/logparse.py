"""Access-log analysis: parse each line, then summarise the file into a report.

This is the code the bounty asks you to make faster.  It is deliberately
straightforward and correct: every line is checked against the full format and
anything that does not match is counted as malformed.  ``run.py`` (fixed) calls
:func:`analyze` once per input file and writes the reports; the scorer compares
them with the expected reports, so speed-ups must keep every number identical.

Line format (one request per line)::

    2026-03-14T12:00:01.123Z web-3 INFO 203.0.113.7 "GET /api/v1/items/42?page=2 HTTP/1.1" 200 5123 12.5ms "<user agent>" req=1a2b user=u42

* the user agent may contain ``\\"`` and ``\\\\`` escapes;
* the size is ``-`` when no body was sent (counts as 0 bytes);
* the duration is ``<float>ms`` or ``<float>s``; the report uses milliseconds rounded to 3 decimals;
* zero or more ``key=value`` pairs follow in any order; ``user=`` names the user.

Report keys: lines, malformed, levels, status (per class "2xx"...), hosts (requests and
bytes per host), top_paths (10 most requested path templates: [template, count,
p95 ms by nearest rank], ties by template), hourly, clients (distinct client
addresses), users (distinct user= values), sessions (per client, runs of requests
with no pause longer than 5 minutes, summed over clients), slowest ([timestamp,
template, ms], the first of equal durations).  Templates drop the query, turn numeric segments into
``:id`` and hex segments of 8+ characters into ``:hex`` (also inside ``app.<hex>.js``).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta

# Tunable implementation choices; every option gives identical reports.
TIMESTAMP_PARSER = "strptime"  # search: choice(strptime, slicing)
DISTINCT_WITH = "list"  # search: choice(list, set)
LINE_REGEX = "per_line"  # search: choice(per_line, once)
UNESCAPE = "loop"  # search: choice(loop, replace)
SESSIONS_BY = "scan"  # search: choice(scan, group)
TOP_N = 10  # part of the report format: keep at 10

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
SESSION_GAP_MS = 5 * 60 * 1000  # part of the report format
EPOCH = datetime(1970, 1, 1)
EPOCH_DAY = date(1970, 1, 1).toordinal()


def line_pattern() -> str:
    ts = r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)"
    host = r"([A-Za-z0-9][A-Za-z0-9.\-]*)"
    level = "(" + "|".join(LEVELS) + ")"
    client = r"([0-9A-Fa-f:.]+)"
    request = r'"([A-Z]+) (\S+) (HTTP/\d\.\d)"'
    status = r"(\d{3})"
    size = r"(\d+|-)"
    duration = r"(\d+(?:\.\d+)?)(ms|s)"
    agent = r'"((?:[^"\\]|\\.)*)"'
    extras = r"((?: [a-z_]+=\S+)*)"
    return "^" + ts + " " + host + " " + level + " " + client + " " + request + " " + status + " " + size + \
        " " + duration + " " + agent + extras + "$"


def unescape(text: str) -> str:
    if UNESCAPE == "replace" and "\\" not in text:
        return text
    out = ""
    escaped = False
    for ch in text:
        if escaped:
            out = out + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out = out + ch
    return out


def path_template(path: str) -> str:
    bare = path.split("?")[0]
    result = ""
    for i, seg in enumerate(bare.split("/")):
        if i > 0:
            result = result + "/"
        if re.fullmatch(r"[0-9]+", seg):
            result = result + ":id"
        elif re.fullmatch(r"[0-9a-f]{8,}", seg):
            result = result + ":hex"
        elif re.fullmatch(r"app\.[0-9a-f]{8,}\.js", seg):
            result = result + "app.:hex.js"
        else:
            result = result + seg
    return result


_compiled: re.Pattern | None = None


def parse_line(line: str) -> dict | None:
    """One log line as a dict, or None if it does not match the format exactly."""
    if LINE_REGEX == "once":
        global _compiled
        if _compiled is None:
            _compiled = re.compile(line_pattern())
        m = _compiled.match(line)
    else:
        m = re.compile(line_pattern()).match(line)
    if m is None:
        return None
    ts = m.group(1)
    if TIMESTAMP_PARSER == "strptime":
        when = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
        hour = when.strftime("%Y-%m-%dT%H")
        t_ms = (when - EPOCH) // timedelta(milliseconds=1)
    else:
        hour = ts[:13]
        day = date(int(ts[0:4]), int(ts[5:7]), int(ts[8:10])).toordinal() - EPOCH_DAY
        t_ms = (day * 86_400_000 + int(ts[11:13]) * 3_600_000 + int(ts[14:16]) * 60_000
                + int(ts[17:19]) * 1000 + int(ts[20:23]))
    extras = {}
    for pair in m.group(13).split(" "):
        if pair.split("=")[0] != "":
            extras[pair.split("=")[0]] = pair.split("=", 1)[1]
    value = float(m.group(10))
    ms = round(value * 1000, 3) if m.group(11) == "s" else round(value, 3)
    return {
        "ts": ts,
        "t_ms": t_ms,
        "hour": hour,
        "host": m.group(2),
        "level": m.group(3),
        "client": m.group(4),
        "method": m.group(5),
        "path": path_template(m.group(6)),
        "status": int(m.group(8)),
        "bytes": 0 if m.group(9) == "-" else int(m.group(9)),
        "ms": ms,
        "agent": unescape(m.group(12)),
        "user": extras.get("user"),
    }


def count_distinct(values: list) -> int:
    if DISTINCT_WITH == "set":
        return len(set(values))
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return len(seen)


def count_sessions(records: list[dict]) -> int:
    """Sessions summed over clients: a pause of more than SESSION_GAP_MS starts a new one."""
    if SESSIONS_BY == "group":
        by_client: dict[str, list[int]] = {}
        for r in records:
            by_client.setdefault(r["client"], []).append(r["t_ms"])
        groups = list(by_client.values())
    else:
        clients = []
        for r in records:
            if r["client"] not in clients:
                clients.append(r["client"])
        groups = [[r["t_ms"] for r in records if r["client"] == c] for c in clients]
    total = 0
    for times in groups:
        times = sorted(times)
        total += 1
        for i in range(1, len(times)):
            if times[i] - times[i - 1] > SESSION_GAP_MS:
                total += 1
    return total


def analyze(lines: list[str]) -> dict:
    """The report for one file's lines (see the module docstring)."""
    records = []
    malformed = 0
    total = 0
    for line in lines:
        total += 1
        rec = parse_line(line)
        if rec is None:
            malformed += 1
        else:
            records.append(rec)
    levels: dict[str, int] = {}
    status: dict[str, int] = {}
    hosts: dict[str, dict[str, int]] = {}
    hourly: dict[str, int] = {}
    for r in records:
        levels[r["level"]] = levels.get(r["level"], 0) + 1
        cls = str(r["status"] // 100) + "xx"
        status[cls] = status.get(cls, 0) + 1
        if r["host"] not in hosts:
            hosts[r["host"]] = {"requests": 0, "bytes": 0}
        hosts[r["host"]]["requests"] += 1
        hosts[r["host"]]["bytes"] += r["bytes"]
        hourly[r["hour"]] = hourly.get(r["hour"], 0) + 1
    paths = [r["path"] for r in records]
    ranked = sorted(set(paths), key=lambda p: (-paths.count(p), p))[:TOP_N]
    top = []
    for p in ranked:
        ms = sorted(r["ms"] for r in records if r["path"] == p)
        top.append([p, len(ms), ms[max(0, math.ceil(0.95 * len(ms)) - 1)]])
    slowest = None
    for r in records:
        if slowest is None or r["ms"] > slowest["ms"]:
            slowest = r
    return {
        "lines": total,
        "malformed": malformed,
        "levels": dict(sorted(levels.items())),
        "status": dict(sorted(status.items())),
        "hosts": dict(sorted(hosts.items())),
        "top_paths": top,
        "hourly": dict(sorted(hourly.items())),
        "clients": count_distinct([r["client"] for r in records]),
        "users": count_distinct([r["user"] for r in records if r["user"]]),
        "sessions": count_sessions(records),
        "slowest": [slowest["ts"], slowest["path"], slowest["ms"]] if slowest else None,
    }
