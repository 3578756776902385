"""The two-phase evaluation of a bounty, with or without a submission's diff.

API for the coordinator and the agent (all other modules here are details):

``check_diff(spec, diff) -> list[str]``
    Reasons to refuse a diff (empty list: acceptable).  Cheap; call it on receipt.
``apply_diff(spec, diff, tree)``
    Check and apply a diff to a copy of target/; raises ``DiffRejected(reasons)``.
``await evaluate(spec, diff, *, eval_set="heldout", heldout_index=0, sandbox,
                 repeats=None, log=None, allow_unsandboxed=False, log_dir=None,
                 log_cap_bytes=1 MiB, limits=None, keep_artifacts=None,
                 extra_env=None) -> EvaluationResult``
    ``diff=None`` evaluates the sponsor's own target/ (the baseline).  Runs the
    bounty's required tests, then ``repeats`` times: a fresh copy of target/ with the
    diff applied, the *run* phase in ``sandbox`` (untrusted: sees only the set's
    inputs, writes artifacts) and the *score* phase with the sponsor's frozen scorer
    outside the sandbox, on a copy of the artifacts that holds plain files only (a
    symlink or special file fails the repeat).  Wall/CPU/peak-RSS are measured from
    outside.
    ``result.status`` is "ok", "refused" (diff or policy; nothing ran) or "failed"
    (a phase crashed, timed out, or the scorer's output was unusable);
    ``result.code`` is the one code of :mod:`l402tui.evaluation.reasons` an agent may
    learn of why; ``result.reasons`` is the operator's detail (it can quote what the
    run controlled: never send it to an agent); ``result.medians`` /
    ``result.spreads`` hold per-metric medians and robust spreads (σ from the MAD), ``result.runs`` one
    ``RepeatRun`` per repeat.  ``result.agent_view()`` is all an agent may be sent.
    ``log`` receives the untrusted output line by line from worker threads (the
    sponsor's eval log; never forward it to the agent).  ``limits`` overrides the
    bounty's resources, ``keep_artifacts`` receives a copy of repeat 1's outputs,
    ``extra_env`` adds variables to the sandboxed process's minimal environment.
    Decide acceptance with ``scoring.verdict`` and flags with ``antigaming``.
``run_worker(store, cfg, stop=...)`` (``l402tui.evaluation.worker``)
    Works the ``evaluations`` queue (QUEUED → RUNNING → DONE/FAILED, crash-safe).
``pick_sandbox(settings)`` (``l402tui.evaluation.runners``)
    The sandbox the operator's config asks for, or the best available.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from l402tui.bounty.spec import HARNESS_MEASUREMENTS, BountySpec
from l402tui.evaluation import stats
from l402tui.evaluation.antigaming import ANTIGAMING_METRICS
from l402tui.evaluation.diffcheck import COPY_IGNORE, DiffRejected, apply_diff, check_diff, git_apply
from l402tui.evaluation.phases import (PhaseFailed, failure_code, finite_metrics, output_cap, outputs_digest,
                                       trusted_copy)
from l402tui.evaluation.score_phase import InteractiveScorer, score_batch
from l402tui.evaluation.reasons import Reason
from l402tui.evaluation.sandbox import Layout, Limits, RunOutcome, Sandbox
from l402tui.evaluation.untrusted_log import LogSink

__all__ = ["evaluate", "check_diff", "apply_diff", "DiffRejected", "EvaluationResult", "RepeatRun"]

EvalSet = Literal["public", "heldout"]
ROOT_PREFIX = "l402tui-eval-"
OWNER_FILE = ".owner-pid"
UNSANDBOXED_REFUSAL = ("this coordinator has no isolating sandbox (docker or bubblewrap) and does not run "
                       "untrusted code without one; the operator can install one (`l402tui sandbox setup`) "
                       "or set evaluation.allow_unsandboxed = true")


@dataclass
class RepeatRun:
    repeat: int
    metrics: dict[str, float]
    wall_s: float
    cpu_s: float | None
    peak_rss_mb: float | None
    exit_code: int | None
    log_path: str
    ok: bool = True
    reason: str = ""  # the operator's detail
    code: str = ""  # a Reason: what an agent may learn
    outputs_sha256: str | None = None  # digest of the outputs the scorer read


@dataclass
class EvaluationResult:
    status: Literal["ok", "refused", "failed"]
    reasons: list[str]  # the operator's detail
    medians: dict[str, float] = field(default_factory=dict)
    spreads: dict[str, float] = field(default_factory=dict)
    runs: list[RepeatRun] = field(default_factory=list)
    sandbox: str = ""
    eval_set: str = "heldout"
    heldout_index: int = 0
    code: str | None = None  # a Reason when not ok

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def outputs_sha256(self) -> str | None:
        """Repeat 1's output digest: identical outputs on the same set mean the same predictions."""
        return self.runs[0].outputs_sha256 if self.runs else None

    def agent_view(self) -> dict[str, Any]:
        """What may leave the coordinator about this evaluation without the judge: its
        status and reason code (scores are published by the coordinator's ladder)."""
        return {"status": self.status, "code": self.code, "repeats": len(self.runs), "sandbox": self.sandbox}

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "reasons": list(self.reasons),
                "medians": dict(self.medians), "spreads": dict(self.spreads), "sandbox": self.sandbox,
                "runs": [asdict(r) for r in self.runs], "eval_set": self.eval_set,
                "heldout_index": self.heldout_index}

    def refuse(self, code: Reason, reasons: list[str]) -> "EvaluationResult":
        self.status, self.code, self.reasons = "refused", code.value, reasons
        return self


