"""Scoring a candidate on the bounty's PUBLIC set, on the agent's own machine.

The loop only needs the small :class:`Evaluator` protocol.  :class:`LocalPublicEvaluator`
follows the bounty <-> harness contract (docs/bounty-format.md) with plain
subprocesses: the *run* phase in a fresh copy of target/ with ``{inputs}`` and
``{artifacts}``, measured from outside (wall clock, rusage CPU time and peak RSS of
that command, taken by a small shim so the agent's own memory does not leak into it), then the *score* phase in the scorer folder; ``interactive`` mode
wires the predictor's stdin/stdout to the scorer's.  Each repeat starts from a fresh
copy; medians and spreads (sample stdev) are returned.  There is no sandbox: this is
the agent's own code on the agent's own machine, as with the harness's ``local`` one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from l402tui.bounty.spec import BountySpec

TAIL_CHARS = 1500
SHIM = Path(__file__).with_name("_rusage_shim.py")
_SHIM_OUTPUTS: dict[int, Path] = {}  # pid of a shim -> where it writes the command's rusage


class EvalFailed(Exception):
    """The candidate could not be scored (a crash, a timeout, no metrics); the text says why."""


@dataclass(frozen=True)
class Candidate:
    spec: BountySpec
    target_dir: Path  # the work tree's target/ with the candidate in place
    diff: str  # the same change as a diff of target/ against the package baseline


@dataclass(frozen=True)
class PublicScore:
    metrics: dict[str, float]  # median per metric over the repeats
    spread: dict[str, float] = field(default_factory=dict)  # sample stdev per metric (0 for one repeat)
    repeats: int = 1
    peak_rss_mb: float = 0.0  # largest run-phase peak RSS seen over the repeats

    @property
    def memory_gb(self) -> float:
        return self.peak_rss_mb / 1024.0


class Evaluator(Protocol):
    """What the loop needs: a public-set score for a candidate, or :class:`EvalFailed`."""

    async def evaluate(self, candidate: Candidate, repeats: int) -> PublicScore: ...


@dataclass
class _Exit:
    code: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


async def _wait_all(procs: list[subprocess.Popen], timeout_s: float, what: str) -> list[_Exit]:
    """Wait for processes with os.wait4 (which gives each one's own rusage); kill their
    process groups on timeout or cancellation."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()

    def reap(proc: subprocess.Popen) -> _Exit:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # keeps Popen from reaping again
        result = _Exit(proc.returncode, time.monotonic() - started, usage.ru_utime + usage.ru_stime,
                       usage.ru_maxrss / 1024.0)
        shim_out = _SHIM_OUTPUTS.pop(proc.pid, None)
        if shim_out is not None:
            try:
                measured = json.loads(shim_out.read_text())
                result.cpu_s, result.peak_rss_mb = measured["cpu_s"], measured["peak_rss_mb"]
            except (OSError, ValueError, KeyError):
                pass  # killed before it could write: keep the shim's own (larger) figures
        return result

    futures = [loop.run_in_executor(None, reap, p) for p in procs]
    try:
        done = await asyncio.wait_for(asyncio.shield(asyncio.gather(*futures)), timeout_s)
        return list(done)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await asyncio.gather(*futures, return_exceptions=True)
        if isinstance(exc, asyncio.TimeoutError):
            raise EvalFailed(f"{what} ran past its {timeout_s:g} s limit and was killed") from None
        raise


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    text = text.strip()
    return ("…" + text[-TAIL_CHARS:]) if len(text) > TAIL_CHARS else text


def parse_metrics(stdout: str, metrics_out: Path) -> dict[str, float]:
    """The scorer's metrics: {metrics_out} if written, else the last stdout line that
    parses as a JSON object (the contract's rule)."""
    if metrics_out.is_file() and metrics_out.stat().st_size:
        try:
            data = json.loads(metrics_out.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EvalFailed(f"the scorer wrote {metrics_out.name} but it is not JSON: {exc}") from None
        if isinstance(data, dict):
            return data
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                return data
    raise EvalFailed("the scorer printed no JSON object of metrics (and wrote no {metrics_out})")


class LocalPublicEvaluator:
    """Runs both phases as plain subprocesses on the public set."""

    def __init__(self, scratch: Path | None = None, env: dict[str, str] | None = None):
        self.scratch = scratch
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONDONTWRITEBYTECODE", "1")

    async def evaluate(self, candidate: Candidate, repeats: int) -> PublicScore:
        runs = [await self.run_once(candidate) for _ in range(max(1, repeats))]
        names = sorted(set().union(*(r.keys() for r in runs)) - {"peak_rss_mb_seen"})
        medians, spread = {}, {}
        for name in names:
            values = [float(r[name]) for r in runs if name in r]
            medians[name] = statistics.median(values)
            spread[name] = statistics.stdev(values) if len(values) > 1 else 0.0
        return PublicScore(medians, spread, len(runs), max(r["peak_rss_mb_seen"] for r in runs))

    async def run_once(self, candidate: Candidate) -> dict[str, float]:
        spec = candidate.spec
        if self.scratch:
            self.scratch.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="eval-", dir=self.scratch))
        try:
            work, artifacts = tmp / "work", tmp / "artifacts"
            shutil.copytree(candidate.target_dir, work, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            artifacts.mkdir()
            public = spec.public_path
            paths = {
                "artifacts": str(artifacts), "labels": str(public / "labels"), "workdir": str(work),
                "measurements": str(tmp / "measurements.json"), "scorer": str(spec.scorer_path),
                "canaries": str(spec.root / spec.canaries) if spec.canaries else "",
                "metrics_out": str(tmp / "metrics.json"),
            }
            if spec.run.mode == "interactive":
                empty = tmp / "inputs"
                empty.mkdir()
                run_exit, score_exit = await self._interactive(spec, work, {**paths, "inputs": str(empty)}, tmp)
            else:
                paths["inputs"] = str(public / "inputs")
                run_exit = await self._batch_run(spec, work, paths, tmp)
                score_exit = None
            measured = {"wall_s": run_exit.wall_s, "cpu_s": run_exit.cpu_s, "peak_rss_mb": run_exit.peak_rss_mb}
            if spec.run.mode != "interactive":
                Path(paths["measurements"]).write_text(json.dumps(measured))
                score_exit = await self._score(spec, paths, tmp)
            assert score_exit is not None
            if score_exit.code != 0:
                raise EvalFailed(f"score phase exited with code {score_exit.code}: {_tail(tmp / 'score.err')}")
            reported = parse_metrics(_tail_all(tmp / "score.out"), Path(paths["metrics_out"]))
            values: dict[str, float] = {"peak_rss_mb_seen": run_exit.peak_rss_mb}
            for metric in spec.metrics:
                source = measured if metric.source == "harness" else reported
                if metric.name not in source:
                    raise EvalFailed(f"the scorer reported no {metric.name!r}; it reported {sorted(reported)}")
                try:
                    values[metric.name] = float(source[metric.name])
                except (TypeError, ValueError):
                    raise EvalFailed(f"metric {metric.name!r} is not a number: {source[metric.name]!r}") from None
            for name, value in reported.items():
                if name not in values and isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[name] = float(value)
            return values
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _spawn(self, argv: list[str], cwd: Path, measure: Path | None = None, **kw) -> subprocess.Popen:
        """Start a phase in its own process group; with ``measure``, through the rusage shim."""
        if measure is not None:
            argv = [sys.executable, "-S", "-I", str(SHIM), str(measure), "--", *argv]
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=self.env, start_new_session=True, **kw)
        except FileNotFoundError as exc:
            raise EvalFailed(f"cannot start {argv[0]!r}: {exc.strerror}; check the bounty's command") from None
        if measure is not None:
            _SHIM_OUTPUTS[proc.pid] = measure
        return proc

    async def _batch_run(self, spec: BountySpec, work: Path, paths: dict[str, str], tmp: Path) -> _Exit:
        argv = _render(spec.run.render, paths)
        with open(tmp / "run.out", "wb") as out, open(tmp / "run.err", "wb") as err:
            proc = self._spawn(argv, work, tmp / "rusage.json", stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        (result,) = await _wait_all([proc], spec.run.timeout_s, "the run phase")
        if result.code != 0:
            raise EvalFailed(f"run phase exited with code {result.code}: {_tail(tmp / 'run.err')}")
        return result

    async def _score(self, spec: BountySpec, paths: dict[str, str], tmp: Path) -> _Exit:
        argv = _render(spec.score.render, paths)
        with open(tmp / "score.out", "wb") as out, open(tmp / "score.err", "wb") as err:
            proc = self._spawn(argv, spec.scorer_path, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        (result,) = await _wait_all([proc], spec.score.timeout_s, "the score phase")
        return result

    async def _interactive(self, spec: BountySpec, work: Path, paths: dict[str, str],
                           tmp: Path) -> tuple[_Exit, _Exit]:
        to_pred_r, to_pred_w = os.pipe()  # scorer -> predictor
        to_score_r, to_score_w = os.pipe()  # predictor -> scorer
        procs = []
        try:
            with open(tmp / "run.err", "wb") as run_err:
                procs.append(self._spawn(_render(spec.run.render, paths), work, tmp / "rusage.json",
                                         stdin=to_pred_r,
                                         stdout=to_score_w, stderr=run_err))
            with open(tmp / "score.err", "wb") as score_err:
                procs.append(self._spawn(_render(spec.score.render, paths), spec.scorer_path,
                                         stdin=to_score_r, stdout=to_pred_w, stderr=score_err))
        finally:
            for fd in (to_pred_r, to_pred_w, to_score_r, to_score_w):
                os.close(fd)  # the children hold their ends; EOF must reach them when the peer exits
        if len(procs) < 2:
            for p in procs:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            raise EvalFailed("could not start both processes of the interactive evaluation")
        run_exit, score_exit = await _wait_all(procs, max(spec.run.timeout_s, spec.score.timeout_s),
                                               "the interactive evaluation")
        if score_exit.code != 0:
            raise EvalFailed(f"score phase exited with code {score_exit.code}: {_tail(tmp / 'score.err')}"
                             + (f"; predictor: {_tail(tmp / 'run.err')}" if run_exit.code else ""))
        if run_exit.code not in (0, -signal.SIGPIPE):
            raise EvalFailed(f"predictor exited with code {run_exit.code}: {_tail(tmp / 'run.err')}")
        return run_exit, score_exit


def _render(render, paths: dict[str, str]) -> list[str]:
    try:
        return render(**paths)
    except (KeyError, IndexError) as exc:
        raise EvalFailed(f"the bounty's command uses an unknown placeholder {exc}") from None


def _tail_all(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
