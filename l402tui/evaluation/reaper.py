"""Reaper of one local run: counts the CPU time of every process the run starts.

Run as ``python3 -I -S reaper.py RESULT_FD -- ARGV...`` (standalone: it imports
nothing from the package, so it starts in a few ms).  It makes itself a child
subreaper, so a grandchild that its parent orphans (double fork, ``setsid``) is
re-parented to the reaper rather than to init; it runs ARGV, waits for it, then
kills and reaps whatever the run left behind.  Every process of the run is thus
reaped in the reaper's subtree, and ``RUSAGE_CHILDREN`` is the CPU time of all of
them.  The result goes to RESULT_FD as ``<wait status> <user s> <system s> <max rss KiB>``.

SIGTERM ends the run (main process first, then the rest) and still reports: the
harness's time limit uses it.  A reaper killed outright reports nothing, and the
harness then refuses CPU figures for the run rather than give a low one.
"""

import ctypes
import os
import resource
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def _children(me: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            out.append(int(name))
    return out


def _end_the_rest() -> None:
    """Kill and reap every remaining descendant; orphans of killed ones come to us in turn."""
    me = os.getpid()
    for _ in range(10000):
        for pid in _children(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.wait4(-1, 0)
        except ChildProcessError:
            return
        while True:  # reap what else is ready without blocking
            try:
                if os.wait4(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                return


def main() -> int:
    result_fd = int(sys.argv[1])
    argv = sys.argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return 120  # no subreaper: the harness reports no CPU figure
    main_pid = os.fork()
    if main_pid == 0:
        os.close(result_fd)
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(2, f"cannot run {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)

    def stop(signum, frame) -> None:
        try:
            os.kill(main_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, stop)
    status = None
    while status is None:
        try:
            pid, st, _ = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if pid == main_pid:
            status = st
    _end_the_rest()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.write(result_fd, f"{status if status is not None else -1} {usage.ru_utime} {usage.ru_stime} "
                        f"{usage.ru_maxrss}\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
