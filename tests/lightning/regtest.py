"""Real bitcoind (regtest) and three real lightningd nodes for the Lightning tests.

Where the binaries come from, first match wins:
  L402TUI_CLN_DIST     a folder with bin/lightningd, bin/lightning-cli, bin/bitcoind, bin/bitcoin-cli
  L402TUI_CLN_ARCHIVE  the ../shared/cln tarball (unpacked into the network's temp dir)
  ../shared/cln/*.tar.xz beside the checkout
  PATH                 lightningd, bitcoind and bitcoin-cli installed by the user

Nodes: ``sponsor``, ``coordinator`` (our hold-invoice plugin loaded through a wrapper
that execs this interpreter) and ``agent``.  The coordinator alone is funded on chain
and opens one channel to each of the others with half pushed to them, so every node
can pay and be paid without waiting for gossip.  Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "l402tui" / "lightning" / "cln_holdinvoice.py"
# P2WSH(OP_TRUE): a regtest burn address to mine to (bitcoind runs without a wallet).
BURN = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85"
CHANNEL_SAT = 2_000_000
PUSH_MSAT = 1_000_000_000
SAFETY_BLOCKS = 6
MPP_TIMEOUT_S = 3
NODES = ("sponsor", "coordinator", "agent")


class RegtestUnavailable(RuntimeError):
    """No lightningd/bitcoind to run: the message says where we looked."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shared_archive() -> Path | None:
    found = sorted((REPO.parent / "shared" / "cln").glob("cln-regtest-*.tar.xz"))
    return found[-1] if found else None


def locate_binaries(workdir: Path) -> Path:
    """The folder holding lightningd, lightning-cli, bitcoind and bitcoin-cli."""
    names = ("lightningd", "lightning-cli", "bitcoind", "bitcoin-cli")
    dist = os.environ.get("L402TUI_CLN_DIST")
    if dist:
        bin_dir = Path(dist) / "bin"
        missing = [n for n in names if not (bin_dir / n).exists()]
        if missing:
            raise RegtestUnavailable(f"L402TUI_CLN_DIST={dist} lacks bin/{', bin/'.join(missing)}")
        return bin_dir
    archive = os.environ.get("L402TUI_CLN_ARCHIVE") or _shared_archive()
    if archive:
        archive = Path(archive)
        if not archive.is_file():
            raise RegtestUnavailable(f"L402TUI_CLN_ARCHIVE={archive} is not a file")
        with tarfile.open(archive) as tar:
            tar.extractall(workdir / "cln", filter="tar")
        return workdir / "cln" / "dist" / "bin"
    paths = [shutil.which(n) for n in names]
    if all(paths):
        return Path(paths[0]).parent  # type: ignore[arg-type]
    raise RegtestUnavailable("no lightningd/bitcoind: set L402TUI_CLN_DIST or L402TUI_CLN_ARCHIVE, or put "
                             "lightningd, lightning-cli, bitcoind and bitcoin-cli on PATH")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # a daemon still starting refuses connections
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"regtest: timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Node:
    name: str
    dir: Path
    port: int
    args: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    id: str = ""

    @property
    def rpc_path(self) -> Path:
        return self.dir / "regtest" / "lightning-rpc"

    def rpc(self):
        from pyln.client import LightningRpc

        return LightningRpc(str(self.rpc_path))

    def call(self, method: str, **params):
        return self.rpc().call(method, params)


