"""Loop overhead per experiment, excluding the evaluation, against a plain shell loop.

    .venv/bin/python bench/agent_loop.py [--experiments 200] [--rounds 3]

The agent side: the real ExperimentLoop on a real work tree (gitpython) with a
proposer that rewrites one constant and an evaluator that answers at once (half the
experiments improve, half do not, so keep and discard paths are both timed).  What
is left is the loop's own cost: proposal bookkeeping, change detection, the
candidate commit, the diff, the keep commit or hard reset, results.tsv, best.json
and the events.  The reference: a bash loop doing the bare minimum autoresearch asks
of git per experiment (edit, ``git commit -qam``, and ``git reset -q --hard HEAD~1``
for a discard), in the same run, on the same disk.  Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "agent"))

from agent_fixtures import make_bounty  # noqa: E402  (the tests' tiny real bounty)

from l402tui.agent.events import ExperimentFinished  # noqa: E402
from l402tui.agent.loop import ExperimentLoop  # noqa: E402
from l402tui.agent.proposers import Proposal  # noqa: E402
from l402tui.agent.public_eval import PublicScore  # noqa: E402
from l402tui.agent.workspace import Workspace  # noqa: E402
from l402tui.bounty import load_bounty  # noqa: E402
from l402tui.bounty.package import build_package  # noqa: E402


class CountingProposer:
    name = "bench"

    async def propose(self, ctx) -> Proposal:
        model = ctx.target / "model.py"
        lines = model.read_text().splitlines(keepends=True)
        lines[0] = f"GUESS = {ctx.experiment}.0  # search: float(0.01, 1000.0, log)\n"
        model.write_text("".join(lines))
        return Proposal(f"GUESS {ctx.experiment}")


class InstantEvaluator:
    """Every other experiment is better than the best so far."""

    def __init__(self) -> None:
        self.calls = 0
        self.best = 1000.0

    async def evaluate(self, candidate, repeats: int) -> PublicScore:
        self.calls += 1
        if self.calls % 2 == 1:
            self.best -= 1.0
            value = self.best
        else:
            value = self.best + 5.0
        return PublicScore({"error": value}, {"error": 0.0}, 1, 50.0)


async def agent_round(n: int, work: Path) -> list[float]:
    bounty = make_bounty(work / "bounty")
    ws = Workspace.create(work / "ws", build_package(load_bounty(bounty)).data, branch="l402tui/bench")
    durations: list[float] = []

    def on_event(event) -> None:
        if isinstance(event, ExperimentFinished):
            durations.append(event.duration_s)

    loop = ExperimentLoop(ws, CountingProposer(), InstantEvaluator(), on_event=on_event)
    await loop.prepare()  # the baseline evaluation is not an experiment
    await loop.run(max_experiments=n)
    statuses = [r.status for r in loop.log.read()[1:]]
    assert statuses.count("keep") and statuses.count("discard"), statuses
    return durations


SHELL_LOOP = r'''
set -e
cd "$1"; n="$2"
for i in $(seq 1 "$n"); do
  sed -i "1s/.*/GUESS = $i.0/" target/model.py
  git commit -qam "experiment $i"
  if [ $((i % 2)) -eq 0 ]; then git reset -q --hard HEAD~1; fi
done
'''


def shell_round(n: int, work: Path) -> float:
    make_bounty(work / "shell")
    repo = work / "shell"
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=repo, check=True, env=env)
    started = time.perf_counter()
    subprocess.run(["bash", "-c", SHELL_LOOP, "bench", str(repo), str(n)], check=True, env=env)
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.experiments} experiments per round, {args.rounds} rounds, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'round':>5}  {'agent mean ms':>13}  {'p50':>6}  {'p95':>6}  {'shell loop ms':>13}  {'agent/shell':>11}")
    ratios = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            durations = asyncio.run(agent_round(args.experiments, Path(tmp)))
            shell = shell_round(args.experiments, Path(tmp))
        ms = [d * 1000 for d in durations]
        mean = statistics.mean(ms)
        p95 = statistics.quantiles(ms, n=20)[-1]
        ratios.append(mean / (shell * 1000))
        print(f"{r + 1:>5}  {mean:13.1f}  {statistics.median(ms):6.1f}  {p95:6.1f}  {shell * 1000:13.1f}  "
              f"{ratios[-1]:11.2f}")
    print(f"agent/shell loop time ratio: median {statistics.median(ratios):.2f} (target: <= 1.0, and <= 50 ms)")


if __name__ == "__main__":
    main()
