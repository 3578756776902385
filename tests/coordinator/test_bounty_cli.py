"""`l402tui bounty create|list|show` on a data dir."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from l402tui.cli import main


def _cli(tmp_path, *args):
    return CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), "bounty", *args],
                              catch_exceptions=False)


def test_create_list_show(tmp_path, bounty_dir):
    created = _cli(tmp_path, "create", str(bounty_dir), "--self-funded")
    assert created.exit_code == 0, created.output
    bounty_id = re.search(r"created (\S+)", created.output).group(1)
    assert "commitment" in created.output and "OPEN" in created.output
    listed = _cli(tmp_path, "list")
    assert bounty_id in listed.output and "100,000" in listed.output
    shown = _cli(tmp_path, "show", bounty_id, "--json")
    data = json.loads(shown.output)
    assert data["bounty"]["id"] == bounty_id and data["bounty"]["baseline"] == {"status": "pending"}
    human = _cli(tmp_path, "show", bounty_id)
    assert "metric     error (minimize)" in human.output


def test_create_with_hold_funding_prints_the_invoice(tmp_path, bounty_dir):
    created = _cli(tmp_path, "create", str(bounty_dir))
    assert created.exit_code == 0, created.output
    assert "AWAITING_FUNDING" in created.output and "lnbcrt" in created.output
    assert "no bounties open" in _cli(tmp_path, "list").output
    assert "AWAITING_FUNDING" in _cli(tmp_path, "list", "--all").output


def test_create_reports_problems_and_unknown_ids(tmp_path, bounty_dir):
    toml = bounty_dir / "bounty.toml"
    toml.write_text(toml.read_text().replace('"minimize"', '"min"'))
    bad = _cli(tmp_path, "create", str(bounty_dir), "--self-funded")
    assert bad.exit_code == 1
    assert re.search(r"bounty\.toml:\d+: metrics\[0\]\.direction", bad.output)
    missing = _cli(tmp_path, "show", "nope")
    assert missing.exit_code == 1 and "no bounty 'nope'" in missing.output
