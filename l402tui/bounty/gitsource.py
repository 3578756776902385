"""Bounty folders fetched from a git repository at one exact commit.

The repository belongs to someone else, so nothing in it may run here and nothing
of ours may reach it: git runs with no system or user config (no credential
helpers, no operator keys, no filters or hooks defined there), an empty hooks path,
only the configured transports, no HTTP redirects, and fsck of what arrives.  The
tree is never *checked out*: each blob is read with ``git cat-file`` and written as
plain bytes, so ``.gitattributes`` (smudge/clean/process filters, eol conversions,
export-subst), fsmonitor and LFS have nothing to act on.  Submodules and symlinks
inside the chosen subdirectory are refused.  A shallow fetch with a blob size
filter, a watch on the bytes landing on disk, and a time limit bound what a hostile
server can cost us.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

FULL_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MAX_FILES = 20_000  # entries in the chosen subdirectory; a bounty is a small code base
KNOWN_PROTOCOLS = ("https", "http", "git", "ssh", "file")
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._~-]+@)?(\[[^\]]+\]|[^:/\[\]]+):(?!//)")
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY")


class GitSourceRefused(ValueError):
    """The git source cannot be used; ``str()`` says why and what to do.  ``code`` is stable."""

    def __init__(self, message: str, code: str = "git_source_refused"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class GitSource:
    """Where a bounty folder lives: repository URL, a commit id or tag, a subdirectory."""

    url: str
    ref: str
    subdir: str = ""

    @classmethod
    def from_json(cls, data: Any) -> "GitSource":
        """From a request body's ``{"url", "commit", "subdir"}``; GitSourceRefused when malformed."""
        if not isinstance(data, dict):
            raise GitSourceRefused("'git' must be an object {url, commit, subdir}", "invalid_request")
        url, ref, subdir = data.get("url"), data.get("commit"), data.get("subdir", "")
        if not isinstance(url, str) or not url or not isinstance(ref, str) or not ref:
            raise GitSourceRefused("'git' needs 'url' and 'commit' (a full commit id or a tag)", "invalid_request")
        if not isinstance(subdir, str):
            raise GitSourceRefused("'git.subdir' must be a string", "invalid_request")
        return cls(url, ref, subdir)

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "commit": self.ref, "subdir": self.subdir}


@dataclass(frozen=True)
class GitLimits:
    """The operator's rules for fetching (config ``[policy] git_*``)."""

    protocols: tuple[str, ...] = ("https", "http", "git", "ssh")
    allow_file: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allow_private_hosts: bool = False
    max_repo_bytes: int = 100 * 1024 * 1024
    max_file_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 120.0
    git: str = "git"

    @classmethod
    def from_config(cls, cfg: Any) -> "GitLimits":
        p = cfg.section("policy")
        return cls(protocols=tuple(str(x).lower() for x in p["git_protocols"]), allow_file=p["git_allow_file"],
                   allowed_hosts=tuple(str(h).lower() for h in p["git_allowed_hosts"]),
                   allow_private_hosts=p["git_allow_private_hosts"],
                   max_repo_bytes=int(p["git_max_repo_mb"]) * 1024 * 1024,
                   max_file_bytes=int(p["git_max_file_mb"]) * 1024 * 1024, timeout_s=float(p["git_timeout_s"]))


@dataclass(frozen=True)
class GitCheckout:
    """A fetched source: the folder holding bounty.toml and the commit it came from."""

    folder: Path
    commit: str
    source: GitSource

    def provenance(self) -> dict[str, Any]:
        """What the package records about where it came from."""
        return {"kind": "git", "url": self.source.url, "requested": self.source.ref, "commit": self.commit,
                "subdir": self.source.subdir}


