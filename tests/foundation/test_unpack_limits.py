"""bounty/package.unpack against hostile tarballs: what a package may hold, how large it may
unpack, and that a refusal names the entry, never the folder it was unpacked into."""

from __future__ import annotations

import io
import tarfile
import zlib

import pytest

from l402tui.bounty.package import PackagingError, UnpackLimits, scan, unpack


def _tar(*entries: tuple[str, bytes | None, dict]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return zlib.compress(raw.getvalue(), 9, wbits=31)


def _file(name: str, data: bytes = b"x", **attrs) -> tuple[str, bytes, dict]:
    return name, data, attrs


@pytest.mark.parametrize("entries, words", [
    ([_file(".git/hooks/post-commit", b"#!/bin/sh\ntouch /tmp/owned\n", mode=0o755)], ".git"),
    ([_file("target/.GIT/config")], ".git"),
    ([_file("a/../../escape")], "outside"),
    ([_file("/etc/cron.d/x")], "outside"),
    ([_file("bounty.toml", b"one"), _file("bounty.toml", b"two")], "appears twice"),
    ([("link", None, {"type": tarfile.SYMTYPE, "linkname": "/etc"})], "not a regular file"),
    ([("hard", None, {"type": tarfile.LNKTYPE, "linkname": "/etc/passwd"})], "not a regular file"),
    ([("fifo", None, {"type": tarfile.FIFOTYPE})], "not a regular file"),
    ([("null", None, {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3})], "not a regular file"),
    ([_file("new\nline")], "control characters"),
    ([_file("d/" * 600 + "f")], "longer than 1024 bytes"),
])
def test_hostile_entries_are_refused_and_the_message_names_only_the_entry(tmp_path, entries, words):
    dest = tmp_path / "secret-coordinator-dir"
    with pytest.raises(PackagingError) as caught:
        unpack(_tar(*entries), dest)
    assert words in str(caught.value) and str(tmp_path) not in str(caught.value), str(caught.value)
    with pytest.raises(PackagingError):
        scan(_tar(*entries))
    assert not (dest / ".git").exists() and not (tmp_path / "escape").exists()


def test_sizes_and_counts_are_limited_while_unpacking(tmp_path):
    small = UnpackLimits(max_bytes=1000, max_file_bytes=600, max_entries=3)
    with pytest.raises(PackagingError, match="allowed per file"):
        unpack(_tar(_file("a", b"\0" * 601)), tmp_path / "one", small)
    with pytest.raises(PackagingError, match="unpacks to more than"):
        unpack(_tar(_file("a", b"\0" * 600), _file("b", b"\0" * 600)), tmp_path / "two", small)
    with pytest.raises(PackagingError, match="more than 3 entries"):
        scan(_tar(*[_file(f"f{i}", b"") for i in range(4)]), small)
    # A PAX header is not a file but is unpacked too: a huge one is refused by the stream's cap.
    with pytest.raises(PackagingError, match="unpacks to more than"):
        scan(_tar(_file("a", b"x", pax_headers={"comment": "z" * 200_000})), small)


def test_modes_are_plain_and_a_fine_package_unpacks(tmp_path):
    files = unpack(_tar(("target", None, {"type": tarfile.DIRTYPE}), _file("target/run.py", b"print(1)\n", mode=0o6755),
                        _file("public/data.txt", b"1\n", mode=0o666)), tmp_path / "ok")
    assert files == ["target/run.py", "public/data.txt"]
    assert (tmp_path / "ok" / "target" / "run.py").stat().st_mode & 0o7777 == 0o755
    assert (tmp_path / "ok" / "public" / "data.txt").stat().st_mode & 0o7777 == 0o644
