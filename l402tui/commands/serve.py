"""`l402tui serve`: the coordinator headless — HTTP API, L402 gate, evaluation queue.

Built to be driven by an init system (docs/operating.md has a systemd unit):

- SIGTERM or SIGINT stops accepting, cancels running evaluations (their sandboxes
  are killed and the work re-queued for the next start), closes event streams and
  exits 0 within a few seconds; a second signal exits at once.
- Nothing printed can break the stop: a stdout whose reader is gone is dropped.
- With ``NOTIFY_SOCKET`` set (systemd ``Type=notify``) it reports READY=1 once
  listening and STOPPING=1 when a stop begins.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import resource
import signal
import socket
import sys
import threading

import click

from l402tui.config import Config

log = logging.getLogger("l402tui.serve")

# After the first signal the process is gone within this long, whatever hangs.
STOP_DEADLINE_S = 4.8


class _OneLineUsageErrors(click.Command):
    """Bad options are one line on stderr (exit 2): an init system's journal shows the
    whole reason, not a usage block with the reason at the bottom."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.ctx = None  # without a context click prints only "Error: <message>"
            raise


class BadAddress(click.ClickException):
    exit_code = 2  # a usage error, like a bad option


@click.command(cls=_OneLineUsageErrors, epilog="\b\nExamples:\n  l402tui serve\n"
               "  l402tui --data-dir /srv/l402 serve --port 9000 --log-level warning")
@click.option("--host", help="Address to bind (default: coordinator.host, 127.0.0.1). "
              "0.0.0.0 exposes it to your LAN; see docs/api.md first.")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port (default: coordinator.port, 8402; 0 picks a free one).")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Work the evaluation queue in a worker process this one starts and stops (turn "
                   "off when a separate `python -m l402tui.evaluation.worker` does it).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="How much to log.")
@click.pass_obj
def serve(cfg: Config, host: str | None, port: int | None, evaluate: bool, log_level: str) -> None:
    """Run the coordinator headless until SIGINT or SIGTERM.

    Prints the URL, the admin API URL and the admin macaroon's path (0600 in the data
    dir; the TUI's --attach and admin calls send it as 'Authorization: Bearer <it>').
    """
    cfg = cfg.with_overrides({"coordinator.host": host, "coordinator.port": port})
    _check_address(cfg)  # before anything opens the database
    from l402tui.commands.preflight import check_before_start
    check_before_start(cfg)  # a private data dir, whole databases (refuses with the fix)
    logging.basicConfig(level=getattr(logging, log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if log_level != "debug" else logging.DEBUG)
    _raise_open_files_limit()
    # Until the loop's own handlers are in place (and after they are gone), a signal ends
    # the process quietly instead of a KeyboardInterrupt traceback.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_now)
    from l402tui.coordinator.runtime import CoordinatorBusy
    from l402tui.l402.rootkeys import MasterKeyError

    try:
        asyncio.run(_serve(cfg, evaluate))
    except MasterKeyError as exc:  # the token master key file is unreadable, exposed or not ours
        raise click.ClickException(str(exc)) from None
    except CoordinatorBusy as exc:  # a second serve (or a TUI's coordinator) on this data dir
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {cfg.get('coordinator.host')}:{cfg.get('coordinator.port')}: "
                                   f"{exc.strerror or exc}; pick another --port or stop what holds it") from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _exit_now)


def _check_address(cfg: Config) -> None:
    """Refuse an address that cannot be bound, as a usage error (exit 2, one line)."""
    host, port = cfg.get("coordinator.host"), cfg.get("coordinator.port")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise BadAddress(f"invalid port {port!r} (coordinator.port): give a number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise BadAddress(f"invalid port {port} (coordinator.port): give a number from 0 to 65535")
    if not isinstance(host, str) or not host:
        raise BadAddress("invalid --host: give an address to bind, such as 127.0.0.1")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise BadAddress(f"invalid --host {host!r}: not an address this machine can bind ({exc})") from None


def _raise_open_files_limit() -> None:
    # Every event-stream client holds a socket; the usual soft limit of 1024 would refuse
    # the 1025th connection with EMFILE long before the hard limit the operator allows.
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 65536), hard))
    except (OSError, ValueError):
        pass


def _exit_now(signum: int, frame: object = None) -> None:
    os._exit(128 + signum)


def say(line: str, *, err: bool = False) -> None:
    """Print a line; a stdout or stderr whose reader has gone is dropped, never raised."""
    stream = sys.stderr if err else sys.stdout
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        _drop(stream)


def _drop(stream) -> None:
    # Point the descriptor at /dev/null so later writes (and the flush at exit) are silent.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def sd_notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd's notify socket, if there is one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.warning("could not notify the service manager at %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False


class _Stopper:
    """First signal: a graceful stop with a hard deadline.  Second: exit at once."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signals = 0

    def __call__(self, signum: int) -> None:
        self.signals += 1
        if self.signals > 1:
            _exit_now(signum)
        self.event.set()
        # Whatever hangs (a sandbox that will not die, a node that does not answer),
        # the init system gets its process back in time.
        timer = threading.Timer(STOP_DEADLINE_S, self._overdue)
        timer.daemon = True
        timer.start()

    @staticmethod
    def _overdue() -> None:
        say(f"l402tui: the stop took longer than {STOP_DEADLINE_S:g} s; exiting now "
            "(interrupted work is re-queued at the next start)", err=True)
        os._exit(1)


async def _serve(cfg: Config, evaluate: bool) -> None:
    from l402tui.coordinator.runtime import start_coordinator

    stopper = _Stopper()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopper, sig)
    running = await start_coordinator(cfg, evaluate=evaluate, access_log=True, worker_stderr=sys.stderr)
    try:
        if not stopper.event.is_set():
            _announce(cfg, running, evaluate)
            sd_notify("READY=1\nSTATUS=listening on " + str(running.url))
            await stopper.event.wait()
        sd_notify("STOPPING=1")
        say("stopping: cancelling evaluations (re-queued for the next start), closing event streams ...")
    finally:
        await running.close()
    say("stopped")


def _announce(cfg: Config, running, evaluate: bool) -> None:
    backend = running.coordinator.backend
    base = running.url
    say(f"l402tui coordinator listening on {base}  (lightning: {backend.name}, "
        f"evaluations: {_evaluations(running) if evaluate else 'external worker'})")
    say(f"admin API:       {base}/api/v1/admin/bounties")
    say(f"admin macaroon:  {running.admin_path}  (send as 'Authorization: Bearer <contents>')")
    say(f"attach the TUI:  l402tui --attach {base} --admin-macaroon {running.admin_path}")
    if not _is_loopback(cfg.get("coordinator.host")):
        say("warning: listening beyond this machine over plain HTTP; put a TLS reverse proxy in front "
            "(docs/api.md)", err=True)


def _evaluations(running) -> str:
    pid = running.worker.pid if running.worker is not None else None
    return f"worker process {pid}, sandbox {running.sandbox}" if pid else f"sandbox {running.sandbox}"


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
