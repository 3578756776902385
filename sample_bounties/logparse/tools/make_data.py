"""Generate the logparse eval sets (public, heldout/a, heldout/b) deterministically.

Run from anywhere: ``python3 tools/make_data.py``.  The expected reports (labels)
are computed from the generator's own ground truth, not from any parser, so they
check the baseline parser independently.  This script stays outside target/,
public/ and heldout/ and is never shipped to agents.

Each set differs on purpose: another day, other host names, another mix of
IPv6 clients, escaped quotes and slow requests, so a parser tuned to the public
set's quirks fails the held-out guard.
"""

from __future__ import annotations

import lzma
import json
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

SETS = {
    # name: (seed, day, hosts, ipv6 share, escaped-quote share, lines per file, files)
    "public": dict(seed=11, day="2026-03-14", hosts=["web-1", "web-2", "web-3", "api-1"], ipv6=0.10,
                   escaped=0.05, lines=2400, files=4),
    "heldout/a": dict(seed=23, day="2026-05-02", hosts=["web-4", "web-5", "api-2", "api-3", "edge-1"],
                      ipv6=0.30, escaped=0.12, lines=2400, files=4),
    "heldout/b": dict(seed=37, day="2026-07-19", hosts=["api-7", "web-9", "edge-2"], ipv6=0.20,
                      escaped=0.08, lines=2400, files=4),
}
SESSION_GAP_MS = 5 * 60 * 1000  # a client's next request after a longer pause starts a new session
CANARY_LINES = 250  # canary.log.xz: same name in every set, different content
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "INFO", "WARN", "ERROR"]
METHODS = ["GET", "GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH"]
PROTOCOLS = ["HTTP/1.1", "HTTP/1.1", "HTTP/2.0"]
ROUTES = [
    "/", "/health", "/login", "/logout", "/api/v1/items", "/api/v1/items/{n}", "/api/v1/items/{n}/reviews",
    "/api/v1/users/{n}", "/api/v1/users/{n}/orders", "/api/v1/orders/{h}", "/api/v2/search",
    "/static/app.{h}.js", "/static/style.css", "/api/v1/carts/{h}/items/{n}", "/metrics", "/admin/jobs/{n}",
]
QUERIES = ["", "", "", "?page={n}", "?q=lamp&sort=price", "?limit={n}&offset={n}", "?ref=mail"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "curl/8.5.0", "python-requests/2.32.3", "Go-http-client/2.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
]
QUOTED_AGENTS = ['Bot "Crawler" v2 (+http://example.org/bot)', 'Tool \\ with "quotes"', '"quoted" agent']
STATUSES = [200] * 30 + [201, 204, 301, 302, 304, 304, 400, 401, 403, 404, 404, 404, 409, 429, 500, 502, 503]
GARBAGE = ["--- log rotated ---", "", "WARNING: clock skew detected", "<binary data omitted>", "#"]


def _fill(template: str, rng: random.Random, hex_ids: list[str]) -> str:
    out = template
    while "{n}" in out or "{h}" in out:
        out = out.replace("{n}", str(rng.randint(1, 600)), 1)
        out = out.replace("{h}", rng.choice(hex_ids), 1)
    return out


def _template(path: str) -> str:
    """Ground-truth path template: query dropped, numbers -> :id, hex runs of 8+ chars -> :hex."""
    path = path.split("?", 1)[0]
    parts = []
    for seg in path.split("/"):
        if seg.isdigit():
            parts.append(":id")
        elif len(seg) >= 8 and all(c in "0123456789abcdef" for c in seg):
            parts.append(":hex")
        elif seg.startswith("app.") and seg.endswith(".js"):
            middle = seg[4:-3]
            parts.append("app.:hex.js" if len(middle) >= 8 and all(c in "0123456789abcdef" for c in middle)
                         else seg)
        else:
            parts.append(seg)
    return "/".join(parts)


def _client(rng: random.Random, ipv6: float, pool_v4: list[str], pool_v6: list[str]) -> str:
    return rng.choice(pool_v6) if rng.random() < ipv6 else rng.choice(pool_v4)


def _escape(agent: str) -> str:
    return agent.replace("\\", "\\\\").replace('"', '\\"')


