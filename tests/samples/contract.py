"""A by-hand driver of the bounty <-> harness contract, for the sample-bounty tests.

It follows docs/bounty-format.md exactly but adds no sandbox: run phase with cwd = a
fresh copy of target/, ``{inputs}`` = the set's inputs/, ``{artifacts}`` = an empty
directory; score phase with cwd = the scorer directory and the score placeholders;
measurements (wall_s, cpu_s, peak_rss_mb) taken from outside with ``os.wait4``.
Interactive bounties get the predictor's stdout wired to the scorer's stdin and back.

``python3`` at the start of a command is replaced by the interpreter running the
tests (the project venv, which has numpy), as a sandbox image provides its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from l402tui.bounty import load_bounty
from l402tui.bounty.spec import BountySpec

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_bounties"


@dataclass
class Evaluation:
    metrics: dict[str, float]
    run_exit: int
    score_exit: int
    run_log: str
    score_log: str
    measurements: dict[str, float]


def copy_bounty(name: str, dest: Path) -> BountySpec:
    """Copy sample_bounties/<name> (without tools/) to dest and load its spec from there."""
    shutil.copytree(SAMPLES / name, dest, ignore=shutil.ignore_patterns("tools", "__pycache__", "*.pyc", "work.db"))
    return load_bounty(dest)


def _argv(argv: list[str]) -> list[str]:
    return [sys.executable, *argv[1:]] if argv and argv[0] == "python3" else argv


def _fresh_workdir(spec: BountySpec, tmp: Path, edit: Callable[[Path], None] | None) -> Path:
    work = tmp / "work"
    shutil.copytree(spec.target_path, work, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "work.db"))
    if edit is not None:
        edit(work)
    return work


def _measure(proc: subprocess.Popen, started: float) -> tuple[int, dict[str, float]]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, {"wall_s": time.monotonic() - started,
                             "cpu_s": usage.ru_utime + usage.ru_stime,
                             "peak_rss_mb": usage.ru_maxrss / 1024.0}


def _env(tmp: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(tmp)}
    env.update(extra or {})
    return env


def _parse_metrics(stdout: str, metrics_out: Path) -> dict[str, float]:
    if metrics_out.is_file():
        return json.loads(metrics_out.read_text(encoding="utf-8"))
    for line in reversed(stdout.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise AssertionError(f"the scorer printed no JSON object; stdout was:\n{stdout}")


def evaluate(spec: BountySpec, eval_set: str, tmp: Path, *, edit: Callable[[Path], None] | None = None,
             env: dict[str, str] | None = None) -> Evaluation:
    """One run + score of target/ (after ``edit``) on ``eval_set`` ("public" or "heldout/a"...)."""
    tmp.mkdir(parents=True, exist_ok=True)
    set_dir = spec.root / eval_set
    work = _fresh_workdir(spec, tmp, edit)
    artifacts = tmp / "artifacts"
    artifacts.mkdir()
    empty_inputs = tmp / "no-inputs"
    empty_inputs.mkdir()
    inputs = empty_inputs if spec.run.mode == "interactive" else set_dir / "inputs"
    measurements_file, metrics_out = tmp / "measurements.json", tmp / "metrics.json"
    run_argv = _argv(spec.run.render(inputs=str(inputs), artifacts=str(artifacts), workdir=str(work)))
    score_argv = _argv(spec.score.render(
        artifacts=str(artifacts), labels=str(set_dir / "labels"), inputs=str(set_dir / "inputs"),
        measurements=str(measurements_file), scorer=str(spec.scorer_path),
        canaries=str(spec.root / spec.canaries) if spec.canaries else "", metrics_out=str(metrics_out)))
    run_log, score_log = tmp / "run.log", tmp / "score.log"
    with open(run_log, "wb") as rlog, open(score_log, "wb") as slog:
        started = time.monotonic()
        if spec.run.mode == "interactive":
            pred = subprocess.Popen(run_argv, cwd=work, env=_env(tmp, env), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=rlog)
            scorer = subprocess.Popen(score_argv, cwd=spec.scorer_path, env=_env(tmp, None),
                                      stdin=pred.stdout, stdout=pred.stdin, stderr=slog)
            pred.stdout.close()
            pred.stdin.close()
            try:
                run_exit, measured = _measure(pred, started)
                score_exit = scorer.wait(timeout=spec.score.timeout_s)
            finally:
                for p in (pred, scorer):
                    if p.poll() is None:
                        p.kill()
            score_stdout = ""
        else:
            pred = subprocess.Popen(run_argv, cwd=work, env=_env(tmp, env), stdin=subprocess.DEVNULL,
                                    stdout=rlog, stderr=subprocess.STDOUT)
            run_exit, measured = _measure(pred, started)
            measurements_file.write_text(json.dumps(measured), encoding="utf-8")
            done = subprocess.run(score_argv, cwd=spec.scorer_path, env=_env(tmp, None), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=slog, timeout=spec.score.timeout_s, text=True)
            score_exit, score_stdout = done.returncode, done.stdout
    metrics: dict[str, float] = {}
    if score_exit == 0:
        metrics = _parse_metrics(score_stdout, metrics_out)
        for m in spec.metrics:
            if m.source == "harness":
                metrics[m.name] = measured[m.name]
    return Evaluation(metrics, run_exit, score_exit, run_log.read_text(errors="replace"),
                      score_log.read_text(errors="replace"), measured)


def replace_in(path: Path, old: str, new: str) -> None:
    """Edit a file of the work copy; fails loudly if the text to replace is not there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not found in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")
