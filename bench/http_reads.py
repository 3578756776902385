"""Read throughput of `l402tui serve` against a bare aiohttp hello-world, same run, same box.

    .venv/bin/python bench/http_reads.py [--duration 5] [--connections 16] [--rounds 3] [--bounties N]

Measures with wrk (installed with apt-get when missing and we are root) GET /api/v1/status
and GET /api/v1/bounties on a real `serve` (its evaluation worker included), and GET / on a
hello-world aiohttp app, first idle, then while evaluations run in every worker slot
(bounties whose baselines burn CPU in the sandbox).  The URLs take turns, round after
round, so a neighbour's load on a shared box falls on all of them alike; each figure is
the median over the rounds, and each ratio the median of the rounds' ratios to the
hello-world measured in the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.coordinator.conftest import make_bounty  # noqa: E402

HELLO = """
from aiohttp import web
async def hello(request):
    return web.json_response({"hello": "world"})
app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), access_log=None, print=None)
"""
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    pass\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed: apt-get install wrk")
    return found


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{url} did not answer")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(tool: str, url: str, duration: int, connections: int, pid: int) -> tuple[float, float]:
    """(requests/s, server CPU µs per request) of one wrk run against the server ``pid``."""
    before = cpu_s(pid)
    out = subprocess.run([tool, "-t2", f"-c{connections}", f"-d{duration}s", url], capture_output=True,
                         text=True, check=True).stdout
    used = cpu_s(pid) - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx answers from {url}")
    return rps, used / max(requests, 1) * 1e6


def rounds_of(tool: str, urls: dict[str, tuple[str, int]], duration: int, connections: int,
              rounds: int) -> list[dict[str, tuple[float, float]]]:
    names = list(urls)
    out = []
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # each URL takes each place in turn
        out.append({name: wrk(tool, urls[name][0], duration, connections, urls[name][1]) for name in order})
        print(f"  round {r + 1}: " + ", ".join(f"{n} {out[-1][n][0]:.0f}/s {out[-1][n][1]:.0f} µs"
                                               for n in names), flush=True)
    return out


def admin_get(base: str, token: str, path: str) -> dict:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def running_evaluations(base: str, token: str, *states: str) -> int:
    rows = admin_get(base, token, "/api/v1/admin/evaluations?limit=100")["evaluations"]
    return sum(1 for r in rows if r["status"] in (states or ("RUNNING",)))


def listing(base: str) -> str:
    body = urllib.request.urlopen(base + "/api/v1/bounties", timeout=30).read()
    return f"/api/v1/bounties lists {len(json.loads(body)['bounties'])} bounties in {len(body)} bytes"


def post_bounty(base: str, token: str, folder: Path) -> None:
    request = urllib.request.Request(base + "/api/v1/admin/bounties", method="POST",
                                     data=json.dumps({"path": str(folder), "self_funded": True}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=60).read()


def wait_for(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.5)


def report(label: str, figures: list[dict[str, tuple[float, float]]]) -> None:
    """Per URL: median req/s, median ratio to the same round's hello-world, and the server's
    CPU per request (and hello-world's over it: the share of hello-world's throughput the
    server would reach if each had a core to itself)."""
    print(f"{label}:")
    for name in figures[0]:
        rps = statistics.median(f[name][0] for f in figures)
        ratio = statistics.median(f[name][0] / f["hello-world"][0] for f in figures)
        spread = " ".join(f"{f[name][0] / f['hello-world'][0]:.2f}" for f in figures)
        cpu = statistics.median(f[name][1] for f in figures)
        cpu_ratio = statistics.median(f["hello-world"][1] / f[name][1] for f in figures)
        print(f"  {name:18} {rps:7.0f} req/s {ratio:5.2f}x hello-world (rounds: {spread});  "
              f"CPU {cpu:4.0f} µs/request, {cpu_ratio:.2f}x hello-world's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bounties", type=int, default=os.cpu_count() or 1,
                        help="bounties whose baselines keep the worker's slots busy (default: one per core)")
    args = parser.parse_args()
    tool = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="l402bench-http-"))
    hello_port, serve_port = free_port(), free_port()
    env = {**os.environ, "L402TUI_RATE_LIMITS__PER_IP_PER_MINUTE": "100000000",
           "L402TUI_EVALUATION__MAX_CONCURRENT": str(args.bounties)}
    procs = [subprocess.Popen([sys.executable, "-c", HELLO, str(hello_port)]),
             subprocess.Popen([sys.executable, "-m", "l402tui.cli", "--data-dir", str(tmp / "data"), "serve",
                               "--port", str(serve_port), "--log-level", "warning"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL)]
    try:
        hello, base = f"http://127.0.0.1:{hello_port}/", f"http://127.0.0.1:{serve_port}"
        wait_http(hello)
        wait_http(base + "/api/v1/status")
        urls = {"hello-world": (hello, procs[0].pid), "/api/v1/status": (base + "/api/v1/status", procs[1].pid),
                "/api/v1/bounties": (base + "/api/v1/bounties", procs[1].pid)}
        print(f"wrk {args.duration}s x {args.connections} connections per URL, {args.rounds} rounds, "
              f"{os.cpu_count()} cores")
        token = (tmp / "data" / "admin.macaroon").read_text().strip()
        # Idle: as many bounties listed as there are slots, their (short) baselines done.
        for i in range(args.bounties):
            post_bounty(base, token, make_bounty(tmp / "sponsor", name=f"listed{i}"))
        wait_for(lambda: running_evaluations(base, token, "QUEUED", "RUNNING") == 0, 60)
        print(f"idle: {listing(base)}")
        idle = rounds_of(tool, urls, args.duration, args.connections, args.rounds)
        burn_s = args.rounds * len(urls) * args.duration * 2 + 30  # CPU seconds: outlasts the busy rounds
        for i in range(args.bounties):
            folder = make_bounty(tmp / "sponsor", name=f"burn{i}")
            solve = folder / "target" / "solve.py"
            solve.write_text(BURN.format(s=burn_s) + solve.read_text())
            spec = folder / "bounty.toml"  # the run's time limit must outlast the burn
            spec.write_text(spec.read_text().replace("timeout_s = 30", f"timeout_s = {burn_s * 4}", 1))
            post_bounty(base, token, folder)
        wait_for(lambda: running_evaluations(base, token) >= args.bounties, 30)
        before = running_evaluations(base, token)
        print(f"evaluations running: {before} (baselines burning CPU in the sandbox); {listing(base)}")
        busy = rounds_of(tool, urls, args.duration, args.connections, args.rounds)
        after = running_evaluations(base, token)
        print(f"evaluations still running at the end: {after}")
        report("idle", idle)
        report(f"{before} evaluations running", busy)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
