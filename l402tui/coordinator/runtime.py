"""Starting a complete coordinator in this process: service, HTTP app (L402 gate,
admin API, events), evaluation worker, admin macaroon.  `l402tui serve`, the TUI's
in-process mode and the demo all start it the same way.

The evaluation worker runs as a child process (:class:`WorkerProcess`): its threads
(log pumps, copies, the scorer's pipes) and its SQLite writes never wait for, or make
wait, the event loop that answers HTTP.  The coordinator sees its commits through the
tick (``PRAGMA data_version``), as it would a worker started by hand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l402tui.config import DEFAULTS, ENV_PREFIX, Config

log = logging.getLogger("l402tui.runtime")


# How often the coordinator's invoice stream looks at the simulated network's file for
# payments made by other processes.  Payers in this process (the demo's agents, tests)
# wake it at once; the sim's own default of 20 ms cost 2-3 % of a core in an idle TUI.
SIM_POLL_S = 0.25


# `serve` must be gone within 5 s of SIGTERM: the worker gets this long to cancel its
# evaluations (sandboxes killed, work re-queued; its own grace is 3 s), then SIGKILL.
WORKER_STOP_S = 4.0
WORKER_RESTART_MAX_S = 60.0
WORKER_LOG_MAX_BYTES = 10 * 1024 * 1024


class WorkerProcess:
    """``python -m l402tui.evaluation.worker`` as a child of this process, on the same
    database and settings.  Started again (with a growing pause) if it dies; stopped with
    SIGTERM, which it answers by killing its sandboxes and re-queueing their work, or
    SIGKILL after :data:`WORKER_STOP_S` (the next start re-queues what it held).  It
    dies with this process (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the coordinator
    leaves no worker evaluating on its own."""

    def __init__(self, cfg: Config, *, stderr: Any = None, stop_s: float = WORKER_STOP_S):
        self.cfg = cfg
        self.stderr = stderr
        self.stop_s = stop_s
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._stopping = False
        self._watch: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        self._stopping = False
        self._spawn()
        self._watch = asyncio.create_task(self._keep_running(), name="evaluation-worker")

    def _spawn(self) -> None:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        argv = [sys.executable, "-m", "l402tui.coordinator.runtime", "--parent", str(os.getpid()),
                "--log-level", str(level), "--db", str(self.cfg.db_path)]
        stderr = self.stderr if self.stderr is not None else _worker_log(self.cfg)
        try:
            # Its own session: a terminal's Ctrl+C reaches the coordinator, which stops it in order.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                         env=worker_env(self.cfg), start_new_session=True, close_fds=True)
        finally:
            if stderr is not self.stderr:
                stderr.close()  # the child holds its own descriptor
        self.starts += 1
        log.info("evaluation worker started (pid %d)", self.proc.pid)

    async def _keep_running(self) -> None:
        pause = 1.0
        while True:
            started = time.monotonic()
            while self.proc.poll() is None:
                await asyncio.sleep(0.5)
            if self._stopping:
                return
            if time.monotonic() - started > WORKER_RESTART_MAX_S:
                pause = 1.0  # it ran a good while: a new failure, not the same one again
            log.warning("the evaluation worker (pid %d) exited with code %s; starting another in %.0f s",
                        self.proc.pid, self.proc.returncode, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, WORKER_RESTART_MAX_S)
            if self._stopping:
                return
            self._spawn()

    async def stop(self) -> None:
        """SIGTERM, wait up to ``stop_s``, then SIGKILL.  Safe to call twice."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_s
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if proc.poll() is None:
            log.warning("the evaluation worker did not stop within %.0f s; killed (its work is re-queued at "
                        "the next start)", self.stop_s)
            proc.kill()
            while proc.poll() is None:
                await asyncio.sleep(0.02)


def worker_env(cfg: Config) -> dict[str, str]:
    """This process's environment with every setting of ``cfg`` as an ``L402TUI_*`` variable,
    so the worker's ``load_config()`` sees what this process was given (``--data-dir`` and
    other flags included)."""
    env = dict(os.environ)
    env[ENV_PREFIX + "CONFIG"] = str(cfg.config_path)
    for section, keys in cfg.values.items():
        for key, value in keys.items():
            if isinstance(DEFAULTS.get(section, {}).get(key), dict):
                continue  # tables (the TUI's keymap): nothing the worker reads
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            env[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = text
    return env


def _worker_log(cfg: Config):
    from l402tui.store.privacy import make_private_file

    path = cfg.data_dir / "evaluation-worker.log"
    try:
        if path.stat().st_size > WORKER_LOG_MAX_BYTES:
            path.replace(path.with_suffix(".log.1"))
    except OSError:
        pass
    make_private_file(path)
    return open(path, "ab")


def _worker_main(argv: list[str]) -> int:
    """The child's entry: die with the coordinator, log as it does, then the worker's own main."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m l402tui.coordinator.runtime")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    level = args.log_level if args.log_level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"
    logging.basicConfig(level=level, stream=sys.stderr, datefmt="%H:%M:%S",
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    from l402tui.evaluation.worker import main

    return main(["--db", args.db])


def _die_with_parent(parent: int) -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the coordinator's stop still ends it
        pass
    if os.getppid() != parent:  # the coordinator was gone before the line above
        os._exit(1)


@dataclass
class RunningCoordinator:
    coordinator: Any  # l402tui.coordinator.service.Coordinator
    runner: Any  # aiohttp.web.AppRunner
    url: str | None  # None when the port could not be bound (the service still runs)
    admin_path: Path
    cfg: Config
    bind_error: str | None = None
    worker: WorkerProcess | None = None  # the evaluation worker's process, when this coordinator has one
    _sandbox: str | None = field(default=None, repr=False)

    @property
    def sandbox(self) -> str:
        """The runner evaluations use ("docker", "bwrap" or "local").  Found on first use:
        asking costs the docker SDK's import and an engine ping, which the TUI never needs."""
        if self._sandbox is None:
            self._sandbox = sandbox_choice(self.cfg)
        return self._sandbox

    async def close(self) -> None:
        """Stop the server, the worker and the service (the app's cleanup closes the service)."""
        await self.runner.cleanup()


def sandbox_choice(cfg: Config) -> str:
    from l402tui.evaluation.runners import sandbox_status

    _, chosen = sandbox_status(cfg.section("evaluation"))
    return chosen


LOCK_NAME = "coordinator.lock"


class CoordinatorBusy(Exception):
    """Another coordinator already runs on this data dir."""


def hold_data_dir(data_dir: Path) -> int:
    """An exclusive lock on the data dir for as long as the returned fd stays open (the
    kernel drops it with the process, ``kill -9`` included).  Two coordinators on one
    database would both run workers, timers and payouts; the second is refused."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        raise CoordinatorBusy(f"another coordinator{f' (pid {holder})' if holder.isdigit() else ''} already runs "
                              f"on {data_dir}; stop it first, or attach to it: `l402tui --attach URL`") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def data_dir_busy(data_dir: Path) -> str | None:
    """Why this data dir is in use by a running coordinator, or None (the lock is free)."""
    if not (data_dir / LOCK_NAME).exists():
        return None
    try:
        os.close(hold_data_dir(data_dir))
    except CoordinatorBusy as exc:
        return str(exc)
    return None


async def start_coordinator(cfg: Config, *, net: Any = None, evaluate: bool = True,
                            tolerate_bind_error: bool = False, access_log: bool = False,
                            worker_stderr: Any = None) -> RunningCoordinator:
    """Open and start the coordinator with its HTTP API on coordinator.host:port (0 = any free port).

    ``net``: an open SimNetwork to use for the coordinator's node (the demo shares one);
    otherwise the backend comes from config.  With ``tolerate_bind_error`` a port that is
    taken leaves the service running without HTTP instead of failing.  With ``evaluate``
    an evaluation worker process works the queue; what it logs goes to ``worker_stderr``
    (a file object; `serve` gives its own stderr), else to ``evaluation-worker.log`` in
    the data dir (a TUI's terminal must not receive it).  Raises CoordinatorBusy when
    another coordinator holds the data dir."""
    lock = DataDirLock(hold_data_dir(cfg.data_dir))
    try:
        return await _start(cfg, lock, net=net, evaluate=evaluate, tolerate_bind_error=tolerate_bind_error,
                            access_log=access_log, worker_stderr=worker_stderr)
    except BaseException:
        lock.release()
        raise


class DataDirLock:
    def __init__(self, fd: int):
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


async def _start(cfg: Config, lock: DataDirLock, *, net: Any, evaluate: bool, tolerate_bind_error: bool, access_log: bool,
                 worker_stderr: Any) -> RunningCoordinator:
    from aiohttp import web

    from l402tui.coordinator.admin import ensure_admin_macaroon
    from l402tui.coordinator.app import create_app
    from l402tui.coordinator.http_common import HEADER_TIMEOUT_S, ConnectionCap, quiet_bad_request_logs
    from l402tui.coordinator.service import Coordinator

    backend = None
    if net is not None:
        backend = net.node(cfg.get("lightning.node"))
    coordinator = await Coordinator.open(cfg, backend)
    try:
        if coordinator.backend.name == "sim":
            # The embedded network needs this node to exist; a real node simply is.
            await coordinator.backend.net.create_node(coordinator.backend.node_name, 0, exist_ok=True)
            coordinator.backend.net.poll_interval_s = max(coordinator.backend.net.poll_interval_s, SIM_POLL_S)
        admin_path = await ensure_admin_macaroon(coordinator.store, cfg.data_dir)
    except BaseException:
        # A refusal before the app owns the coordinator (a damaged token master key, say):
        # close the database threads, or the process could not exit.
        await coordinator.close()
        raise
    log_options: dict[str, Any] = ({"access_log_format": '%a "%r" %s %b %Tfs'} if access_log
                                   else {"access_log": None})
    app = create_app(coordinator)

    async def release_data_dir(app: web.Application) -> None:
        lock.release()  # last: after the worker and the service are closed

    app.on_cleanup.append(release_data_dir)
    worker = WorkerProcess(cfg, stderr=worker_stderr) if evaluate else None
    if worker is not None:
        async def worker_lifetime(app: web.Application):
            await worker.start()  # after the coordinator's start (reconciliation), as before
            yield
            await worker.stop()

        async def stop_worker(app: web.Application) -> None:
            # Before the server waits for open requests: running evaluations stop (and are
            # re-queued) at once, not after the slowest event stream.
            await worker.stop()

        app.cleanup_ctx.append(worker_lifetime)
        app.on_shutdown.append(stop_worker)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0, keepalive_timeout=HEADER_TIMEOUT_S,
                           **log_options)
    await runner.setup()  # starts the service's background work and, with evaluate, the worker process
    ConnectionCap().install(runner.server)
    quiet_bad_request_logs()
    host, port = cfg.get("coordinator.host"), int(cfg.get("coordinator.port"))
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        if not tolerate_bind_error:
            await runner.cleanup()
            raise
        return RunningCoordinator(coordinator, runner, None, admin_path, cfg,
                                  bind_error=f"{host}:{port}: {exc.strerror or exc}", worker=worker)
    except BaseException:
        # Whatever else stops the start (a bad address, a signal): release the database
        # and the worker, so nothing holds them after we are gone.
        await runner.cleanup()
        raise
    sockets = site._server.sockets if site._server else []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    return RunningCoordinator(coordinator, runner, f"http://{shown}:{bound}", admin_path, cfg, worker=worker)


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