def fetch_bounty_source(source: GitSource, workdir: Path, limits: GitLimits) -> GitCheckout:
    """Fetch ``source`` into ``workdir`` (empty, ours) and return the subdirectory as plain files.

    Raises GitSourceRefused with a message saying what was wrong.  The caller validates
    the folder as a bounty (``load_bounty``) and removes ``workdir`` afterwards.
    """
    scheme, host = _check_url(source.url, limits)
    subdir = _check_subdir(source.subdir)
    ref = source.ref.strip()
    full_id = ref.lower() if FULL_ID.fullmatch(ref.lower()) else None
    if full_id is None:
        _check_ref_name(ref)
    repo = workdir / "repo"
    home = workdir / "home"
    home.mkdir(parents=True)
    runner = _Git(limits, repo, home, scheme)
    runner.run(["init", "--quiet", "--template=", str(repo)], cwd=workdir)
    # Fetch by id (protocol v2 servers allow any reachable commit) or by ref name; one commit, no history.
    want = full_id or ref
    runner.fetch(["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--depth=1",
                  f"--filter=blob:limit={limits.max_file_bytes + 1}", "--", source.url, want], source, host)
    commit = runner.run(["rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}"]).strip()
    if full_id and commit != full_id:
        raise GitSourceRefused(f"asked for commit {full_id} but the server sent {commit}", "git_commit_mismatch")
    tree, entries = _tree_entries(runner, commit, subdir)
    folder = workdir / "tree"
    _write_tree(runner, tree, entries, folder, limits)
    return GitCheckout(folder=folder, commit=commit, source=source)


def _check_ref_name(ref: str) -> None:
    if ref.startswith("-") or len(ref) > 255 or any(ord(c) < 33 or c in "~^:?*[\\" for c in ref) \
            or ".." in ref or "@{" in ref or ref.endswith((".", "/", ".lock")) or "//" in ref:
        raise GitSourceRefused(f"{ref!r} is neither a full commit id nor a valid tag or branch name", "git_bad_ref")


def _check_subdir(subdir: str) -> PurePosixPath:
    text = subdir.strip().strip("/") if subdir else ""
    path = PurePosixPath(text) if text else PurePosixPath()
    if "\\" in text or "\0" in text or any(p in ("..", ".git") or p.lower() == ".git" for p in path.parts):
        raise GitSourceRefused(f"subdirectory {subdir!r} must be a plain path inside the repository "
                               "(no '..', no .git)", "git_bad_subdir")
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _check_url(url: str, limits: GitLimits) -> tuple[str, str]:
    """The transport and host of ``url``, refusing what the operator's rules do not allow."""
    if url.startswith("-") or any(ord(c) < 32 or c == "\x7f" for c in url) or len(url) > 2048:
        raise GitSourceRefused("the repository URL has a leading '-', control characters or is too long",
                               "git_bad_url")
    if "::" in url.split("/", 1)[0]:  # transport::address runs a remote helper (ext:: runs commands)
        raise GitSourceRefused("remote-helper URLs (transport::address) are not allowed", "git_protocol_refused")
    scp = _SCP_LIKE.match(url) if "://" not in url else None
    if scp:
        scheme, host = "ssh", scp.group(1).strip("[]")
    elif "://" in url:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "")
        if parts.password:
            raise GitSourceRefused("the repository URL carries a password; the source is published with the "
                                   "package, so give a public URL without credentials", "git_bad_url")
        if scheme in ("http", "https") and parts.username:
            raise GitSourceRefused("the repository URL carries a user name; give a public URL without "
                                   "credentials", "git_bad_url")
    else:
        scheme, host = "file", ""
    allowed = set(limits.protocols) | ({"file"} if limits.allow_file else set())
    if scheme not in KNOWN_PROTOCOLS or scheme not in allowed:
        shown = ", ".join(sorted(p for p in allowed if p in KNOWN_PROTOCOLS)) or "none"
        raise GitSourceRefused(f"the {scheme or 'local'} transport is not allowed here (allowed: {shown}; "
                               "operator setting policy.git_protocols)", "git_protocol_refused")
    if scheme == "file":
        return scheme, host
    if not host or host.startswith("-"):
        raise GitSourceRefused(f"cannot tell the host of {url!r}", "git_bad_url")
    host = host.lower()
    if limits.allowed_hosts and host not in limits.allowed_hosts:
        raise GitSourceRefused(f"host {host} is not among the allowed git hosts ({', '.join(limits.allowed_hosts)}; "
                               "operator setting policy.git_allowed_hosts)", "git_host_refused")
    if not limits.allow_private_hosts:
        _refuse_private(host)
    return scheme, host