def make_file(rng: random.Random, cfg: dict, n_lines: int, start_s: int) -> tuple[list[str], dict]:
    pool_v4 = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
               for _ in range(900)]
    pool_v6 = [f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}" for _ in range(200)]
    users = [f"u{rng.randint(1000, 99999)}" for _ in range(400)]
    # Small pools keep the compressed data small (the bounty ships under 1 MB) while
    # still giving hundreds of distinct clients, users and object ids per file.
    hex_ids = ["%0*x" % (n, rng.getrandbits(4 * n)) for n in (8, 12, 16) for _ in range(60)]
    lines: list[str] = []
    records: list[dict] = []
    malformed = 0
    t_ms = start_s * 1000
    for _ in range(n_lines):
        t_ms += rng.randint(1, 900)
        roll = rng.random()
        if roll < 0.015:
            lines.append(rng.choice(GARBAGE))
            malformed += 1
            continue
        if roll < 0.025:
            lines.append("    at handler.%s(%s.py:%d)" % (rng.choice(["get", "post", "auth"]),
                                                        rng.choice(["views", "db", "cache"]), rng.randint(1, 900)))
            malformed += 1
            continue
        secs, ms = divmod(t_ms, 1000)
        h, rem = divmod(secs % 86400, 3600)
        m, s = divmod(rem, 60)
        ts = f"{cfg['day']}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"
        host = rng.choice(cfg["hosts"])
        level = rng.choice(LEVELS)
        ip = _client(rng, cfg["ipv6"], pool_v4, pool_v6)
        method = rng.choice(METHODS)
        path = _fill(rng.choice(ROUTES), rng, hex_ids) + _fill(rng.choice(QUERIES), rng, hex_ids)
        proto = rng.choice(PROTOCOLS)
        status = rng.choice(STATUSES)
        size = 0 if status in (204, 304) or rng.random() < 0.03 else rng.randint(8, 15_000) * 16
        size_text = "-" if size == 0 and rng.random() < 0.7 else str(size)
        dur_us = 10 * int(rng.lognormvariate(math.log(2_500), 1.1))  # microseconds, long-tailed
        if dur_us >= 1_000_000 or rng.random() < 0.1:
            dur_text = f"{dur_us / 1_000_000:.6f}".rstrip("0").rstrip(".") + "s"
        else:
            dur_text = f"{dur_us / 1000:.3f}".rstrip("0").rstrip(".") + "ms"
        agent = rng.choice(QUOTED_AGENTS) if rng.random() < cfg["escaped"] else rng.choice(AGENTS)
        extras = []
        if rng.random() < 0.25:
            extras.append(f"req={rng.getrandbits(24):06x}")
        user = None
        if rng.random() < 0.5:
            user = rng.choice(users)
            extras.append(f"user={user}")
        if rng.random() < 0.2:
            extras.append(f"region={rng.choice(['eu', 'us', 'ap'])}")
        rng.shuffle(extras)
        line = (f'{ts} {host} {level} {ip} "{method} {path} {proto}" {status} {size_text} {dur_text} '
                f'"{_escape(agent)}"' + "".join(" " + e for e in extras))
        if rng.random() < 0.01:
            # Truncated write: cut before the user agent's closing quote, so the line is malformed.
            cut = rng.randint(len(ts) + 1, line.index(f'"{_escape(agent)}"') + len(_escape(agent)))
            lines.append(line[:cut])
            malformed += 1
            continue
        lines.append(line)
        records.append(dict(ts=ts, host=host, level=level, ip=ip, path=_template(path), status=status,
                            size=size, ms=round(dur_us / 1000, 3), user=user, t_ms=t_ms % 86_400_000))
    return lines, expected_report(records, len(lines), malformed)


def expected_report(records: list[dict], n_lines: int, malformed: int) -> dict:
    levels: dict[str, int] = {}
    status: dict[str, int] = {}
    hosts: dict[str, dict[str, int]] = {}
    hourly: dict[str, int] = {}
    by_path: dict[str, list[float]] = {}
    for r in records:
        levels[r["level"]] = levels.get(r["level"], 0) + 1
        cls = f"{r['status'] // 100}xx"
        status[cls] = status.get(cls, 0) + 1
        h = hosts.setdefault(r["host"], {"requests": 0, "bytes": 0})
        h["requests"] += 1
        h["bytes"] += r["size"]
        hourly[r["ts"][:13]] = hourly.get(r["ts"][:13], 0) + 1
        by_path.setdefault(r["path"], []).append(r["ms"])
    ranked = sorted(by_path, key=lambda p: (-len(by_path[p]), p))[:10]
    top = []
    for p in ranked:
        ms = sorted(by_path[p])
        top.append([p, len(ms), ms[max(0, math.ceil(0.95 * len(ms)) - 1)]])
    slowest = max(records, key=lambda r: r["ms"])  # max() keeps the first of equal durations
    times: dict[str, list[int]] = {}
    for r in records:
        times.setdefault(r["ip"], []).append(r["t_ms"])
    sessions = 0
    for ts_list in times.values():
        ts_list.sort()
        sessions += 1 + sum(1 for a, b in zip(ts_list, ts_list[1:]) if b - a > SESSION_GAP_MS)
    return {
        "lines": n_lines,
        "malformed": malformed,
        "levels": dict(sorted(levels.items())),
        "status": dict(sorted(status.items())),
        "hosts": dict(sorted(hosts.items())),
        "top_paths": top,
        "hourly": dict(sorted(hourly.items())),
        "clients": len({r["ip"] for r in records}),
        "users": len({r["user"] for r in records if r["user"]}),
        "sessions": sessions,
        "slowest": [slowest["ts"], slowest["path"], slowest["ms"]],
    }


def write_xz(path: Path, lines: list[str]) -> None:
    # xz rather than gzip: about a fifth smaller on these logs, and just as deterministic.
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def main() -> None:
    canaries_public: dict[str, dict] = {}
    for name, cfg in SETS.items():
        rng = random.Random(cfg["seed"])
        inputs = HERE / name / "inputs"
        labels = HERE / name / "labels"
        inputs.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for old in inputs.glob("*.log.xz"):
            old.unlink()
        expected: dict[str, dict] = {}
        for i in range(cfg["files"]):
            lines, report = make_file(rng, cfg, cfg["lines"], start_s=i * 5400 + rng.randint(0, 600))
            fname = f"access-{i + 1:02d}.log.xz"
            write_xz(inputs / fname, lines)
            expected[fname] = report
        lines, report = make_file(rng, cfg, CANARY_LINES, start_s=20 * 3600)
        write_xz(inputs / "canary.log.xz", lines)
        expected["canary.log.xz"] = report
        if name == "public":
            canaries_public["canary.log.xz"] = report
        (labels / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    (HERE / "public" / "canaries.json").write_text(json.dumps(canaries_public, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
    import honeypots  # every held-out set gets its honeypots again (tools/honeypots.py)

    honeypots.main()
