"""`l402tui sponsor invite --out PATH` where PATH cannot be written: a clear refusal, no
traceback, and no credential minted that nobody holds."""

import asyncio

from click.testing import CliRunner

from l402tui.cli import main
from l402tui.store import Store


def test_invite_to_an_unwritable_path_refuses_before_minting(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    env = {"L402TUI_CONFIG": str(tmp_path / "none.toml")}
    data = ["--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(main, [*data, "sponsor", "invite", "--name", "acme",
                                       "--out", str(blocker / "acme.macaroon")], env=env)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "cannot write the credential to" in result.output

    async def sponsors() -> int:
        store = await Store.open(tmp_path / "data" / "l402tui.sqlite")
        try:
            return await store.scalar("SELECT COUNT(*) FROM sponsors")
        finally:
            await store.close()

    assert asyncio.run(sponsors()) == 0


def test_post_with_a_bounty_file_it_cannot_read_says_which(tmp_path, monkeypatch):
    """Packing meets a file it cannot read: one line naming it, no traceback."""
    from l402tui.coordinator import sponsor_client

    def unreadable(folder):
        raise PermissionError(13, "Permission denied", str(folder / "target" / "secret.py"))

    monkeypatch.setattr(sponsor_client, "pack_folder", unreadable)
    credential = tmp_path / "sponsor.macaroon"
    credential.write_text("AgEEbHNhdAJC\n")
    (tmp_path / "bounty").mkdir()
    result = CliRunner().invoke(main, ["sponsor", "post", "--url", "http://127.0.0.1:9", "--credential",
                                       str(credential), str(tmp_path / "bounty")],
                                env={"L402TUI_CONFIG": str(tmp_path / "none.toml")})
    assert result.exit_code == 1, result.output
    assert "Permission denied" in result.output and "secret.py" in result.output
    assert "Traceback" not in result.output
