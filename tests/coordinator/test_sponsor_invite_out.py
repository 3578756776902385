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
