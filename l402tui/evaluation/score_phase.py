"""The score phase, run in the evaluation's sandbox like every other program of a bounty.

The scorer is the sponsor's code, and it parses what the untrusted run wrote. With
sponsors who are not the operator (``l402tui sponsor``) a scorer run on the host would be
a stranger's program beside the coordinator's database, macaroon root keys and Lightning
credentials; and even the operator's own scorer reads attacker-made artifacts. So it
runs through the same ``Sandbox.run`` as the run phase (no network, the bounty's memory
and pid limits, ``score.timeout_s``), on a layout of its own:

* work dir: a fresh copy of the frozen scorer directory (its current directory);
* inputs (read-only): ``labels/``, ``inputs/``, ``artifacts/`` (the checked copy of the
  run's outputs), ``measurements.json`` and ``canaries/``;
* artifacts (writable, empty): where ``{metrics_out}`` points.

Placeholders are rendered with the sandbox's own paths.  What comes back is
``metrics.json`` (a regular file, at most ``METRICS_CAP`` bytes) and the scorer's output
(its log, capped), read as stdout by the harness's JSON-line fallback.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

from l402tui.bounty import BountySpec
from l402tui.evaluation.phases import PhaseFailed
from l402tui.evaluation.reasons import Reason
from l402tui.evaluation.sandbox import Layout, Limits, RunOutcome, Sandbox
from l402tui.evaluation.untrusted_log import LogSink

METRICS_CAP = 1024 * 1024  # a metrics file is a small JSON object
LOG_CAP = 256 * 1024


class ScoreBox:
    """One repeat's score-phase layout under ``dest/score``."""

    def __init__(self, spec: BountySpec, set_dir: Path, dest: Path, sandbox: Sandbox):
        self.spec, self.sandbox = spec, sandbox
        root = dest / "score"
        root.mkdir()
        os.chmod(root, 0o711)  # traversable by the sandbox user whatever the umask (the worker's is 077)
        self.layout = Layout(root / "work", root / "inputs", root / "out")
        shutil.copytree(spec.scorer_path, self.layout.workdir, symlinks=True)
        self.layout.inputs.mkdir(parents=True)
        self.layout.artifacts.mkdir(parents=True)
        for name in ("labels", "inputs"):
            src = set_dir / name
            if src.is_dir():
                shutil.copytree(src, self.layout.inputs / name, symlinks=True)
            else:
                (self.layout.inputs / name).mkdir()
        (self.layout.inputs / "artifacts").mkdir()
        (self.layout.inputs / "measurements.json").write_text("{}", encoding="utf-8")
        self.canaries_name = ""
        if spec.canaries:
            src = spec.root / spec.canaries
            (self.layout.inputs / "canaries").mkdir()
            if src.is_file():
                self.canaries_name = src.name
                shutil.copy2(src, self.layout.inputs / "canaries" / src.name)

    def argv(self) -> list[str]:
        places = self.sandbox.placeholders(self.layout)
        inputs = places["inputs"]
        values = {"artifacts": f"{inputs}/artifacts", "labels": f"{inputs}/labels", "inputs": f"{inputs}/inputs",
                  "measurements": f"{inputs}/measurements.json", "scorer": places["workdir"],
                  "canaries": f"{inputs}/canaries/{self.canaries_name}" if self.canaries_name else "",
                  "metrics_out": f"{places['artifacts']}/metrics.json"}
        return self.spec.score.render(**values)

    def limits(self, run_limits: Limits) -> Limits:
        # The run's slot and memory, the scorer's own time limit, never a GPU.
        return replace(run_limits, time_limit_s=float(self.spec.score.timeout_s), gpu=False, gpu_device=None)

    def fill(self, artifacts: Path, measurements: Path) -> None:
        """Put the checked artifacts and the measurements in the read-only inputs (also
        after the scorer started, in interactive mode: the same owner and modes)."""
        inputs = self.layout.inputs
        st = os.stat(inputs)
        ours = st.st_uid == os.geteuid()
        if ours:
            os.chmod(inputs, 0o700)
        try:
            target = inputs / "artifacts"
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(artifacts, target, symlinks=True)
            shutil.copyfile(measurements, inputs / "measurements.json")
            for p in (target, *target.rglob("*"), inputs / "measurements.json"):
                if p.is_symlink():
                    continue
                if os.geteuid() == 0:
                    os.chown(p, st.st_uid, st.st_gid)
                shared = bool(st.st_mode & 0o004)
                os.chmod(p, (0o555 if shared else 0o500) if p.is_dir() else (0o444 if shared else 0o400))
        finally:
            if ours:
                os.chmod(inputs, st.st_mode & 0o7777)

    def collect(self, metrics_out: Path, outcome: RunOutcome, sink: LogSink, log: LogSink) -> \
            subprocess.CompletedProcess:
        """The scorer's metrics file (copied to ``metrics_out``) and its output as stdout."""
        if outcome.timed_out:
            raise PhaseFailed(Reason.OUTPUT_INVALID,
                              f"the scorer did not finish within {self.spec.score.timeout_s:g} s")
        produced = self.layout.artifacts / "metrics.json"
        if produced.is_file() and not produced.is_symlink():
            if produced.stat().st_size > METRICS_CAP:
                raise PhaseFailed(Reason.OUTPUT_INVALID, f"the scorer wrote a metrics file over {METRICS_CAP} bytes")
            shutil.copyfile(produced, metrics_out)
        output = "\n".join(line for line in log.text().splitlines() if not line.startswith("[harness] "))
        if output.strip():
            sink.note("scorer output: " + output[-4000:])
        code = outcome.exit_code if outcome.exit_code is not None else -1
        return subprocess.CompletedProcess(self.argv(), code, output, "")


