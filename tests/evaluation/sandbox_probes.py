"""A probe program run through a sandbox exactly as the harness runs code, and the
hostile probes more than one test file throws at a sandbox.  (A module of its own, not
conftest, so test modules can import it by a unique name.)"""

from __future__ import annotations

import textwrap
from pathlib import Path

from l402tui.evaluation.sandbox import Layout, Limits
from l402tui.evaluation.untrusted_log import LogSink

SMALL = Limits(memory_mb=128, cpus=1, time_limit_s=10, pids=64)

# Forks until refused; bounded so that a broken sandbox cannot take the machine down.
FORK_BOMB = """
    import os, time
    children = 0
    try:
        for _ in range(500):
            if os.fork() == 0:
                time.sleep(5)
                os._exit(0)
            children += 1
    except OSError as exc:
        print("fork refused after", children)
    else:
        print("forked", children)
"""

# Touches 1 GiB, far above SMALL's memory limit.
MEMORY_HOG = """
    chunks = []
    for _ in range(64):
        chunk = bytearray(16 * 1024 * 1024)
        for i in range(0, len(chunk), 4096):
            chunk[i] = 1
        chunks.append(chunk)
    print("allocated 1 GiB")
"""


def run_probe(sandbox, base: Path, code: str, limits: Limits = SMALL, cap: int = 64 * 1024):
    """Run ``code`` (dedented) as probe.py in ``base``'s work dir; returns (outcome, log lines, layout)."""
    layout = Layout(base / "work", base / "inputs", base / "artifacts")
    for d in (layout.workdir, layout.inputs, layout.artifacts):
        d.mkdir(parents=True, exist_ok=True)
    (layout.inputs / "data.txt").write_text("input-data")
    (layout.workdir / "probe.py").write_text(textwrap.dedent(code))
    lines: list[str] = []
    sink = LogSink(base / "run.log", cap, lines.append)
    places = sandbox.placeholders(layout)
    outcome = sandbox.run(["python3", "probe.py", places["inputs"], places["artifacts"]], layout, limits, log=sink)
    return outcome, lines, layout
