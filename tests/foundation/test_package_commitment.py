from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from l402tui.bounty import load_bounty
from l402tui.bounty.commitment import commit, verify
from l402tui.bounty.package import PackagingError, build_package, unpack
from l402tui.cli import main


def test_same_bounty_packs_to_same_sha256(bounty_dir: Path, tmp_path: Path) -> None:
    spec = load_bounty(bounty_dir)
    first = build_package(spec)
    # Touch every file (new mtimes) and copy the folder elsewhere: the bytes must not change.
    for path in bounty_dir.rglob("*"):
        if path.is_file():
            os.utime(path, (1, 1))
    second = build_package(load_bounty(bounty_dir))
    assert first.sha256 == second.sha256 == hashlib.sha256(second.data).hexdigest()
    result = CliRunner().invoke(main, ["bounty", "pack", str(bounty_dir)])
    assert result.exit_code == 0 and result.output.startswith(first.sha256)


def test_package_excludes_heldout_and_is_sorted(bounty_dir: Path) -> None:
    package = build_package(load_bounty(bounty_dir))
    assert not any(name.startswith("heldout") for name in package.files)
    assert list(package.files) == sorted(package.files)
    assert {"bounty.toml", "target/solve.py", "public/inputs/1.txt", "scorer/score.py"} <= set(package.files)
    with tarfile.open(fileobj=io.BytesIO(package.data), mode="r:gz") as tar:
        for member in tar.getmembers():
            assert member.mtime == 1_700_000_000 and member.uid == 0 and member.uname == ""


def test_changed_target_changes_hash(bounty_dir: Path) -> None:
    before = build_package(load_bounty(bounty_dir)).sha256
    (bounty_dir / "target" / "solve.py").write_text("print('changed')\n")
    assert build_package(load_bounty(bounty_dir)).sha256 != before


def test_symlink_refused(bounty_dir: Path) -> None:
    (bounty_dir / "target" / "link.py").symlink_to(bounty_dir / "heldout" / "a" / "labels" / "1.txt")
    with pytest.raises(PackagingError, match="symlink"):
        build_package(load_bounty(bounty_dir))


def test_unpack_roundtrip_and_refuses_escapes(bounty_dir: Path, tmp_path: Path) -> None:
    package = build_package(load_bounty(bounty_dir))
    written = unpack(package.data, tmp_path / "out")
    assert sorted(written) == sorted(package.files)
    assert (tmp_path / "out" / "target" / "solve.py").read_text() == "print('hi')\n"

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(PackagingError, match="outside"):
        unpack(evil.getvalue(), tmp_path / "out2")
    assert not (tmp_path / "escape.txt").exists()


def test_commitment_verifies_and_detects_change(bounty_dir: Path) -> None:
    heldout = bounty_dir / "heldout" / "a"
    c = commit(heldout, "heldout/a")
    assert len(c.salt_hex) == 64
    ok = verify(heldout, c.salt_hex, c.commitment_hex, c.manifest)
    assert ok.ok and ok.changed == ()
    # Same data, other salt: a different commitment (the salt hides the data set).
    assert commit(heldout, "heldout/a").commitment_hex != c.commitment_hex

    (heldout / "labels" / "1.txt").write_text("12\n")
    bad = verify(heldout, c.salt_hex, c.commitment_hex, c.manifest)
    assert not bad.ok and bad.changed == ("labels/1.txt",)

    runner = CliRunner()
    result = runner.invoke(main, ["bounty", "verify-commitment", str(heldout), "--salt", c.salt_hex,
                                  "--commitment", c.commitment_hex])
    assert result.exit_code == 1 and "MISMATCH" in result.output
    (heldout / "labels" / "1.txt").write_text("11\n")
    result = runner.invoke(main, ["bounty", "verify-commitment", str(heldout), "--salt", c.salt_hex,
                                  "--commitment", c.commitment_hex])
    assert result.exit_code == 0 and "OK" in result.output
