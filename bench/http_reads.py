"""Read throughput of `l402tui serve` against a bare aiohttp hello-world, same run, same box.

    .venv/bin/python bench/http_reads.py [--duration 10] [--connections 32] [--bounties 4]

Measures with wrk (installed with apt-get when missing and we are root) GET /api/v1/status
and GET /api/v1/bounties on a real `serve`, and GET / on a hello-world aiohttp app, first
idle, then while evaluations run in every worker slot (bounties whose baselines burn CPU
in the sandbox).  Prints requests/s and the ratio to hello-world.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
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


def wrk(tool: str, url: str, duration: int, connections: int) -> float:
    out = subprocess.run([tool, "-t2", f"-c{connections}", f"-d{duration}s", url], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"  warning: {non2xx.group(1)} non-2xx answers from {url}")
    return float(m.group(1))


def round_of(tool: str, urls: dict[str, str], duration: int, connections: int) -> dict[str, float]:
    return {name: wrk(tool, url, duration, connections) for name, url in urls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bounties", type=int, default=4, help="bounties whose baselines keep the worker busy")
    args = parser.parse_args()
    tool = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="l402bench-http-"))
    hello_port, serve_port = free_port(), free_port()
    env = {**os.environ, "L402TUI_RATE_LIMITS__PER_IP_PER_MINUTE": "100000000",
           "L402TUI_EVALUATION__MAX_CONCURRENT": str(os.cpu_count() or 1)}
    procs = [subprocess.Popen([sys.executable, "-c", HELLO, str(hello_port)]),
             subprocess.Popen([sys.executable, "-m", "l402tui.cli", "--data-dir", str(tmp / "data"), "serve",
                               "--port", str(serve_port), "--log-level", "warning"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL)]
    try:
        hello, base = f"http://127.0.0.1:{hello_port}/", f"http://127.0.0.1:{serve_port}"
        wait_http(hello)
        wait_http(base + "/api/v1/status")
        urls = {"hello-world": hello, "/api/v1/status": base + "/api/v1/status",
                "/api/v1/bounties": base + "/api/v1/bounties"}
        print(f"wrk {args.duration}s x {args.connections} connections, {os.cpu_count()} cores")
        idle = round_of(tool, urls, args.duration, args.connections)
        token = (tmp / "data" / "admin.macaroon").read_text().strip()
        for i in range(args.bounties):
            folder = make_bounty(tmp / "sponsor", name=f"burn{i}")
            solve = folder / "target" / "solve.py"
            solve.write_text(BURN.format(s=max(args.duration * 3, 20)) + solve.read_text())
            request = urllib.request.Request(base + "/api/v1/admin/bounties", method="POST",
                                             data=json.dumps({"path": str(folder), "self_funded": True}).encode(),
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=60).read()
        time.sleep(2)  # the worker takes them
        busy = round_of(tool, urls, args.duration, args.connections)
        for label, figures in (("idle", idle), ("evaluations running", busy)):
            print(f"{label}:")
            for name, rps in figures.items():
                print(f"  {name:18} {rps:9.0f} req/s  {rps / figures['hello-world']:.2f}x hello-world")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
