"""The held-out commitment: published up front, verifiable after the salt is revealed.

commitment = sha256(salt ‖ canonical manifest), where the manifest lists every
held-out file as ``<sha256>  <size>  <path>`` lines, sorted by path, UTF-8,
newline-terminated.  The salt stops anyone from confirming a guessed data set
from the hash alone before the reveal.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class HeldOutCommitment:
    set_name: str
    manifest: tuple[ManifestEntry, ...]
    salt_hex: str
    commitment_hex: str

    def manifest_text(self) -> str:
        return canonical_manifest(self.manifest)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_manifest(directory: Path) -> tuple[ManifestEntry, ...]:
    directory = directory.resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"held-out directory {directory} does not exist")
    entries = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = path.relative_to(directory).as_posix()
        entries.append(ManifestEntry(rel, path.stat().st_size, file_sha256(path)))
    return tuple(sorted(entries, key=lambda e: e.path))


def canonical_manifest(entries: tuple[ManifestEntry, ...] | list[ManifestEntry]) -> str:
    return "".join(f"{e.sha256}  {e.size}  {e.path}\n" for e in sorted(entries, key=lambda e: e.path))


def commitment_of(salt_hex: str, manifest: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt_hex) + manifest.encode("utf-8")).hexdigest()


def commit(directory: Path, set_name: str, salt_hex: str | None = None) -> HeldOutCommitment:
    salt_hex = salt_hex or secrets.token_hex(32)
    manifest = build_manifest(directory)
    return HeldOutCommitment(set_name, manifest, salt_hex, commitment_of(salt_hex, canonical_manifest(manifest)))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    expected: str
    actual: str
    changed: tuple[str, ...]  # paths whose content differs from the manifest (when known)


def verify(directory: Path, salt_hex: str, commitment_hex: str,
           manifest: tuple[ManifestEntry, ...] | None = None) -> VerifyResult:
    """Recompute the commitment of ``directory`` with the revealed salt."""
    current = build_manifest(directory)
    actual = commitment_of(salt_hex, canonical_manifest(current))
    changed: list[str] = []
    if manifest is not None:
        old = {e.path: e for e in manifest}
        new = {e.path: e for e in current}
        changed = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    return VerifyResult(hmac.compare_digest(actual, commitment_hex), commitment_hex, actual, tuple(changed))
