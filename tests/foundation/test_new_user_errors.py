"""What a newcomer's common mistakes print: one `Error:` line that says what to do,
never a traceback; and every option of every command says what it is for."""

from __future__ import annotations

import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from l402tui.cli import main
from tests.foundation.conftest import make_bounty


def invoke(args: list[str]):
    return CliRunner().invoke(main, args)


def one_error_line(result) -> str:
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, (OSError, KeyboardInterrupt)), result.exception
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_a_data_dir_that_is_a_file_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    data_dir = blocker / "sub"
    result = invoke(["--data-dir", str(data_dir), "bounty", "list"])
    assert result.exit_code == 1
    line = one_error_line(result)
    assert f"the data dir is {data_dir}" in line and "--data-dir" in line
    assert blocker.read_text() == "x"  # nothing of the user's was touched


def test_pack_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    folder = make_bounty(tmp_path / "b")
    out = tmp_path / "missing" / "p.tar.gz"
    result = invoke(["--data-dir", str(tmp_path / "data"), "bounty", "pack", str(folder), "-o", str(out)])
    assert result.exit_code == 1
    assert str(out) in one_error_line(result)


@pytest.mark.parametrize("index", ["2", "-1"])
def test_commit_refuses_a_held_out_set_the_bounty_does_not_have(tmp_path: Path, index: str) -> None:
    folder = make_bounty(tmp_path / "b")
    result = invoke(["--data-dir", str(tmp_path / "data"), "bounty", "commit", str(folder), "--set", index])
    assert result.exit_code == 2
    assert "has 2 held-out set(s)" in result.output and "heldout/b" in result.output


def test_verify_commitment_with_a_salt_that_is_not_hex_names_the_option(tmp_path: Path) -> None:
    folder = make_bounty(tmp_path / "b")
    result = invoke(["bounty", "verify-commitment", str(folder / "heldout" / "a"), "--salt", "zz",
                     "--commitment", "00"])
    assert result.exit_code == 2
    assert "--salt" in result.output and "not hex" in result.output


def test_an_unknown_bounty_id_points_at_the_command_that_lists_them(tmp_path: Path) -> None:
    result = invoke(["--data-dir", str(tmp_path / "data"), "bounty", "show", "nope"])
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "no bounty 'nope'" in line and "l402tui bounty list --all" in line


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(tmp_path: Path, monkeypatch) -> None:
    import l402tui.bounty.validation as validation

    def interrupted(directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(validation, "validate_folder_sync", interrupted)
    result = invoke(["--data-dir", str(tmp_path / "data"), "bounty", "validate", str(tmp_path)])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "Traceback" not in result.output


def test_attach_where_nothing_listens_fails_before_the_screen_opens(tmp_path: Path, monkeypatch) -> None:
    from l402tui.tui.app import L402App

    def no_screen(self, *args, **kwargs):
        raise AssertionError("the TUI opened although the coordinator cannot be reached")

    monkeypatch.setattr(L402App, "run", no_screen)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_text("AgEA")
    result = invoke(["--data-dir", str(tmp_path / "data"), "--attach", f"http://127.0.0.1:{port}",
                     "--admin-macaroon", str(macaroon)])
    assert result.exit_code == 1
    line = one_error_line(result)
    assert f"127.0.0.1:{port}" in line and "l402tui serve" in line


def _commands(group: click.Group, path: list[str]):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield path + [name], cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + [name])


def test_every_command_and_option_says_what_it_is_for() -> None:
    missing = []
    for path, cmd in _commands(main, []):
        if not (cmd.help or "").strip():
            missing.append(" ".join(path))
        for param in cmd.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[-1]}")
    assert missing == []


def test_demo_help_promises_no_more_than_the_timeout_allows() -> None:
    result = invoke(["demo", "--help"])
    assert result.exit_code == 0
    assert "two minutes" not in result.output
    assert "[default: 600.0]" in result.output
