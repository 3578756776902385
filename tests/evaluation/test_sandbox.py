"""Each runner really runs code, measures it from outside and enforces its limits;
the isolating runners also keep it off the network and away from host files."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from l402tui.evaluation.sandbox import Limits
from sandbox_probes import FORK_BOMB, MEMORY_HOG, SMALL, run_probe


def test_runs_and_measures_from_outside(any_runner, sandbox_tmp):
    outcome, lines, layout = run_probe(any_runner, sandbox_tmp, """
        import sys
        data = open(sys.argv[1] + "/data.txt").read()
        open(sys.argv[2] + "/out.txt", "w").write(data.upper())
        block = bytearray(40 * 1024 * 1024)  # touched: counts towards peak memory
        for i in range(0, len(block), 4096):
            block[i] = 1
        print("finished")
    """)
    assert outcome.ok, outcome
    assert (layout.artifacts / "out.txt").read_text() == "INPUT-DATA"
    assert lines == ["finished"]
    assert outcome.peak_rss_mb >= 40
    assert outcome.cpu_s > 0 and outcome.wall_s > 0


def test_time_limit_kills_and_says_so(any_runner, sandbox_tmp):
    outcome, _, _ = run_probe(any_runner, sandbox_tmp, "while True: pass\n",
                         Limits(memory_mb=128, time_limit_s=1.0, pids=64))
    assert outcome.timed_out
    assert outcome.describe_failure() == "the run exceeded its time limit (1 s) and was killed"


def test_log_is_capped_without_blocking_therun_probe(any_runner, sandbox_tmp):
    outcome, lines, _ = run_probe(any_runner, sandbox_tmp, "import sys\nsys.stdout.write('x' * 200000)\nprint('end')\n",
                             cap=1000)
    assert outcome.ok
    assert outcome.log_truncated and outcome.log_bytes == 1000
    assert lines[-1] == "[harness] log truncated at 1000 bytes"


def test_no_network(isolated, sandbox_tmp):
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept)
    thread.start()
    outcome, lines, _ = run_probe(isolated, sandbox_tmp, f"""
        import socket
        for host in ("127.0.0.1", "172.17.0.1", "10.0.2.2"):
            try:
                socket.create_connection((host, {port}), timeout=1)
                print("connected", host)
            except OSError as exc:
                print("refused", host)
        import os
        print("interfaces", sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else "none")
    """)
    done.set()
    thread.join()
    server.close()
    assert outcome.ok
    assert accepted == []
    assert [line for line in lines if line.startswith("connected")] == []


def test_host_files_are_out_of_reach(isolated, sandbox_tmp):
    secret = Path(__file__).resolve()
    host_file = sandbox_tmp / "host-secret.txt"  # world-readable on the host, outside the layout
    host_file.write_text("secret")
    outcome, lines, _ = run_probe(isolated, sandbox_tmp, f"""
        import os
        for path in ({str(secret)!r}, {str(host_file)!r}):
            print(path, "visible" if os.path.exists(path) else "absent")
        for target in ("/usr/evil", "/inputs/evil", "/evil"):
            try:
                open(target, "w").write("x")
                print(target, "written")
            except OSError:
                print(target, "denied")
        print("uid", os.getuid())
        print("fds", sorted(int(fd) for fd in os.listdir("/proc/self/fd")))
    """)
    assert outcome.ok
    assert f"{secret} absent" in lines
    assert f"{host_file} absent" in lines
    assert [line for line in lines if line.endswith("written")] == []
    assert "uid 0" not in lines
    # Only stdio and listdir's own fd: no handle on a host directory leaks in.
    assert "fds [0, 1, 2, 3]" in lines


def test_memory_limit_kills(isolated, sandbox_tmp):
    outcome, _, _ = run_probe(isolated, sandbox_tmp, MEMORY_HOG)
    assert not outcome.ok
    assert outcome.exit_code != 0


def test_fork_bomb_is_contained(isolated, sandbox_tmp):
    outcome, lines, _ = run_probe(isolated, sandbox_tmp, FORK_BOMB)
    assert any(line.startswith("fork refused after") for line in lines), lines
    refused_after = int(next(line for line in lines if line.startswith("fork refused")).split()[-1])
    assert refused_after < SMALL.pids


def test_a_runs_inputs_and_work_dir_are_its_own_while_it_runs(any_runner, sandbox_tmp):
    """Held-out inputs are readable by the run and by nobody else on the machine while it
    runs; its work dir cannot be written by another local user (what is scored)."""
    import os
    import subprocess
    import threading

    from sandbox_probes import run_probe

    seen: dict[str, object] = {}

    def other_user_tries(layout_base) -> None:
        inputs, work = layout_base / "inputs" / "data.txt", layout_base / "work" / "probe.py"
        for _ in range(100):
            if (layout_base / "work" / "started").exists():
                break
            threading.Event().wait(0.05)
        code = ("import sys\n"
                "for path, mode in ((sys.argv[1], 'r'), (sys.argv[2], 'a')):\n"
                "    try:\n        open(path, mode).close(); print('opened', path)\n"
                "    except OSError as exc:\n        print('refused', path, exc.errno)\n")
        # The system python: the other user cannot reach a virtualenv under /root.
        done = subprocess.run(["/usr/bin/python3", "-c", code, str(inputs), str(work)], capture_output=True, text=True,
                              preexec_fn=lambda: (os.setgid(54321), os.setuid(54321)), timeout=30)
        seen["out"] = done.stdout

    if os.geteuid() != 0:
        pytest.skip("needs root to act as another local user")
    probe = threading.Thread(target=other_user_tries, args=(sandbox_tmp / "p",))
    probe.start()
    outcome, lines, _ = run_probe(any_runner, sandbox_tmp / "p", """
        import pathlib, sys, time
        pathlib.Path("started").write_text("1")
        print("run reads", pathlib.Path(sys.argv[1], "data.txt").read_text())
        time.sleep(2)
    """)
    probe.join()
    assert outcome.ok, (outcome, lines)
    assert any("run reads input-data" in line for line in lines), lines
    assert "opened" not in seen.get("out", ""), seen
    assert seen.get("out", "").count("refused") == 2, seen
