"""TUI figures: cold start to first paint, idle CPU, scrolling 10,000 submissions, RSS; the same with charts on screen.

    .venv/bin/python bench/tui.py [--idle-seconds 30] [--rows 10000] [--starts 5]

Start-up, idle CPU, RSS and thread count are measured on the real `l402tui` process on
a 120x40 pseudo-terminal (what a terminal or tmux gives it), read from /proc; scrolling
is measured headless with Textual's pilot (key press -> handled -> screen composed),
since a terminal adds nothing we control.  Prints figures; asserts nothing.

With charts: the read-only view is started, `/logparse` Enter Enter opens that bounty's
detail (the held-out score chart and the pool chart), and idle CPU and RSS are read while
the charts stay on screen; "chart shown" is the time from the keys to the chart's title.

Bytecode: an installed package has its .pyc files (pip compiles them), but a dev shell
may set PYTHONDONTWRITEBYTECODE, which would make every start compile l402tui from
source.  The child processes use a private PYTHONPYCACHEPREFIX and one unmeasured start
fills it, so "cold" means a new process, as a user's every start is.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import select
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
COMMAND = [sys.executable, "-m", "l402tui.cli"]
TICKS = os.sysconf("SC_CLK_TCK")


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


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


CHART_KEYS = b"/logparse\r\r"  # filter the bounties to logparse, keep the filter, open its detail
CHART_MARKER = b"by submission"  # the score chart's title


def run_in_pty(argv: list[str], env: dict[str, str], idle_s: float, open_keys: bytes = b"",
               opened_marker: bytes = b"") -> dict[str, float]:
    """Start `argv` on a 120x40 pseudo-terminal (what a terminal or tmux gives it); time
    the first frame and the first data; with ``open_keys``, type them once the data is
    shown and time until ``opened_marker`` is drawn; then idle CPU, RSS and threads from /proc."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the TUI
        os.execvpe(argv[0], argv, {**os.environ, **env, "TERM": "xterm-256color"})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = time.perf_counter()
    seen = b""
    first_paint = data_shown = opened = None
    keys_sent_at: float | None = None
    stop = threading.Event()

    def drain() -> None:  # keep reading, or the TUI blocks on a full terminal buffer
        nonlocal seen, first_paint, data_shown, opened
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            now = time.perf_counter()
            if first_paint is None or data_shown is None or (opened_marker and opened is None):
                seen = (seen + chunk)[-200_000:]
                if first_paint is None and b"Bounties" in seen:
                    first_paint = now - start
                if data_shown is None and (b"bounties \xc2\xb7" in seen or b"bounties \xb7" in seen):
                    data_shown = now - start
                    seen = b""  # the opened marker must come after the keys
                if keys_sent_at is not None and opened is None and opened_marker in seen:
                    opened = now - keys_sent_at

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = start + 60
    while time.perf_counter() < deadline and data_shown is None:
        time.sleep(0.01)
    if open_keys and data_shown is not None:
        time.sleep(0.5)  # the table has its rows and focus
        keys_sent_at = time.perf_counter()
        for key in open_keys:  # one key at a time, as typed
            os.write(fd, bytes([key]))
            time.sleep(0.05)
        while time.perf_counter() < deadline + 30 and opened is None:
            time.sleep(0.01)
    idle_pct = rss = threads = float("nan")
    if idle_s > 0:
        time.sleep(2.0)  # let start-up work settle before measuring idle
        cpu0, t0 = proc_cpu_s(pid), time.perf_counter()
        time.sleep(idle_s)
        idle_pct = 100.0 * (proc_cpu_s(pid) - cpu0) / (time.perf_counter() - t0)
        rss, threads = proc_rss_mb(pid), thread_count(pid)
    if open_keys:
        os.write(fd, b"\x1b")  # esc closes the detail first (sent alone: "\x1bq" reads as alt+q)
        time.sleep(0.3)
    os.write(fd, b"q")
    try:
        for _ in range(100):
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    finally:
        stop.set()
        os.close(fd)
    return {"first_paint_s": first_paint or float("nan"), "data_shown_s": data_shown or float("nan"),
            "opened_s": float("nan") if opened is None else opened,
            "idle_cpu_pct": idle_pct, "rss_mb": rss, "threads": threads}


def spread(values: list[float]) -> str:
    values = sorted(values)
    return f"median {statistics.median(values):.2f} s (min {values[0]:.2f}, max {values[-1]:.2f}, n={len(values)})"


