"""Deterministic packaging of what agents download, and unpacking it safely.

The tarball holds ``bounty.toml``, the target code, the public eval set and a copy
of the scorer (so agents can evaluate locally; the coordinator always scores with
its own frozen copy).  Entries are sorted, with fixed mtime, owner and modes, so
packing the same folder twice gives the same sha256.  Held-out data never enters.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from l402tui.bounty.spec import SPEC_FILE, BountySpec

FIXED_MTIME = 1_700_000_000  # any constant works; it only has to never change
SOURCE_RECORD = "SOURCE.json"  # where the package came from (a git URL and commit), when it has one
SKIP_NAMES = {"__pycache__", ".git", ".DS_Store", ".pytest_cache", ".mypy_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo")


class PackagingError(ValueError):
    """The bounty folder cannot be packed safely; the message says what to change."""


@dataclass(frozen=True)
class Package:
    data: bytes
    sha256: str
    files: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.data)


def _walk(root: Path, rel: Path, excluded: set[Path]) -> list[Path]:
    """Files under root/rel (relative to root), sorted; refuses symlinks and escapes."""
    out: list[Path] = []
    base = root / rel
    if not base.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        current = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES)
        for d in list(dirnames):
            full = current / d
            if full.is_symlink():
                raise PackagingError(f"{full.relative_to(root)} is a symlink; packages may not contain links")
            if full.resolve() in excluded:
                dirnames.remove(d)
        for name in sorted(filenames):
            if name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES):
                continue
            full = current / name
            if full.is_symlink():
                raise PackagingError(f"{full.relative_to(root)} is a symlink; packages may not contain links")
            if not full.resolve().is_relative_to(root):
                raise PackagingError(f"{full} lies outside the bounty folder")
            out.append(full.relative_to(root))
    return out


def package_files(spec: BountySpec) -> list[Path]:
    root = spec.root.resolve()
    excluded = {(root / h).resolve() for h in spec.heldout_dirs}
    files: set[Path] = {Path(SPEC_FILE)}
    for part in (spec.target_dir, spec.public_dir, spec.scorer_dir):
        for f in _walk(root, Path(part), excluded):
            if any((root / f).resolve().is_relative_to(e) for e in excluded):
                continue
            files.add(f)
    return sorted(files, key=lambda p: p.as_posix())


def build_package(spec: BountySpec, provenance: dict | None = None) -> Package:
    """Pack the bounty deterministically; same folder contents, same bytes.

    ``provenance`` (e.g. ``{"kind": "git", "url": ..., "commit": ...}``) is written as
    SOURCE.json at the top, so whoever downloads the package can fetch the same commit.
    """
    root = spec.root.resolve()
    names = package_files(spec)
    record = None
    if provenance is not None:
        if Path(SOURCE_RECORD) in names:
            raise PackagingError(f"{SOURCE_RECORD} at the top of the folder is reserved for the package's source record")
        record = (json.dumps(provenance, indent=2, sort_keys=True) + "\n").encode()
        names = sorted([*names, Path(SOURCE_RECORD)], key=lambda p: p.as_posix())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in names:
            full = root / rel
            data = record if record is not None and rel == Path(SOURCE_RECORD) else full.read_bytes()
            info = tarfile.TarInfo(rel.as_posix())
            info.size = len(data)
            info.mtime = FIXED_MTIME
            info.mode = 0o755 if os.access(full, os.X_OK) else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    # mtime=0 and no filename keep the gzip header constant too.
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, filename="", compresslevel=9) as gz:
        gz.write(raw.getvalue())
    blob = compressed.getvalue()
    return Package(blob, hashlib.sha256(blob).hexdigest(), tuple(p.as_posix() for p in names))


@dataclass(frozen=True)
class UnpackLimits:
    """How much a tarball may unpack to.  A gzip "bomb" is tiny on the wire and huge unpacked,
    so every limit is checked while decompressing, never after."""

    max_bytes: int = 1024 * 1024 * 1024  # the files together
    max_file_bytes: int = 1024 * 1024 * 1024  # one file
    max_entries: int = 100_000  # files and folders
    max_name_bytes: int = 1024  # one entry's path

    @classmethod
    def for_sponsor_upload(cls, cfg: object) -> "UnpackLimits":
        """A sponsor's upload gets the limits a git source gets (config ``[policy] git_*``)."""
        from l402tui.bounty.gitsource import MAX_FILES, GitLimits

        git = GitLimits.from_config(cfg)
        return cls(max_bytes=git.max_repo_bytes, max_file_bytes=git.max_file_bytes, max_entries=MAX_FILES)