@dataclass
class RegtestNetwork:
    root: Path
    bin_dir: Path = field(init=False)
    rpc_port: int = field(default_factory=free_port)
    nodes: dict[str, Node] = field(default_factory=dict)
    bitcoind: subprocess.Popen | None = None
    plugin_path: Path = PLUGIN
    extra_args: dict[str, list[str]] = field(default_factory=dict)

    # -- bitcoind --------------------------------------------------------------------

    def bcli(self, *args: str) -> str:
        out = subprocess.run([str(self.bin_dir / "bitcoin-cli"), "-regtest", f"-datadir={self.root / 'btc'}",
                              "-rpcconnect=127.0.0.1", f"-rpcport={self.rpc_port}", "-rpcuser=l402",
                              "-rpcpassword=regtest", *args], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"bitcoin-cli {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout.strip()

    def height(self) -> int:
        return int(self.bcli("getblockcount"))

    def mine(self, blocks: int, address: str = BURN) -> int:
        """Mine ``blocks`` and wait until every running node has seen them."""
        if blocks > 0:
            self.bcli("generatetoaddress", str(blocks), address)
        target = self.height()
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                wait_until(lambda n=node: n.call("getinfo")["blockheight"] >= target, 60,
                           f"{node.name} to reach block {target}")
        return target

    # -- lightningd ------------------------------------------------------------------

    def _wrapper(self) -> Path:
        # lightningd runs a plugin with its shebang: exec this venv's python instead.
        wrapper = self.root / "cln_holdinvoice"
        wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {self.plugin_path} \"$@\"\n")
        wrapper.chmod(0o755)
        return wrapper

    def _node_args(self, name: str, directory: Path, port: int) -> list[str]:
        args = [str(self.bin_dir / "lightningd"), "--network=regtest", f"--lightning-dir={directory}",
                f"--bitcoin-cli={self.bin_dir / 'bitcoin-cli'}", f"--bitcoin-datadir={self.root / 'btc'}",
                "--bitcoin-rpcconnect=127.0.0.1", f"--bitcoin-rpcport={self.rpc_port}",
                "--bitcoin-rpcuser=l402", "--bitcoin-rpcpassword=regtest", f"--addr=127.0.0.1:{port}",
                f"--alias={name}", f"--log-file={directory / 'log'}", "--log-level=debug",
                "--developer", "--dev-bitcoind-poll=1", "--dev-fast-gossip"]
        if name == "coordinator":
            args += [f"--plugin={self._wrapper()}", f"--l402tui-hold-safety-blocks={SAFETY_BLOCKS}",
                     f"--l402tui-hold-mpp-timeout={MPP_TIMEOUT_S}"]
        return args + self.extra_args.get(name, [])

    def start_node(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{node.name}.out", "ab") as out:
            node.proc = subprocess.Popen(node.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        info = wait_until(lambda: node.call("getinfo"), 60, f"lightningd {node.name} to answer")
        node.id = info["id"]

    def stop_node(self, node: Node, timeout: float = 30) -> None:
        if node.proc is None or node.proc.poll() is not None:
            return
        try:
            node.call("stop")
        except Exception:
            node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()

    def restart_node(self, name: str) -> None:
        """Stop lightningd cleanly and start it again with the same data and options."""
        node = self.nodes[name]
        self.stop_node(node)
        self.start_node(node)
        self.wait_channels_normal()

    def wait_channels_normal(self, timeout: float = 60) -> None:
        def normal() -> bool:
            for name in ("sponsor", "agent"):
                chans = self.nodes[name].call("listpeerchannels")["channels"]
                if not chans or not all(c["state"] == "CHANNELD_NORMAL" and c.get("peer_connected")
                                        for c in chans):
                    return False
            return True

        wait_until(normal, timeout, "channels CHANNELD_NORMAL and peers connected")

    # -- the whole network -----------------------------------------------------------

    def start(self) -> "RegtestNetwork":
        self.bin_dir = locate_binaries(self.root)
        btc = self.root / "btc"
        btc.mkdir(parents=True)
        with open(self.root / "bitcoind.out", "ab") as out:
            self.bitcoind = subprocess.Popen(
                [str(self.bin_dir / "bitcoind"), "-regtest", f"-datadir={btc}", "-server=1", "-listen=0",
                 "-connect=0", "-dnsseed=0", "-fixedseeds=0", "-listenonion=0", "-discover=0", "-natpmp=0",
                 "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1", f"-rpcport={self.rpc_port}",
                 "-rpcuser=l402", "-rpcpassword=regtest", "-printtoconsole=0"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.bcli("getblockchaininfo"), 60, "bitcoind RPC")
        self.bcli("generatetoaddress", "1", BURN)  # leave initial block download
        for name in NODES:
            directory, port = self.root / name, free_port()
            self.nodes[name] = Node(name, directory, port, self._node_args(name, directory, port),
                                    directory / "log")
            self.nodes[name].dir.mkdir(parents=True)
            with open(self.root / f"{name}.out", "ab") as out:
                self.nodes[name].proc = subprocess.Popen(self.nodes[name].args, stdout=out,
                                                         stderr=subprocess.STDOUT, start_new_session=True)
        for node in self.nodes.values():  # the three start in parallel
            node.id = wait_until(lambda n=node: n.call("getinfo"), 90, f"lightningd {node.name}")["id"]
        self._open_channels()
        return self

    def _open_channels(self) -> None:
        coordinator = self.nodes["coordinator"]
        address = coordinator.call("newaddr")
        self.mine(101, address.get("bech32") or address["p2tr"])
        wait_until(lambda: any(o["status"] == "confirmed" for o in coordinator.call("listfunds")["outputs"]),
                   60, "the coordinator's confirmed funds")
        destinations = []
        for name in ("sponsor", "agent"):
            peer = self.nodes[name]
            coordinator.call("connect", id=peer.id, host="127.0.0.1", port=peer.port)
            destinations.append({"id": peer.id, "amount": CHANNEL_SAT, "push_msat": PUSH_MSAT})
        coordinator.call("multifundchannel", destinations=destinations)
        wait_until(lambda: int(json.loads(self.bcli("getmempoolinfo"))["size"]) >= 1, 30, "the funding tx")
        self.mine(6)
        self.wait_channels_normal()

    def stop(self) -> None:
        for node in self.nodes.values():
            try:
                self.stop_node(node, timeout=15)
            except Exception:
                pass
        if self.bitcoind is not None and self.bitcoind.poll() is None:
            try:
                self.bcli("stop")
                self.bitcoind.wait(30)
            except Exception:
                self.bitcoind.kill()
                self.bitcoind.wait()


def start_network(keep: bool = False) -> RegtestNetwork:
    """Start a network in a fresh temp dir (short: unix socket paths are limited to ~108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="l402rt-", dir="/tmp"))
    net = RegtestNetwork(root)
    try:
        return net.start()
    except BaseException:
        net.stop()
        logs = "".join(_tail(p) for p in sorted(root.glob("*.out")))
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        if logs:
            sys.stderr.write(logs)
        raise


def stop_network(net: RegtestNetwork, keep: bool = False) -> None:
    net.stop()
    if not keep:
        shutil.rmtree(net.root, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {path.name}\n" + "\n".join(text) + "\n" if text else ""
