"""Run a command and write its own rusage as JSON: ``python -S -I _rusage_shim.py OUT -- argv...``.

Why a shim: on Linux a child's ``ru_maxrss`` starts at the RSS of the process that
forked it (the copied address space counts until exec), so measuring from the agent
(tens of MB of Python) would inflate every peak.  This small process forks instead,
so the inflation is bounded by its own few MB.  Standard library only, no site.
"""

import json
import os
import sys


def main() -> int:
    out, sep, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    if sep != "--" or not argv:
        sys.stderr.write("usage: _rusage_shim.py OUT -- command...\n")
        return 2
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"cannot start {argv[0]!r}: {exc.strerror}\n")
        os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w") as fh:
        json.dump({"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024.0}, fh)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