def _set_dir(spec: BountySpec, eval_set: EvalSet, heldout_index: int) -> Path:
    return spec.public_path if eval_set == "public" else spec.heldout_path(heldout_index)


def _limits(spec: BountySpec) -> Limits:
    return Limits(memory_mb=spec.memory_mb, cpus=spec.cpus, time_limit_s=min(spec.run.timeout_s, spec.time_limit_s),
                  gpu=spec.gpu, disk_mb=spec.disk_mb)


async def evaluate(spec: BountySpec, diff: str | None, *, eval_set: EvalSet = "heldout", heldout_index: int = 0,
                   sandbox: Sandbox, repeats: int | None = None, log: Callable[[str], None] | None = None,
                   allow_unsandboxed: bool = False, log_dir: Path | None = None,
                   log_cap_bytes: int = 1024 * 1024, limits: Limits | None = None,
                   keep_artifacts: Path | None = None, extra_env: dict[str, str] | None = None,
                   parallel: int = 1) -> EvaluationResult:
    """Evaluate ``spec``'s target/ (with ``diff`` applied, if any) on one eval set; see the module doc.

    ``parallel`` repeats run at once (each in its own sandbox and copy): the agent's
    local evaluation uses the machine's cores; the coordinator keeps one at a time so
    that repeats do not compete with each other for the CPU they are measured on."""
    base = EvaluationResult("refused", [], sandbox=sandbox.kind, eval_set=eval_set, heldout_index=heldout_index)
    if eval_set not in ("public", "heldout"):
        raise ValueError(f"eval_set must be 'public' or 'heldout', not {eval_set!r}")
    if diff is not None:
        reasons = await asyncio.to_thread(check_diff, spec, diff)  # a git process and a copy of target/
        if reasons:
            return base.refuse(Reason.DIFF_REFUSED, reasons)
        if not sandbox.isolated and not allow_unsandboxed:
            return base.refuse(Reason.NO_SANDBOX, [UNSANDBOXED_REFUSAL])
    return await asyncio.to_thread(_evaluate_sync, spec, diff, eval_set, heldout_index, sandbox,
                                   repeats or spec.repeats, log, log_dir, log_cap_bytes, limits or _limits(spec),
                                   base, keep_artifacts, dict(extra_env or {}), max(1, parallel))


