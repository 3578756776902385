"""`l402tui wallet` against sim nodes: create nodes, invoice, pay, list, mine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from l402tui.cli import main

ROOT = Path(__file__).resolve().parents[2]


def wallet(data_dir: Path, *args: str, node: str | None = None):
    argv = ["--data-dir", str(data_dir), "wallet"] + (["--node", node] if node else []) + list(args)
    return CliRunner().invoke(main, argv, catch_exceptions=False)


def test_wallet_round_trip_between_sim_nodes(tmp_path):
    assert wallet(tmp_path, "nodes", "--create", "coordinator").exit_code == 0
    made = wallet(tmp_path, "nodes", "--create", "sponsor", "--balance-sat", "100000")
    assert made.exit_code == 0 and "sponsor" in made.output and "100,000 sat" in made.output

    inv = wallet(tmp_path, "invoice", "2100", "-d", "bounty fee")
    assert inv.exit_code == 0, inv.output
    bolt11 = inv.stdout.strip().splitlines()[0]
    assert bolt11.startswith("lnbcrt21u1")

    paid = wallet(tmp_path, "pay", bolt11, node="sponsor")
    assert paid.exit_code == 0, paid.output
    assert paid.output.startswith("COMPLETE: 2,100 sat to coordinator, fee 3 sat 100 msat")
    assert "preimage " in paid.output

    balance = wallet(tmp_path, "balance")
    assert "balance  2,100 sat" in balance.output and "coordinator (sim, regtest" in balance.output
    listed = wallet(tmp_path, "list")
    assert "SETTLED" in listed.output and "bounty fee" in listed.output
    sponsor = wallet(tmp_path, "list", node="sponsor")
    assert "1 payment(s)" in sponsor.output and "COMPLETE" in sponsor.output

    mined = wallet(tmp_path, "mine", "3")
    assert mined.exit_code == 0 and mined.output.startswith("block height ")
    books = wallet(tmp_path, "nodes")
    assert "routing fees 3 sat 100 msat" in books.output and "DO NOT BALANCE" not in books.output


def test_wallet_errors_say_what_to_do(tmp_path):
    wallet(tmp_path, "nodes", "--create", "coordinator")
    missing = wallet(tmp_path, "balance", node="agent-9")
    assert missing.exit_code == 1
    assert "no sim node named 'agent-9'" in missing.output and "--create agent-9" in missing.output
    broke = wallet(tmp_path, "nodes", "--create", "agent-1")
    assert broke.exit_code == 0
    inv = wallet(tmp_path, "invoice", "50").stdout.strip().splitlines()[0]
    failed = wallet(tmp_path, "pay", inv, node="agent-1")
    assert failed.exit_code == 1 and "agent-1 has 0 msat" in failed.output
    assert "ledger" in wallet(tmp_path, "--help").output  # loaded lazily from its own module


def test_wallet_runs_as_a_real_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "l402tui.cli", "--data-dir", str(tmp_path), "wallet",
                           "nodes", "--create", "coordinator", "--balance-sat", "5"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "coordinator" in proc.stdout and "5 sat" in proc.stdout