def _refuse_private(host: str) -> None:
    # A sponsor must not make the coordinator read a git server only this machine can reach.
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise GitSourceRefused(f"cannot resolve git host {host}: {exc}", "git_host_refused") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not _public(addr):
            raise GitSourceRefused(f"git host {host} resolves to {addr}, a local or private address; only public "
                                   "hosts are fetched (operator setting policy.git_allow_private_hosts)",
                                   "git_host_refused")


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``addr`` is a public unicast address, and so is any IPv4 address it carries
    (IPv4-mapped, 6to4, Teredo, NAT64).  "Not private" is not enough: shared address space
    (100.64.0.0/10: carrier NAT, tailnets), benchmarking and documentation ranges are neither."""
    if not addr.is_global or addr.is_multicast:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        inner = [addr.ipv4_mapped, addr.sixtofour, addr.teredo[1] if addr.teredo else None,
                 ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF) if addr in _NAT64 else None]
        return all(_public(v4) for v4 in inner if v4 is not None)
    return True


class _Git:
    """git with a clean environment and hardened settings; every call bounded by the deadline."""

    def __init__(self, limits: GitLimits, repo: Path, home: Path, scheme: str):
        self.limits = limits
        self.repo = repo
        self.deadline = time.monotonic() + limits.timeout_s
        env = {k: os.environ[k] for k in _PROXY_ENV if k in os.environ}
        env.update({
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_CONFIG_HOME": str(home),
            "LANG": "C", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0", "GIT_NO_LAZY_FETCH": "1", "GIT_LFS_SKIP_SMUDGE": "1",
            "GIT_ATTR_NOSYSTEM": "1", "GIT_PROTOCOL_FROM_USER": "0",
            # No keys, agent or config of the operator's: a sponsor's URL must not borrow our identity.
            "GIT_SSH_COMMAND": "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile=/dev/null "
                               "-o IdentityAgent=none -o StrictHostKeyChecking=yes -o ConnectTimeout=20",
        })
        self.env = env
        protocols = set(limits.protocols) | ({"file"} if limits.allow_file else set())
        settings = {
            "core.hooksPath": os.devnull, "core.fsmonitor": "false",
            "credential.helper": "", "protocol.allow": "never", "http.followRedirects": "false",
            "transfer.fsckObjects": "true", "fetch.fsckObjects": "true", "submodule.recurse": "false",
            "fetch.recurseSubmodules": "false", "core.symlinks": "false", "core.protectNTFS": "true",
            "core.protectHFS": "true", "gc.auto": "0",
            "maintenance.auto": "false", "http.lowSpeedLimit": "1000", "http.lowSpeedTime": "30",
        }
        for p in KNOWN_PROTOCOLS:
            settings[f"protocol.{p}.allow"] = "always" if p in protocols else "never"
        self.prefix = [limits.git]
        for key, value in settings.items():
            self.prefix += ["-c", f"{key}={value}"]

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GitSourceRefused(f"fetching took longer than {self.limits.timeout_s:.0f} s "
                                   "(operator setting policy.git_timeout_s)", "git_timeout")
        return left

    def run(self, args: list[str], *, cwd: Path | None = None, stdin: bytes | None = None) -> str:
        return self.run_bytes(args, cwd=cwd, stdin=stdin).decode("utf-8", "replace")

    def run_bytes(self, args: list[str], *, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
        try:
            done = subprocess.run(self.prefix + args, cwd=cwd or self.repo, env=self.env, input=stdin,
                                  capture_output=True, timeout=self._left(), check=False)
        except subprocess.TimeoutExpired:
            self._left()
            raise
        except FileNotFoundError:
            raise GitSourceRefused("git is not installed on the coordinator host", "git_unavailable") from None
        if done.returncode != 0:
            raise GitSourceRefused(f"git {args[0]} failed: {_tail(done.stderr)}", "git_failed")
        return done.stdout

    def fetch(self, args: list[str], source: GitSource, host: str) -> None:
        """Run the fetch, killing it when the repository on disk or the clock runs over."""
        log = self.repo / ".git" / "fetch-stderr.log"  # inside the watched size: a chatty server counts
        with open(log, "wb") as err:
            proc = subprocess.Popen(self.prefix + args, cwd=self.repo, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            try:
                while proc.poll() is None:
                    time.sleep(0.05)
                    used = _disk_bytes(self.repo)
                    if used > self.limits.max_repo_bytes:
                        raise GitSourceRefused(
                            f"the repository is larger than the {_mb(self.limits.max_repo_bytes)} allowed (stopped "
                            f"after {_mb(used)} of objects); publish a smaller repository or a subdirectory of "
                            "one without large history (operator setting policy.git_max_repo_mb)", "git_too_large")
                    self._left()
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if proc.returncode != 0:
            message = _tail(log.read_bytes())
            if "not our ref" in message or "unadvertised object" in message or "couldn't find remote ref" in message:
                raise GitSourceRefused(f"{source.url} has no commit or tag {source.ref!r} (give a full 40-character "
                                       f"commit id or a tag; some servers do not serve commits by id): {message}",
                                       "git_unknown_ref")
            raise GitSourceRefused(f"fetching {source.url} failed: {message}", "git_fetch_failed")
        used = _disk_bytes(self.repo)
        if used > self.limits.max_repo_bytes:
            raise GitSourceRefused(f"the repository takes {_mb(used)}, over the {_mb(self.limits.max_repo_bytes)} "
                                   "allowed (operator setting policy.git_max_repo_mb)", "git_too_large")


@dataclass(frozen=True)
class _Entry:
    mode: str
    kind: str
    oid: str
    path: PurePosixPath  # relative to the chosen subdirectory


def _tree_entries(git: _Git, commit: str, subdir: PurePosixPath) -> tuple[str, list[_Entry]]:
    spec = f"{commit}:{subdir.as_posix()}" if subdir.parts else f"{commit}^{{tree}}"
    try:
        kind = git.run(["cat-file", "-t", spec]).strip()
    except GitSourceRefused:
        raise GitSourceRefused(f"commit {commit} has no subdirectory {subdir.as_posix()!r}", "git_bad_subdir") from None
    if kind != "tree":
        raise GitSourceRefused(f"{subdir.as_posix()!r} at {commit} is a file, not a folder", "git_bad_subdir")
    tree = git.run(["rev-parse", "--verify", "--quiet", spec]).strip()
    raw = git.run_bytes(["ls-tree", "-r", "-z", tree])
    entries: list[_Entry] = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        entries.append(_Entry(mode, kind, oid, PurePosixPath(name.decode("utf-8", "surrogateescape"))))
    links = [e.path.as_posix() for e in entries if e.kind == "commit"]
    if links:
        raise GitSourceRefused(
            f"the source has {len(links)} submodule(s) ({', '.join(links[:5])}); submodules are never fetched: "
            "copy their files into the repository (or point 'subdir' at a folder without them)", "git_submodule")
    symlinks = [e.path.as_posix() for e in entries if e.mode == "120000"]
    if symlinks:
        raise GitSourceRefused(f"the source has symbolic links ({', '.join(symlinks[:5])}); a bounty folder holds "
                               "plain files only", "git_symlink")
    if len(entries) > MAX_FILES:
        raise GitSourceRefused(f"the source has {len(entries)} files; at most {MAX_FILES} are accepted", "git_too_large")
    for e in entries:
        if e.path.is_absolute() or any(p in ("", ".", "..") or p.lower() == ".git" for p in e.path.parts):
            raise GitSourceRefused(f"the tree has an unsafe path {e.path.as_posix()!r}", "git_unsafe_path")
    return tree, entries


def _write_tree(git: _Git, tree: str, entries: list[_Entry], folder: Path, limits: GitLimits) -> None:
    """Write each blob as plain bytes (no checkout: no attributes, filters or hooks apply)."""
    # Blobs over the size filter stayed on the server; name them before anything asks for them.
    absent = {line[1:].strip() for line in git.run(["rev-list", "--objects", "--missing=print", tree]).splitlines()
              if line.startswith("?")}
    oids = "".join(f"{e.oid}\n" for e in entries if e.oid not in absent).encode()
    sizes: dict[str, int] = {}
    for line in git.run(["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
                        stdin=oids).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob":
            sizes[parts[0]] = int(parts[2])
    missing = [e.path.as_posix() for e in entries if e.oid not in sizes]
    if missing:  # the size filter left them on the server: each is over the per-file limit
        raise GitSourceRefused(f"{len(missing)} file(s) are larger than the {_mb(limits.max_file_bytes)} allowed per "
                               f"file ({', '.join(missing[:5])}; operator setting policy.git_max_file_mb)",
                               "git_too_large")
    big = [e.path.as_posix() for e in entries if sizes[e.oid] > limits.max_file_bytes]
    if big:
        raise GitSourceRefused(f"file(s) larger than the {_mb(limits.max_file_bytes)} allowed per file: "
                               f"{', '.join(big[:5])} (operator setting policy.git_max_file_mb)", "git_too_large")
    total = sum(sizes[e.oid] for e in entries)
    if total > limits.max_repo_bytes:
        raise GitSourceRefused(f"the source unpacks to {_mb(total)}, over the {_mb(limits.max_repo_bytes)} allowed "
                               "(operator setting policy.git_max_repo_mb)", "git_too_large")
    blobs = _read_blobs(git, sorted({e.oid for e in entries}))
    folder.mkdir()
    root = folder.resolve()
    for e in entries:
        target = root.joinpath(*e.path.parts)
        if not target.resolve().is_relative_to(root):
            raise GitSourceRefused(f"the tree has an unsafe path {e.path.as_posix()!r}", "git_unsafe_path")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as out:  # "x": a path written twice is refused, never overwritten
                out.write(blobs[e.oid])
        except OSError as exc:
            raise GitSourceRefused(f"cannot write {e.path.as_posix()!r} from the tree: {exc}", "git_unsafe_path") from None
        os.chmod(target, 0o755 if e.mode == "100755" else 0o644)


def _read_blobs(git: _Git, oids: list[str]) -> dict[str, bytes]:
    """Raw blob contents by id, in one ``cat-file --batch`` (sizes were checked before)."""
    raw = git.run_bytes(["cat-file", "--batch"], stdin="".join(f"{o}\n" for o in oids).encode())
    out: dict[str, bytes] = {}
    pos = 0
    for oid in oids:
        eol = raw.index(b"\n", pos)
        header = raw[pos:eol].split()
        if len(header) != 3 or header[0].decode() != oid or header[1] != b"blob":
            raise GitSourceRefused(f"object {oid} could not be read as a file", "git_failed")
        size = int(header[2])
        out[oid] = raw[eol + 1:eol + 1 + size]
        pos = eol + 1 + size + 1
    return out


def _disk_bytes(root: Path) -> int:
    total = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:  # git renames temporary packs while we look
                        continue
        except FileNotFoundError:
            continue
    return total


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _tail(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    text = "; ".join(lines[-3:]) or "no message"
    return text[:500]
