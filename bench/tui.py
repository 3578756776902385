"""TUI figures: cold start to first paint, idle CPU, scrolling 10,000 submissions, RSS.

    .venv/bin/python bench/tui.py [--idle-seconds 30] [--rows 10000]

Start-up, idle CPU and RSS are measured on the real `l402tui` process in a tmux
pane at 120x40 (what a user runs), read from /proc; scrolling is measured headless
with Textual's pilot (key press -> handled -> screen composed), since a terminal
adds nothing we control.  Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
L402TUI = str(ROOT / ".venv" / "bin" / "l402tui")
TICKS = os.sysconf("SC_CLK_TCK")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def seed_rows(db: Path, n: int) -> None:
    from tests.tui.seed import NOW, seed

    seed(db, db.parent / "logs")
    from l402tui.store import open_sync

    handle = open_sync(db)
    with handle.conn:
        handle["submissions"].insert_all(
            ({"id": f"s_bench{i:06d}", "bounty_id": "b_logparse01", "status": ("REJECTED", "ACCEPTED", "QUEUED")[i % 3],
              "diff": "x", "claimed_score": 0.8 + (i % 100) / 1000, "reasons": "bench row",
              "verdict_json": json.dumps({"metrics": {"f1": 0.8}}), "created_at": NOW - i, "updated_at": NOW}
             for i in range(n)), batch_size=1000)
    handle.close()


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def app_pid(session: str) -> int:
    shell = int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())
    out = subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else shell


def run_in_tmux(args: list[str], env: dict[str, str], session: str, idle_s: float) -> dict[str, float]:
    """Start `l402tui args` in a 120x40 tmux pane; time first paint and first rows; idle CPU; RSS."""
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    command = " ".join([L402TUI, *args])
    start = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    *[f"-e{k}={v}" for k, v in env.items()], command], check=True)
    first_paint = data_shown = None
    deadline = start + 60
    while time.perf_counter() < deadline and data_shown is None:
        screen = tmux("capture-pane", "-p", "-t", session)
        now = time.perf_counter()
        if first_paint is None and "l402tui" in screen and "Bounties" in screen:
            first_paint = now - start
        if "bounties ·" in screen:  # the status line's summary: the source answered
            data_shown = now - start
        time.sleep(0.01)
    pid = app_pid(session)
    time.sleep(2.0)  # let start-up work settle before measuring idle
    cpu0, t0 = proc_cpu_s(pid), time.perf_counter()
    time.sleep(idle_s)
    idle_pct = 100.0 * (proc_cpu_s(pid) - cpu0) / (time.perf_counter() - t0)
    rss = proc_rss_mb(pid)
    tmux("send-keys", "-t", session, "q")
    time.sleep(0.5)
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    return {"first_paint_s": first_paint or float("nan"), "data_shown_s": data_shown or float("nan"),
            "idle_cpu_pct": idle_pct, "rss_mb": rss}


async def scroll_pages(db: Path, rows: int, pages: int) -> dict[str, float]:
    from tests.tui.conftest import FixedGpu, FixedHost
    from l402tui.tui.app import L402App
    from l402tui.tui.store_source import StoreSource

    async def factory():
        return await StoreSource.open(db)

    app = L402App(factory, gpu=FixedGpu(False), host=FixedHost(), telemetry_interval_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.main_screen.query_one("#submissions-table")
        t0 = time.perf_counter()
        while len(table.records) < rows:
            await pilot.pause(0.01)
        loaded = time.perf_counter() - t0
        await pilot.press("2")
        table.focus()
        await pilot.pause()
        timings = []
        for _ in range(pages):
            t = time.perf_counter()
            await pilot.press("pagedown")
            await pilot.pause()  # the message queue drained: the new page is laid out and composed
            timings.append(time.perf_counter() - t)
        assert table.cursor_row > 0
    return {"load_rows_s": loaded, "page_ms_median": 1000 * statistics.median(timings),
            "page_ms_p95": 1000 * sorted(timings)[int(0.95 * (len(timings) - 1))], "rows": len(table.records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=40)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed: apt-get install tmux")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        db = data / "l402tui.sqlite"
        seed_rows(db, args.rows)
        env = {"XDG_CONFIG_HOME": str(Path(tmp) / "config"), "L402TUI_COORDINATOR__PORT": "0"}
        print(f"load average before: {os.getloadavg()[0]:.2f} (2-core machine)")
        ro = run_in_tmux(["--data-dir", str(data), "tui", "--read-only"], env, "l402bench", args.idle_seconds)
        print(f"read-only view, {args.rows:,} submissions: first paint {ro['first_paint_s']:.2f} s, rows shown "
              f"{ro['data_shown_s']:.2f} s, idle CPU {ro['idle_cpu_pct']:.2f} % of a core over "
              f"{args.idle_seconds:.0f} s, RSS {ro['rss_mb']:.0f} MB")
        fresh = Path(tmp) / "fresh"
        ip = run_in_tmux(["--data-dir", str(fresh)], env, "l402bench", args.idle_seconds)
        print(f"in-process coordinator (sim network, empty): first paint {ip['first_paint_s']:.2f} s, coordinator "
              f"up {ip['data_shown_s']:.2f} s, idle CPU {ip['idle_cpu_pct']:.2f} % of a core, RSS {ip['rss_mb']:.0f} MB")
        scroll = asyncio.run(scroll_pages(db, min(args.rows + 5, 10_000), args.pages))  # the pane shows the newest 10,000
        print(f"scrolling {scroll['rows']:,} submissions (headless pilot, 120x40): loaded in "
              f"{scroll['load_rows_s']:.2f} s, page down median {scroll['page_ms_median']:.1f} ms, "
              f"p95 {scroll['page_ms_p95']:.1f} ms")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