def _evaluate_sync(spec, diff, eval_set, heldout_index, sandbox, repeats, log, log_dir, log_cap_bytes, limits,
                   result: EvaluationResult, keep_artifacts: Path | None, extra_env: dict[str, str],
                   parallel: int = 1) -> EvaluationResult:
    set_dir = _set_dir(spec, eval_set, heldout_index)
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
    os.chmod(root, 0o711)
    (root / OWNER_FILE).write_text(str(os.getpid()))
    logs = Path(log_dir) if log_dir else root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        # Inputs are copied once per evaluation (read-only inside the sandbox, so a
        # repeat cannot leave anything behind for the next one).
        inputs = root / "inputs"
        if spec.run.mode == "interactive":
            inputs.mkdir()  # label safety: the predictor gets no data at all
        else:
            shutil.copytree(set_dir / "inputs", inputs, ignore=COPY_IGNORE)
        if spec.test_command:
            work = _fresh_copy(spec, diff, root / "tests")
            sink = LogSink(logs / "tests.log", log_cap_bytes, log, "[tests] ")
            sink.note(f"required tests: {' '.join(spec.test_command)} ({sandbox.kind})")
            public_inputs = root / "tests-inputs"
            shutil.copytree(spec.public_path / "inputs", public_inputs, ignore=COPY_IGNORE)
            layout = Layout(work, public_inputs, _empty(root / "tests-artifacts"))
            argv = [a.format(**sandbox.placeholders(layout)) for a in spec.test_command]
            outcome = sandbox.run(argv, layout, limits, log=sink, extra_env=extra_env)
            if not outcome.ok:
                return result.refuse(Reason.TESTS_FAILED,
                                     [f"the bounty's required tests failed: {outcome.describe_failure()}"])
        def one(repeat: int) -> RepeatRun:
            return _one_repeat(spec, diff, set_dir, inputs, root / f"r{repeat}", sandbox, limits, repeat,
                               logs, log_cap_bytes, log, extra_env)

        for repeat, run in _repeats(one, repeats, parallel):
            result.runs.append(run)
            if keep_artifacts is not None and repeat == 0:
                shutil.copytree(root / f"r{repeat}" / "artifacts", keep_artifacts, dirs_exist_ok=True)
            if not run.ok:
                result.status, result.code = "failed", run.code
                result.reasons = [f"repeat {repeat + 1} of {repeats}: {run.reason}"]
                return result
    except DiffRejected as exc:
        return result.refuse(Reason.DIFF_REFUSED, exc.reasons)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result.status = "ok"
    result.medians, result.spreads = summarize(result.runs)
    return result


def _repeats(one: Callable[[int], RepeatRun], repeats: int, parallel: int) -> list[tuple[int, RepeatRun]]:
    """(repeat, run) in repeat order, up to and including the first failed run.  With
    ``parallel`` > 1 up to that many run at once, and none starts once one has failed
    (those already running finish and are not reported)."""
    out: list[tuple[int, RepeatRun]] = []
    if parallel <= 1 or repeats <= 1:
        for repeat in range(repeats):
            out.append((repeat, one(repeat)))
            if not out[-1][1].ok:
                break
        return out
    failed = threading.Event()

    def guarded(repeat: int) -> RepeatRun | None:
        if failed.is_set():
            return None
        run = one(repeat)
        if not run.ok:
            failed.set()
        return run

    with ThreadPoolExecutor(max_workers=min(parallel, repeats), thread_name_prefix="repeat") as pool:
        # Each repeat in a copy of this thread's context (the evaluation's RunGroup).
        futures = [pool.submit(contextvars.copy_context().run, guarded, r) for r in range(repeats)]
        results = [f.result() for f in futures]
    for repeat, run in enumerate(results):
        if run is None:
            break
        out.append((repeat, run))
        if not run.ok:
            break
    return out


