"""A bubblewrap started before its run is known, so the slow part of a start is off the clock.

Starting a sandboxed run as root costs more than bubblewrap itself: the child moves
into its own cgroup (on cgroup v1, three migrations of 2–6 ms each), sets its
rlimits and drops to the sandbox uid, all between fork and exec.  None of that needs
the command.  So a *spare* bwrap is started ahead with all of that done and nothing
else known: ``bwrap --args FD -- /bin/sh /tmp/.l402tui-run``.

* bwrap reads its options from FD (NUL-separated, up to end of file) before it does
  anything else, so it waits there, already in its cgroup (made with the run's
  limits), under the rlimits and the sandbox uid;
* bwrap 0.8 takes the command itself only from its real argv, so the command is a
  fixed one: a shell script that bwrap puts into the sandbox from a second pipe
  (``--ro-bind-data``) and that ``exec``s the run's command line (quoted), so the
  run is the same process with the same exit status, after ~1 ms of ``sh``;
* its stdin is /dev/null and its stdout and stderr the write end of a log pipe, as a
  batch run's are;
* :meth:`Spare.launch` writes the options and the script and closes both pipes:
  bwrap sets up the namespaces and runs, and the run's clock starts there.

A spare is made for the limits of the run before it and used only by a run with the
same limits (one waits per limits, so each slot keeps its own).  One never used dies with its parent
(``--die-with-parent``); were it to read end of file first, it would have no binds
at all, so no ``/bin/sh`` to run, and exit.  CPU time and memory are counted from the cgroup join, as for a
run started directly; the blocked bwrap uses neither.
"""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import threading
import weakref
from typing import Callable

from l402tui.evaluation.cgroups import CgroupAccount, remove_later


class Spare:
    def __init__(self, key: tuple, uid: int | None, proc: subprocess.Popen, args_w: int, script_w: int,
                 script_fd: int, log_r: int, cgroup: CgroupAccount | None):
        self.key = key
        self.uid = uid
        self.proc = proc
        self.args_w = args_w
        self.script_w = script_w
        self.script_fd = script_fd  # the script pipe's read end, as numbered in bwrap
        self.log_r = log_r
        self.cgroup = cgroup

    def launch(self, options: list[str], argv: list[str]) -> None:
        """Hand bwrap its options (without the command) and the command; it goes on at once."""
        options = [*options, "--ro-bind-data", str(self.script_fd), SCRIPT]
        _write_all(self.args_w, b"".join(a.encode() + b"\0" for a in options))
        self.args_w = -1
        _write_all(self.script_w, ("exec " + " ".join(shlex.quote(a) for a in argv) + "\n").encode())
        self.script_w = -1

    def discard(self) -> None:
        """End an unused spare: closing its argument pipe makes it exit; kill it anyway."""
        for name in ("args_w", "script_w"):
            if getattr(self, name) >= 0:
                os.close(getattr(self, name))
                setattr(self, name, -1)
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        os.close(self.log_r)
        if self.cgroup is not None:
            remove_later(self.cgroup)


class SparePool:
    """At most one spare per key (the run's limits: with slots, each slot's cores are
    part of them), refilled in the background after each run; ``max_keys`` bounds the
    processes kept waiting."""

    def __init__(self, start: Callable[[tuple], Spare | None], max_keys: int = 8):
        self._start = start
        self._lock = threading.Lock()
        self._spares: dict[tuple, Spare] = {}
        self._filling: set[tuple] = set()
        self.max_keys = max_keys
        _pools.add(self)

    def take(self, key: tuple) -> Spare | None:
        with self._lock:
            spare = self._spares.pop(key, None)
        if spare is None:
            return None
        if spare.proc.poll() is not None:
            spare.discard()
            return None
        return spare

    def refill(self, key: tuple) -> None:
        with self._lock:
            if key in self._filling or key in self._spares:
                return
            self._filling.add(key)
        threading.Thread(target=self._fill, args=(key,), daemon=True, name="bwrap-spare").start()

    def _fill(self, key: tuple) -> None:
        try:
            spare = self._start(key)
        except (OSError, subprocess.SubprocessError):  # the next run starts directly instead
            spare = None
        finally:
            with self._lock:
                self._filling.discard(key)
        if spare is None:
            return
        evicted = []
        with self._lock:
            old = self._spares.pop(key, None)
            self._spares[key] = spare
            while len(self._spares) > self.max_keys:  # the least recently filled goes
                evicted.append(self._spares.pop(next(iter(self._spares))))
        for s in ([old] if old is not None else []) + evicted:
            s.discard()

    def ready(self, key: tuple) -> bool:
        """A spare for ``key`` is waiting (tests and the benchmark wait for one)."""
        with self._lock:
            return key in self._spares

    def close(self) -> None:
        with self._lock:
            spares, self._spares = list(self._spares.values()), {}
        for spare in spares:
            spare.discard()


_pools: weakref.WeakSet[SparePool] = weakref.WeakSet()


@atexit.register
def _discard_spares() -> None:
    for pool in list(_pools):
        pool.close()


SCRIPT = "/tmp/.l402tui-run"  # inside the sandbox; /tmp is the sandbox's own tmpfs


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def start_spare(bwrap: str, key: tuple, uid: int | None, cgroup: CgroupAccount | None,
                preexec: Callable[[], None]) -> Spare:
    """Start bwrap waiting for its options; ``preexec`` (run in the child) joins
    ``cgroup``, sets the rlimits and drops to ``uid``, as for a direct start."""
    args_r, args_w = os.pipe()
    script_r, script_w = os.pipe()
    log_r, log_w = os.pipe()
    try:
        # pass_fds keeps the read ends open in bwrap under the same numbers.
        # Isolation that needs no knowledge of the run is on the real command line, so a
        # spare that never gets its options still runs (or fails to run) nothing outside.
        proc = subprocess.Popen([bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--args",
                                 str(args_r), "--", "/bin/sh", SCRIPT], stdin=subprocess.DEVNULL,
                                stdout=log_w, stderr=log_w, env={"PATH": "/usr/bin:/bin"}, start_new_session=True,
                                preexec_fn=preexec, pass_fds=(args_r, script_r))
    except BaseException:
        for fd in (args_w, script_w, log_r):
            os.close(fd)
        if cgroup is not None:
            remove_later(cgroup)
        raise
    finally:
        for fd in (args_r, script_r, log_w):
            os.close(fd)
    return Spare(key, uid, proc, args_w, script_w, script_r, log_r, cgroup)