class _Capped(io.RawIOBase):
    """The decompressed stream, refused once it passes ``cap`` bytes (headers included)."""

    def __init__(self, data: bytes, cap: int, limits: UnpackLimits):
        self._gz = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
        self._cap, self._limits, self.seen = cap, limits, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._gz.read(len(buffer))
        self.seen += len(chunk)
        if self.seen > self._cap:
            raise PackagingError(f"the tarball unpacks to more than {_mb(self._limits.max_bytes)} "
                                 f"(at most {self._limits.max_entries} entries)")
        buffer[:len(chunk)] = chunk
        return len(chunk)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _members(data: bytes, limits: UnpackLimits):  # type: ignore[no-untyped-def]
    """(tar, member) for each entry, each checked before anything of it is read: a plain file
    or folder, a relative path inside the tarball with no '..' or .git, under the limits."""
    # Headers take 512 bytes each (a long name or PAX record a few more): allow them on top.
    cap = limits.max_bytes + (limits.max_entries + 1) * (1536 + limits.max_name_bytes) + 10240
    total = entries = 0
    seen: set[str] = set()
    with tarfile.open(fileobj=io.BufferedReader(_Capped(data, cap, limits), 1 << 16), mode="r|") as tar:
        for member in tar:
            entries += 1
            if entries > limits.max_entries:
                raise PackagingError(f"the tarball has more than {limits.max_entries} entries")
            name = member.name
            shown = repr(name[:120])
            if len(name.encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
                raise PackagingError(f"package entry {shown}... has a path longer than {limits.max_name_bytes} bytes")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or "\\" in name or any(p == ".." or p.lower() == ".git" for p in parts) \
                    or any(ord(c) < 32 for c in name):
                raise PackagingError(f"package entry {shown} would land outside the folder (or in a .git folder, "
                                     "or has control characters)")
            if not (member.isdir() or (member.isreg() and not member.issparse())):
                raise PackagingError(f"package entry {shown} is not a regular file or folder (links, devices, "
                                     "fifos and sparse files are refused)")
            if member.isreg():
                key = PurePosixPath(name).as_posix()
                if key in seen:
                    raise PackagingError(f"package entry {shown} appears twice")
                seen.add(key)
                if member.size > limits.max_file_bytes:
                    raise PackagingError(f"package entry {shown} is {_mb(member.size)}, over the "
                                         f"{_mb(limits.max_file_bytes)} allowed per file")
                total += member.size
                if total > limits.max_bytes:
                    raise PackagingError(f"the tarball unpacks to more than {_mb(limits.max_bytes)}")
            yield tar, member


def scan(data: bytes, limits: UnpackLimits = UnpackLimits()) -> int:
    """Check a tarball as :func:`unpack` would, writing nothing; returns its number of entries."""
    count = 0
    for _tar, _member in _members(data, limits):
        count += 1
    return count


def unpack(data: bytes, dest: Path, limits: UnpackLimits = UnpackLimits()) -> list[str]:
    """Extract a package into dest, refusing links, devices, paths leaving dest or entering a
    .git folder, duplicates and anything over ``limits``; modes become 0644 or 0755.  Messages
    name the entry, never dest (the caller's paths are its own business)."""
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for tar, member in _members(data, limits):
        target = (dest / member.name).resolve()
        if not target.is_relative_to(dest):
            raise PackagingError(f"package entry {member.name[:120]!r} would land outside the folder")
        try:
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            with open(target, "xb") as out:  # "x": never through or over something already there
                shutil.copyfileobj(extracted, out, 1 << 20)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
        except OSError as exc:
            raise PackagingError(f"package entry {member.name[:120]!r} cannot be written: "
                                 f"{exc.strerror or type(exc).__name__}") from None
        written.append(member.name)
    return written