def sweep_stale_roots(tmp: Path | None = None) -> list[Path]:
    """Remove evaluation temp dirs whose process died (a kill -9 skips the cleanup)."""
    removed = []
    for root in Path(tmp or tempfile.gettempdir()).glob(ROOT_PREFIX + "*"):
        try:
            pid = int((root / OWNER_FILE).read_text())
            os.kill(pid, 0)
            continue  # its process is alive: still in use
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # not ours to judge (no owner file, or another user's process)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


def summarize(runs: list[RepeatRun]) -> tuple[dict[str, float], dict[str, float]]:
    """Median and robust spread (:func:`l402tui.evaluation.stats.spread`) of every metric."""
    names = sorted({k for r in runs for k in r.metrics})
    medians, spreads = {}, {}
    for name in names:
        values = [r.metrics[name] for r in runs if name in r.metrics]
        medians[name] = float(statistics.median(values))
        spreads[name] = stats.spread(values)
    return medians, spreads


def _empty(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _fresh_copy(spec: BountySpec, diff: str | None, dest: Path) -> Path:
    dest.mkdir(parents=True)
    os.chmod(dest, 0o711)  # the sandbox user must traverse it whatever the process umask (0077 in serve)
    work = dest / "work"
    shutil.copytree(spec.target_path, work, ignore=COPY_IGNORE, symlinks=True)
    if diff is not None:
        git_apply(diff, work)
    return work


def _one_repeat(spec: BountySpec, diff, set_dir: Path, inputs: Path, dest: Path, sandbox: Sandbox,
                limits: Limits, repeat: int, logs: Path, cap: int, log, extra_env: dict[str, str]) -> RepeatRun:
    work = _fresh_copy(spec, diff, dest)
    artifacts = _empty(dest / "artifacts")
    # Each repeat reads its own copy of the inputs, handed to its run's uid alone (a shared
    # copy would have to be readable by every run's uid, and so by any local user).
    own_inputs = dest / "inputs"
    shutil.copytree(inputs, own_inputs)
    layout = Layout(work, own_inputs, artifacts)
    sink = LogSink(logs / f"repeat-{repeat}.log", cap, log, f"[repeat {repeat + 1}] ")
    argv = spec.run.render(**sandbox.placeholders(layout))
    sink.note(f"run phase in {sandbox.kind}: {' '.join(argv)}")
    score_files = {"measurements": dest / "measurements.json", "metrics_out": dest / "metrics.json"}
    try:
        if spec.run.mode == "interactive":
            outcome, score_proc = _interactive(spec, sandbox, layout, limits, sink, set_dir, artifacts, score_files,
                                               extra_env)
        else:
            outcome = sandbox.run(argv, layout, limits, log=sink, extra_env=extra_env)
            score_proc = None
        sink.note(f"run phase: exit {outcome.exit_code}, wall {outcome.wall_s:.3f} s, cpu {outcome.cpu_s} s, "
                  f"peak {outcome.peak_rss_mb} MB")
        if not outcome.ok:
            raise PhaseFailed(failure_code(outcome), outcome.describe_failure())
        scored = dest / "scored-artifacts"
        if score_proc is None:
            trusted_copy(artifacts, scored, output_cap(limits))
            _write_measurements(score_files["measurements"], outcome)
            score_proc = score_batch(spec, set_dir, scored, score_files["measurements"], score_files["metrics_out"],
                                     sink, sandbox, limits, dest)
        metrics = _collect_metrics(spec, score_proc, score_files["metrics_out"], outcome, sink)
    except PhaseFailed as exc:
        sink.note(f"repeat failed ({exc.code.value}): {exc}")
        return RepeatRun(repeat, {}, 0.0, None, None, None, str(sink.path), ok=False, reason=str(exc),
                         code=exc.code.value)
    return RepeatRun(repeat, metrics, outcome.wall_s, outcome.cpu_s, outcome.peak_rss_mb, outcome.exit_code,
                     str(sink.path), outputs_sha256=outputs_digest(scored))


def _score_values(spec: BountySpec, set_dir: Path, artifacts: Path, files: dict[str, Path]) -> dict[str, str]:
    canaries = str(spec.root / spec.canaries) if spec.canaries else ""
    return {"artifacts": str(artifacts), "labels": str(set_dir / "labels"), "inputs": str(set_dir / "inputs"),
            "measurements": str(files["measurements"]), "scorer": str(spec.scorer_path), "canaries": canaries,
            "metrics_out": str(files["metrics_out"])}


def _write_measurements(path: Path, outcome: RunOutcome | None) -> None:
    data = {} if outcome is None else {k: v for k, v in outcome.measurements().items()
                                       if v is not None or not k.startswith("gpu_")}
    path.write_text(json.dumps(data), encoding="utf-8")


def _interactive(spec, sandbox: Sandbox, layout: Layout, limits: Limits, sink: LogSink, set_dir: Path,
                 artifacts: Path, files, extra_env: dict[str, str]) -> tuple[RunOutcome, subprocess.CompletedProcess]:
    """Predictor and scorer, each in its sandbox, joined by two pipes; the scorer
    reveals a label only after it has read the prediction for it."""
    to_scorer_r, to_scorer_w = os.pipe()
    to_predictor_r, to_predictor_w = os.pipe()
    # Measurements are only known after the predictor exits (score_phase.ScoreBox.fill).
    _write_measurements(files["measurements"], None)
    scored = files["measurements"].parent / "scored-artifacts"
    try:
        scorer = InteractiveScorer(spec, set_dir, files["measurements"].parent, sandbox, limits, sink,
                                   stdin=to_scorer_r, stdout=to_predictor_w)
    except BaseException:
        for fd in (to_scorer_r, to_scorer_w, to_predictor_r, to_predictor_w):
            os.close(fd)
        raise
    run_argv = spec.run.render(**sandbox.placeholders(layout))
    try:
        outcome = sandbox.run(run_argv, layout, limits, log=sink, stdin=to_predictor_r, stdout=to_scorer_w,
                              extra_env=extra_env)
        trusted_copy(artifacts, scored, output_cap(limits))
    except BaseException:
        scorer.abandon()
        raise
    _write_measurements(files["measurements"], outcome)
    return outcome, scorer.finish(scored, files["measurements"], files["metrics_out"])


def _collect_metrics(spec: BountySpec, proc: subprocess.CompletedProcess, metrics_out: Path,
                     outcome: RunOutcome, sink: LogSink) -> dict[str, float]:
    if proc.returncode != 0:
        raise PhaseFailed(Reason.OUTPUT_INVALID,
                           f"the scorer exited with code {proc.returncode} (the artifacts could not be scored)")
    data: dict[str, Any] | None = None
    if metrics_out.exists():
        try:
            data = json.loads(metrics_out.read_text(encoding="utf-8"))
        except ValueError:
            data = None
    if data is None:
        for line in reversed((proc.stdout or "").splitlines()):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                data = parsed
                break
    if not isinstance(data, dict):
        raise PhaseFailed(Reason.OUTPUT_INVALID, "the scorer reported no metrics JSON object")
    metrics = finite_metrics(data, {m.name for m in spec.metrics} | set(ANTIGAMING_METRICS))
    measured = outcome.measurements()
    for name in HARNESS_MEASUREMENTS:
        # Only figures measured from outside count, whatever the scorer echoed.
        if measured[name] is not None:
            metrics[name] = float(measured[name])
        else:
            metrics.pop(name, None)
    for metric in spec.metrics:
        if metric.name not in metrics:
            if metric.source == "harness":
                raise PhaseFailed(Reason.MEASUREMENT_UNAVAILABLE,
                                   f"the {outcome.runner} sandbox cannot measure {metric.name} here")
            raise PhaseFailed(Reason.OUTPUT_INVALID, f"the scorer did not report metric {metric.name!r}")
    sink.note("metrics: " + json.dumps(metrics, sort_keys=True))
    return metrics
