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
import tarfile
from dataclasses import dataclass
from pathlib import Path

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


def unpack(data: bytes, dest: Path) -> list[str]:
    """Extract a package into dest, refusing links, devices and paths leaving dest."""
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if not target.is_relative_to(dest) or member.name.startswith("/"):
                raise PackagingError(f"package entry {member.name!r} would land outside {dest}")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise PackagingError(f"package entry {member.name!r} is not a regular file")
            target.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            target.write_bytes(extracted.read())
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
            written.append(member.name)
    return written