def _score_sink(sink: LogSink) -> LogSink:
    return LogSink(sink.path.with_name(sink.path.stem + "-score.log"), LOG_CAP)


def score_batch(spec: BountySpec, set_dir: Path, scored: Path, measurements: Path, metrics_out: Path,
                sink: LogSink, sandbox: Sandbox, limits: Limits, dest: Path) -> subprocess.CompletedProcess:
    box = ScoreBox(spec, set_dir, dest, sandbox)
    box.fill(scored, measurements)
    log = _score_sink(sink)
    sink.note(f"score phase in {sandbox.kind}: {' '.join(box.argv())}")
    try:
        outcome = sandbox.run(box.argv(), box.layout, box.limits(limits), log=log)
    except OSError as exc:
        raise PhaseFailed(Reason.INTERNAL_ERROR, f"the scorer could not start ({exc.strerror})") from None
    return box.collect(metrics_out, outcome, sink, log)


class InteractiveScorer:
    """The scorer of an interactive bounty, in its sandbox, talking to the predictor over
    ``stdin``/``stdout`` pipe fds (which this takes over and closes)."""

    def __init__(self, spec: BountySpec, set_dir: Path, dest: Path, sandbox: Sandbox, limits: Limits,
                 sink: LogSink, stdin: int, stdout: int):
        self.box = ScoreBox(spec, set_dir, dest, sandbox)
        self.sink, self.log = sink, _score_sink(sink)
        self.outcome: RunOutcome | None = None
        self.error: BaseException | None = None
        sink.note(f"score phase in {sandbox.kind}: {' '.join(self.box.argv())}")

        def work() -> None:
            try:
                self.outcome = sandbox.run(self.box.argv(), self.box.layout, self.box.limits(limits), log=self.log,
                                           stdin=stdin, stdout=stdout)
            except BaseException as exc:  # reported by finish() in the harness's thread
                self.error = exc

        # With the harness's context: the scorer joins the evaluation's RunGroup (cancellation).
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(work,), daemon=True, name="interactive-scorer")
        self.thread.start()

    def abandon(self) -> None:
        """The predictor failed: its pipe is closed, so the scorer reads EOF and ends."""
        self.thread.join(timeout=float(self.box.spec.score.timeout_s) + 10)

    def finish(self, artifacts: Path, measurements: Path, metrics_out: Path) -> subprocess.CompletedProcess:
        """After the predictor exited: hand over its outputs, wait for the verdict."""
        self.box.fill(artifacts, measurements)
        self.thread.join()  # sandbox.run kills the scorer at score.timeout_s
        if self.error is not None:
            if isinstance(self.error, OSError):
                raise PhaseFailed(Reason.INTERNAL_ERROR, f"the scorer could not start ({self.error.strerror})")
            raise self.error
        assert self.outcome is not None
        return self.box.collect(metrics_out, self.outcome, self.sink, self.log)
