"""`python -m l402tui.evaluation.worker` is started without the CLI, which is what sets the
private umask elsewhere: the eval logs it writes under the data dir must still be private."""

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_worker_started_under_an_open_umask_writes_private_files(tmp_path):
    db = tmp_path / "data" / "db.sqlite"
    probe = tmp_path / "probe"
    # The worker's own process: after main() ran, a file it creates must be 0600 even
    # though it was started under umask 022.
    code = ("import os, sys\n"
            "from l402tui.evaluation.worker import main\n"
            f"main(['--db', {str(db)!r}, '--idle-exit'])\n"
            f"open({str(probe)!r}, 'w').close()\n")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stdout + done.stderr
    assert stat.S_IMODE(probe.stat().st_mode) == 0o600