async def scroll_pages(db: Path, rows: int, pages: int) -> dict[str, float]:
    from tests.tui.conftest import FixedGpu, FixedHost
    from l402tui.tui.app import L402App
    from l402tui.tui.store_source import StoreSource

    async def factory():
        return await StoreSource.open(db)

    app = L402App(factory, gpu=FixedGpu(False), host=FixedHost(), telemetry_interval_s=3600)
    app.animation_level = "none"
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
        # What the pilot itself costs per key (its waits for idle and a refresh): an unbound key.
        idle_keys = []
        for _ in range(pages):
            t = time.perf_counter()
            await pilot.press("f12")
            await pilot.pause()
            idle_keys.append(time.perf_counter() - t)
        # The table's own share: move a page and draw every visible line (the pilot adds its waits).
        renders = []
        for _ in range(pages):
            t = time.perf_counter()
            table.action_page(1)
            for y in range(table.size.height):
                table.render_line(y)
            renders.append(time.perf_counter() - t)
        # Filtering (`/` then typing): the first keystroke builds the search text of every row,
        # each later one is a pass of substring tests; both include drawing the page after.
        def timed_filter(text: str) -> float:
            t = time.perf_counter()
            table.set_filter(text)
            for y in range(table.size.height):
                table.render_line(y)
            return 1000 * (time.perf_counter() - t)

        first_filter = timed_filter("s")
        typing = [timed_filter(prefix) for prefix in ("s_b", "s_be", "s_bench0", "s_bench00", "s_bench001", "s_bench0012")]
        table.set_filter("")
        matched = len(table.records)
    return {"load_rows_s": loaded, "render_ms_median": 1000 * statistics.median(renders),
            "filter_first_ms": first_filter, "filter_key_ms_median": statistics.median(typing),
            "filter_key_ms_max": max(typing), "filter_rows": matched,
            "pilot_ms_median": 1000 * statistics.median(idle_keys),
            "page_ms_median": 1000 * statistics.median(timings),
            "page_ms_p95": 1000 * sorted(timings)[int(0.95 * (len(timings) - 1))], "rows": len(table.records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--starts", type=int, default=5, help="measured starts of each view (first paint)")
    parser.add_argument("--no-coordinator", action="store_true",
                        help="skip the in-process coordinator run (where its dependencies are missing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        db = data / "l402tui.sqlite"
        seed_rows(db, args.rows)
        env = {"XDG_CONFIG_HOME": str(Path(tmp) / "config"), "L402TUI_COORDINATOR__PORT": "0",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"), "PYTHONDONTWRITEBYTECODE": ""}
        print(f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")
        read_only = [*COMMAND, "--data-dir", str(data), "tui", "--read-only"]
        run_in_pty(read_only, env, 0)  # fills the bytecode cache (see the module docstring)
        starts = [run_in_pty(read_only, env, 0) for _ in range(args.starts)]
        print(f"read-only view, {args.rows:,} submissions: first paint {spread([r['first_paint_s'] for r in starts])}; "
              f"rows shown {spread([r['data_shown_s'] for r in starts])}")
        ro = run_in_pty(read_only, env, args.idle_seconds)
        print(f"read-only view idle: CPU {ro['idle_cpu_pct']:.2f} % of a core over {args.idle_seconds:.0f} s, "
              f"RSS {ro['rss_mb']:.0f} MB, {ro['threads']:.0f} threads")
        charts = [run_in_pty(read_only, env, 0, CHART_KEYS, CHART_MARKER) for _ in range(args.starts)]
        print(f"read-only view, bounty detail with its charts: first paint {spread([r['first_paint_s'] for r in charts])}; "
              f"charts shown {spread([r['opened_s'] for r in charts])} after the keys")
        ch = run_in_pty(read_only, env, args.idle_seconds, CHART_KEYS, CHART_MARKER)
        print(f"bounty detail with charts on screen, idle: CPU {ch['idle_cpu_pct']:.2f} % of a core over "
              f"{args.idle_seconds:.0f} s, RSS {ch['rss_mb']:.0f} MB, {ch['threads']:.0f} threads"
              + ("" if ch["opened_s"] == ch["opened_s"] else " (the charts never showed: figures are without them)"))
        if not args.no_coordinator:
            fresh = iter(range(10**6))

            def in_process(idle_s: float) -> dict[str, float]:
                return run_in_pty([*COMMAND, "--data-dir", str(Path(tmp) / f"fresh{next(fresh)}")], env, idle_s)

            starts = [in_process(0) for _ in range(args.starts)]
            print(f"in-process coordinator (sim network, empty): first paint "
                  f"{spread([r['first_paint_s'] for r in starts])}; coordinator up "
                  f"{spread([r['data_shown_s'] for r in starts])}")
            ip = in_process(args.idle_seconds)
            print(f"in-process coordinator idle: CPU {ip['idle_cpu_pct']:.2f} % of a core over "
                  f"{args.idle_seconds:.0f} s, RSS {ip['rss_mb']:.0f} MB, {ip['threads']:.0f} threads")
        scroll = asyncio.run(scroll_pages(db, min(args.rows + 5, 10_000), args.pages))  # the pane shows 10,000
        print(f"scrolling {scroll['rows']:,} submissions (headless pilot, 120x40): loaded in "
              f"{scroll['load_rows_s']:.2f} s, page down median {scroll['page_ms_median']:.1f} ms "
              f"(of which the pilot's own wait for an unbound key: {scroll['pilot_ms_median']:.1f} ms; the table "
              f"moving a page and drawing it: {scroll['render_ms_median']:.1f} ms), p95 {scroll['page_ms_p95']:.1f} ms")
        print(f"filtering {scroll['filter_rows']:,} submissions: first keystroke (builds the search text) "
              f"{scroll['filter_first_ms']:.1f} ms, each further keystroke median {scroll['filter_key_ms_median']:.1f} ms, "
              f"max {scroll['filter_key_ms_max']:.1f} ms (filter + draw the page; target < 50 ms)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
