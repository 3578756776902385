"""The real CLI as an operator and a local attacker meet it: private files whatever the
umask, a refusal on an exposed data dir or a corrupt database, a lost WAL reported and
reconciled with the Lightning node, `wallet ledger --check` failing on a discrepancy."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.coordinator.conftest import make_bounty

CLI = [sys.executable, "-m", "l402tui.cli"]


def _cli(data: Path, *args: str, umask: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--data-dir", str(data), *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


class Serve:
    """`l402tui serve` in a subprocess, its output collected by a reader thread."""

    def __init__(self, data: Path, umask: int | None = None):
        import threading

        self.proc = subprocess.Popen([*CLI, "--data-dir", str(data), "serve", "--port", "0", "--no-evaluate"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_for(r"listening on (http://\S+)")
        self.macaroon = Path(self._wait_for(r"admin macaroon:\s+(\S+)"))

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def _wait_for(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m.group(1)
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"serve never printed {pattern!r}:\n{self.output}")

    def admin(self, method: str, path: str, **kw) -> requests.Response:
        token = self.macaroon.read_text().strip()
        return requests.request(method, self.url + path, headers={"Authorization": f"Bearer {token}"},
                                timeout=60, **kw)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0, self.output

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


def _buy_and_use(serve: Serve, data: Path, bounty_id: str, umask: int | None = None) -> tuple[str, str]:
    """Buy a download token from agent-1 through the real wallet CLI, use it; returns the
    Authorization value and the payment hash."""
    r = requests.get(f"{serve.url}/api/v1/bounties/{bounty_id}/package", timeout=30)
    assert r.status_code == 402, r.text
    body = r.json()
    paid = _cli(data, "wallet", "--node", "agent-1", "pay", body["invoice"], umask=umask)
    assert paid.returncode == 0, paid.stdout + paid.stderr
    preimage = re.search(r"^preimage ([0-9a-f]{64})$", paid.stdout, re.M).group(1)
    auth = f"L402 {body['macaroon']}:{preimage}"
    got = requests.get(f"{serve.url}/api/v1/bounties/{bounty_id}/package", headers={"Authorization": auth},
                       timeout=30)
    assert got.status_code == 200, got.text
    return auth, body["payment_hash"]


def _invoice_status(data: Path, payment_hash: str) -> str | None:
    db = sqlite3.connect(data / "l402tui.sqlite")
    try:
        row = db.execute("SELECT status FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def _exposed(root: Path) -> list[str]:
    bad = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        if stat.S_IMODE(st.st_mode) & 0o077:
            bad.append(f"{path.relative_to(root.parent)} {stat.filemode(st.st_mode)}")
    return bad


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_everything_the_cli_creates_is_private_whatever_the_umask(tmp_path, umask):
    data = tmp_path / "data"
    made = _cli(data, "wallet", "nodes", "--create", "agent-1", "--balance-sat", "100000", umask=umask)
    assert made.returncode == 0, made.stderr
    serve = Serve(data, umask=umask)
    try:
        created = serve.admin("POST", "/api/v1/admin/bounties",
                              json={"path": str(make_bounty(tmp_path / "sponsor")), "self_funded": True})
        assert created.status_code == 201, created.text
        _buy_and_use(serve, data, created.json()["bounty"]["id"], umask=umask)
        ledger = _cli(data, "wallet", "ledger", umask=umask)
        assert ledger.returncode == 0, ledger.stdout + ledger.stderr
        backup = _cli(data, "backup", str(tmp_path / "backup"), umask=umask)
        assert backup.returncode == 0, backup.stderr
    finally:
        serve.stop()
    names = {p.name for p in data.rglob("*")}
    assert {"l402tui.sqlite", "simnet.sqlite", "admin.macaroon", "package.tar.gz"} <= names, names
    assert _exposed(data) == [], "\n".join(_exposed(data))
    assert _exposed(tmp_path / "backup") == []


@pytest.mark.parametrize("command", [["serve", "--port", "0", "--no-evaluate"], ["tui"]])
def test_a_group_readable_data_dir_is_refused_with_the_fix(tmp_path, command):
    data = tmp_path / "data"
    made = _cli(data, "wallet", "nodes", "--create", "agent-1")  # creates simnet.sqlite, privately
    assert made.returncode == 0, made.stderr
    os.chmod(data, 0o750)
    os.chmod(data / "simnet.sqlite", 0o644)
    refused = _cli(data, *command, timeout=30)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "not private" in refused.stderr and "simnet.sqlite" in refused.stderr
    fix = re.search(r"^\s+(chmod -R go-rwx \S+)$", refused.stderr, re.M)
    assert fix, refused.stderr
    assert not (data / "l402tui.sqlite").exists()  # refused before anything was opened
    subprocess.run(fix.group(1), shell=True, check=True)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "simnet.sqlite").stat().st_mode) == 0o600


def test_a_data_dir_other_users_can_write_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chmod(data, 0o703)  # others may write (plant files) but not read
    refused = _cli(data, "serve", "--port", "0", "--no-evaluate", timeout=30)
    assert refused.returncode == 1 and "other users (write/enter)" in refused.stderr, refused.stderr


def _corrupt(db: Path) -> None:
    """Overwrite the second half of the file (table and index pages, not the header) with junk."""
    size = db.stat().st_size
    page = 4096
    assert size >= 4 * page
    with open(db, "r+b") as f:
        f.seek(page)
        f.write(os.urandom(size - page))


def test_a_corrupted_database_is_refused_at_start_pointing_at_a_backup(tmp_path):
    data = tmp_path / "data"
    serve = Serve(data)
    serve.admin("POST", "/api/v1/admin/bounties",
                json={"path": str(make_bounty(tmp_path / "sponsor")), "self_funded": True})
    serve.stop()
    _corrupt(data / "l402tui.sqlite")
    refused = _cli(data, "serve", "--port", "0", "--no-evaluate", timeout=30)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "is corrupt" in refused.stderr and "l402tui backup" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_a_deleted_wal_after_a_paid_token_is_reported_and_reconciled(tmp_path):
    data = tmp_path / "data"
    assert _cli(data, "wallet", "nodes", "--create", "agent-1", "--balance-sat", "100000").returncode == 0
    # 1. A bounty, then a clean stop: it is checkpointed into the database file.
    serve = Serve(data)
    created = serve.admin("POST", "/api/v1/admin/bounties",
                          json={"path": str(make_bounty(tmp_path / "sponsor")), "self_funded": True})
    bounty_id = created.json()["bounty"]["id"]
    serve.stop()
    # 2. A token bought and used, then kill -9 and the WAL deleted: its rows are gone.
    serve = Serve(data)
    auth, payment_hash = _buy_and_use(serve, data, bounty_id)
    deadline = time.monotonic() + 30  # the payment is recorded (an unpaid offer writes no event to stamp)
    while time.monotonic() < deadline and _invoice_status(data, payment_hash) != "SETTLED":
        time.sleep(0.05)
    serve.kill9()
    wal = data / "l402tui.sqlite-wal"
    assert wal.exists() and wal.stat().st_size > 0
    wal.unlink()
    (data / "l402tui.sqlite-shm").unlink(missing_ok=True)
    # 3. The next start says so, and the node's record of the paid token is reconciled.
    serve = Serve(data)
    try:
        deadline = time.monotonic() + 30
        while "RECONCILIATION" not in serve.output and time.monotonic() < deadline:
            time.sleep(0.1)
        out = serve.output
        assert "lost committed writes" in out, out
        assert re.search(r"RECONCILIATION: an agent paid 21 sat for an L402 token \(download[^)]*\) for bounty "
                         + re.escape(bounty_id), out), out
        assert "payouts are halted" in out, out
        # The bounty survived, and the paid token works again: the node showed its invoice paid,
        # and its signature (a key derived from the master, not from the lost row) proves it ours.
        assert requests.get(f"{serve.url}/api/v1/bounties/{bounty_id}", timeout=10).status_code == 200
        again = requests.get(f"{serve.url}/api/v1/bounties/{bounty_id}/package", headers={"Authorization": auth},
                             timeout=30)
        assert again.status_code == 200, again.text
        check = _cli(data, "wallet", "ledger", "--check")
        assert check.returncode == 1, check.stdout
        assert "(lost_writes)" in check.stdout and "PAYOUTS HALTED" in check.stdout
        assert "(l402_token_lost)" not in check.stdout  # closed when its holder came back
    finally:
        serve.stop()
    db = sqlite3.connect(data / "l402tui.sqlite")
    restored = db.execute("SELECT kind, status, bounty_id, amount_msat FROM invoices WHERE payment_hash = ?",
                          (payment_hash,)).fetchall()
    db.close()
    assert restored == [("l402", "SETTLED", bounty_id, 21_000)]
    # A restart finds nothing new, and reminds of what is still open.
    serve = Serve(data)
    time.sleep(1.0)
    serve.stop()
    assert "RECONCILIATION" not in serve.output and "l402tui.store" not in serve.output, serve.output
    assert "OPEN FINDING 1 (lost_writes)" in serve.output and "(l402_token_lost)" not in serve.output
    db = sqlite3.connect(data / "l402tui.sqlite")
    kinds = sorted(k for (k,) in db.execute("SELECT kind FROM store_findings"))
    db.close()
    assert kinds == ["l402_token_lost", "lost_writes"]


# -- reconciliation with the node, in-process over real SQLite and the sim ---------------


async def _paid_token(server, coordinator, net, bounty_dir) -> tuple[str, str]:
    import aiohttp

    bounty_id = (await coordinator.create_bounty(bounty_dir, self_funded=True))["bounty"]["id"]
    async with aiohttp.ClientSession() as session:
        async with session.get(str(server.make_url(f"/api/v1/bounties/{bounty_id}/package"))) as r:
            assert r.status == 402
            body = await r.json()
    await net.node("agent-1").pay(body["invoice"])
    for _ in range(100):  # the coordinator's invoice stream marks it paid
        if await coordinator.store.scalar("SELECT status FROM invoices WHERE payment_hash = ?",
                                          (body["payment_hash"],)) == "SETTLED":
            break
        await asyncio.sleep(0.05)
    return bounty_id, body["payment_hash"]


def _ledger_check(cfg) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--data-dir", str(cfg.data_dir), "wallet", "ledger", "--check"],
                          capture_output=True, text=True, timeout=60)


async def test_wallet_ledger_check_fails_on_each_planted_discrepancy(server, coordinator, net, bounty_dir, cfg):
    bounty_id, payment_hash = await _paid_token(server, coordinator, net, bounty_dir)
    await coordinator.stop()
    clean = await asyncio.to_thread(_ledger_check, cfg)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "store and Lightning node agree" in clean.stdout

    # The store forgot that the node settled it.
    async with coordinator.store.transaction() as txn:
        await txn.execute("UPDATE invoices SET status = 'OPEN' WHERE payment_hash = ?", (payment_hash,))
    differs = await asyncio.to_thread(_ledger_check, cfg)
    assert differs.returncode == 1
    assert "(state_differs)" in differs.stdout and f"{payment_hash} (21 sat) is SETTLED on the node but OPEN" \
        in differs.stdout

    # The store lost the row entirely (a deleted WAL).
    async with coordinator.store.transaction() as txn:
        await txn.execute("DELETE FROM invoices WHERE payment_hash = ?", (payment_hash,))
    lost = await asyncio.to_thread(_ledger_check, cfg)
    assert lost.returncode == 1 and "(l402_token_lost)" in lost.stdout and bounty_id in lost.stdout

    # The store claims money the node never received.
    async with coordinator.store.transaction() as txn:
        await txn.insert("invoices", {"payment_hash": "ab" * 32, "kind": "stake", "bolt11": "lnbcrt1x",
                                      "amount_msat": 5000, "status": "ACCEPTED", "created_at": time.time()})
    phantom = await asyncio.to_thread(_ledger_check, cfg)
    assert phantom.returncode == 1 and "(missing_on_node)" in phantom.stdout


async def test_a_start_recovers_what_the_node_knows_and_writes_down_the_rest(coordinator, net, cfg):
    from l402tui.coordinator.reconcile import reconcile_at_start

    node = net.node("coordinator")
    sponsor = net.node("sponsor")
    # A funding hold the sponsor paid, for a bounty the store lost with its preimage.
    orphan = await node.create_hold_invoice("cd" * 32, 50_000_000, "l402tui: fund bounty gone-123abc (Gone)")
    assert (await sponsor.pay(orphan.bolt11, timeout_s=0.5)).state.value == "PENDING"
    # A plain invoice of the operator's own (not the coordinator's): left alone.
    own = await node.create_invoice(7_000, "coffee")
    await sponsor.pay(own.bolt11)
    async with coordinator.store.transaction() as txn:  # what Store.open writes after a deleted WAL
        await txn.insert("store_findings", {"kind": "lost_writes", "message": "lost", "found_at": time.time()})
    before = (await sponsor.status()).balance_msat

    found = await reconcile_at_start(coordinator)
    assert [d.kind for d in found] == ["hold_orphaned"]
    assert (await node.lookup_invoice(orphan.payment_hash)).state.value == "CANCELED"
    assert (await sponsor.status()).balance_msat > before  # the sponsor has the money back
    rows = await coordinator.store.fetchall("SELECT kind, payment_hash, action FROM store_findings ORDER BY id")
    assert [(r["kind"], r["payment_hash"]) for r in rows] == [("lost_writes", None),
                                                             ("hold_orphaned", orphan.payment_hash)]
    assert rows[1]["action"].startswith("cancelled") and rows[0]["action"] == "payouts halted"
    from l402tui.coordinator import ledger

    assert "lost committed writes" in (await ledger.halted_reason(coordinator.store))
    # A second start adds nothing.
    await reconcile_at_start(coordinator)
    assert await coordinator.store.scalar("SELECT COUNT(*) FROM store_findings") == 2


async def test_without_evidence_of_loss_a_foreign_hold_is_only_listed(coordinator, net):
    from l402tui.coordinator.reconcile import reconcile_at_start

    node = net.node("coordinator")
    hold = await node.create_hold_invoice("ef" * 32, 10_000, "l402tui: stake for submission s_unknown")
    await net.node("agent-1").pay(hold.bolt11, timeout_s=0.5)
    found = await reconcile_at_start(coordinator)
    assert [d.kind for d in found] == ["hold_orphaned"]
    assert (await node.lookup_invoice(hold.payment_hash)).state.value == "ACCEPTED"  # not ours to cancel
    row = await coordinator.store.fetchone("SELECT action FROM store_findings WHERE kind = 'hold_orphaned'")
    assert row["action"] is None


async def test_a_lost_paid_token_can_be_readopted_once(server, coordinator, net, bounty_dir):
    from l402tui.coordinator.reconcile import reconcile_at_start
    from l402tui.store.findings import is_lost_paid_token, token_readopted

    _, payment_hash = await _paid_token(server, coordinator, net, bounty_dir)
    assert not await is_lost_paid_token(coordinator.store, payment_hash)
    async with coordinator.store.transaction() as txn:  # its rows gone with a WAL
        await txn.execute("DELETE FROM invoices WHERE payment_hash = ?", (payment_hash,))
        await txn.execute("DELETE FROM l402_root_keys WHERE payment_hash = ?", (payment_hash,))
    await reconcile_at_start(coordinator)
    assert await is_lost_paid_token(coordinator.store, payment_hash)
    async with coordinator.store.transaction() as txn:
        await token_readopted(txn, payment_hash, "t" * 64)
    assert not await is_lost_paid_token(coordinator.store, payment_hash)
    row = await coordinator.store.fetchone("SELECT action, note FROM store_findings WHERE payment_hash = ?",
                                           (payment_hash,))
    assert row["action"] == "token re-adopted" and "t" * 64 in row["note"]
