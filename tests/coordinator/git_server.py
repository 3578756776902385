"""Real git repositories served by `git daemon` on 127.0.0.1 for the git-source tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

# The test's own git runs with no user or system config, whatever the machine has.
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "sponsor",
           "GIT_AUTHOR_EMAIL": "sponsor@example.org", "GIT_COMMITTER_NAME": "sponsor",
           "GIT_COMMITTER_EMAIL": "sponsor@example.org", "GIT_TERMINAL_PROMPT": "0"}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    done = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GitDaemon:
    """`git daemon` exporting every bare repository under ``base``."""

    def __init__(self, base: Path):
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", f"--base-path={base}", "--export-all", "--informative-errors",
             "--listen=127.0.0.1", f"--port={self.port}", str(base)],
            env={**os.environ, **GIT_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("git daemon did not start")
                time.sleep(0.05)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def publish(self, work: Path, name: str, *, allow_filter: bool = True) -> str:
        """Push every branch and tag of the work tree ``work`` to a served bare repository."""
        bare = self.base / f"{name}.git"
        git(self.base, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        if allow_filter:
            git(bare, "config", "uploadpack.allowFilter", "true")
        git(work, "push", "--quiet", "--tags", str(bare), "refs/heads/*:refs/heads/*")
        return self.url(name)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def new_work_tree(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    return path


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(work, "rev-parse", "HEAD")
