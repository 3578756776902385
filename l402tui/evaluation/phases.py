"""What the harness does with a finished run phase: classify a failure, copy the outputs
for the trusted scorer, and fingerprint them.

A failure carries two things: a :class:`~l402tui.evaluation.reasons.Reason`, which
is all an agent may learn, and the operator's detail, which may quote what the run
controlled (its file names, its exit code) and so never leaves the operator's views.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from pathlib import Path
from typing import Any

from l402tui.evaluation.diffparse import show
from l402tui.evaluation.reasons import PhaseFailed, Reason
from l402tui.evaluation.sandbox import Limits, RunOutcome

__all__ = ["PhaseFailed", "failure_code", "finite_metrics", "output_cap", "outputs_digest", "trusted_copy"]
BYTES_PER_ENTRY = 16 * 1024  # as run_disk counts inodes: a run may leave one file or folder per 16 KB of its limit


def failure_code(outcome: RunOutcome) -> Reason:
    """The coarse class of a failed run: the only part of its exit an agent may learn."""
    return Reason(outcome.failure_code or Reason.CRASHED)


def output_cap(limits: Limits) -> int:
    """Bytes of outputs the host copies for the scorer: the run's disk limit, or its file size limit."""
    return int(limits.disk_mb) * 1024 * 1024


def trusted_copy(artifacts: Path, dest: Path, cap_bytes: int) -> Path:
    """Copy the run's outputs for the scorer, refusing anything but plain files and
    folders, more than ``cap_bytes`` in all, or more than one entry per 16 KB of it.  The
    trusted scorer runs on the host: an output that is a symlink to the held-out labels
    would otherwise be scored as perfect answers.  The run made every name and mode here,
    so an entry the host cannot read or recreate (too deep, unreadable) is the run's
    output_invalid, never an error of the coordinator's.  (Paths in the operator's detail
    are escaped: the run chose them.)"""
    try:
        return _copy_outputs(artifacts, dest, cap_bytes)
    except OSError as exc:
        raise PhaseFailed(Reason.OUTPUT_INVALID, f"the run's outputs could not be copied for the scorer "
                                                 f"({exc.__class__.__name__}, errno {exc.errno})") from None


def _copy_outputs(artifacts: Path, dest: Path, cap_bytes: int) -> Path:
    dest.mkdir(exist_ok=True)
    copied, entries, max_entries = 0, 0, max(16, cap_bytes // BYTES_PER_ENTRY)
    for dirpath, dirnames, filenames in os.walk(artifacts, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(artifacts)
        for name in [*dirnames, *filenames]:
            entries += 1
            if entries > max_entries:
                raise PhaseFailed(Reason.DISK_LIMIT, f"the run left more than {max_entries} files and folders "
                                                      "in its outputs")
            path = here / name
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                kind = "a symlink" if stat.S_ISLNK(mode) else "a special file"
                raise PhaseFailed(Reason.OUTPUT_INVALID, f"the run left {kind} in its outputs "
                                   f"({ascii((rel / name).as_posix())[:200]}); outputs must be plain files")
        for name in dirnames:
            (dest / rel / name).mkdir()
        for name in filenames:
            # O_NOFOLLOW: the file cannot be swapped for a link between the check and the copy.
            fd = os.open(here / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as src, open(dest / rel / name, "wb") as out:
                while chunk := src.read(1 << 20):
                    copied += len(chunk)
                    if copied > cap_bytes:
                        raise PhaseFailed(Reason.DISK_LIMIT, f"the run's outputs exceed {cap_bytes >> 20} MB")
                    out.write(chunk)
    return dest


def outputs_digest(scored: Path) -> str | None:
    """sha256 over the scored outputs (relative path and content, in path order)."""
    if not scored.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in scored.rglob("*") if p.is_file()):
        digest.update(path.relative_to(scored).as_posix().encode("utf-8", "surrogateescape") + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def finite_metrics(data: dict[str, Any], checked: set[str] | frozenset[str]) -> dict[str, float]:
    """The scorer's numeric figures as floats.  A figure in ``checked`` (the bounty's metrics
    and the anti-gaming counts) that is NaN or infinite fails the repeat; any other
    non-finite figure is dropped.  NaN passes every comparison the verdict makes (a NaN gain
    is not "at most the threshold", a NaN guard did not "regress") and inf pays the whole
    pool, so a figure the run's outputs made non-finite is unusable output, never a score."""
    metrics: dict[str, float] = {}
    for key, value in data.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            number = math.inf
        if math.isfinite(number):
            metrics[key] = number
        elif key in checked:
            raise PhaseFailed(Reason.OUTPUT_INVALID, f"the scorer reported a non-finite value for {show(key)}")
    return metrics
