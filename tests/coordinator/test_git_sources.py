"""Bounties fetched from git repositories served by a real `git daemon` on 127.0.0.1: the exact
commit is published and recorded, and nothing in a hostile repository runs or gets through."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from l402tui.bounty.gitsource import GitLimits, GitSource, GitSourceRefused, fetch_bounty_source
from l402tui.coordinator.errors import Invalid
from tests.coordinator.conftest import SOLVE, make_bounty, url
from tests.coordinator.git_server import GitDaemon, commit_all, git, new_work_tree

OPEN = {"policy.git_allow_private_hosts": True}  # the test server is on loopback


@pytest.fixture
def daemon(tmp_path):
    d = GitDaemon(tmp_path / "served")
    yield d
    d.close()


@pytest.fixture
def gcfg(cfg):
    return cfg.with_overrides(OPEN)


@pytest.fixture
async def gcoord(gcfg, net):
    from l402tui.coordinator.service import Coordinator
    from l402tui.store import Store

    store = await Store.open(gcfg.db_path)
    coord = Coordinator(gcfg, store, net.node("coordinator"))
    yield coord
    await coord.stop()
    await store.close()


def _repo_with_bounty(tmp_path: Path, name: str = "work") -> Path:
    """A work tree whose folder `bounty/` holds the tiny bounty, beside an unrelated README."""
    work = new_work_tree(tmp_path / name)
    make_bounty(work, name="bounty", hours=0.1)
    (work / "README.md").write_text("a sponsor's repository\n")
    return work


def _package_files(coord, bounty_id: str) -> dict[str, bytes]:
    data = (coord.data_dir / "bounties" / bounty_id / "package.tar.gz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


async def test_a_bounty_is_published_at_the_commit_asked_for(tmp_path, daemon, gcoord):
    work = _repo_with_bounty(tmp_path)
    first = commit_all(work, "bounty at OFFSET = 3")
    git(work, "tag", "-a", "v1", "-m", "the published version")
    (work / "bounty" / "target" / "solve.py").write_text(SOLVE.replace("OFFSET = 3", "OFFSET = 99"))
    commit_all(work, "later work, not to be published")
    served = daemon.publish(work, "sum")

    result = await gcoord.create_bounty(GitSource(served, first, "bounty"), self_funded=True)
    assert result["source"] == {"kind": "git", "url": served, "requested": first, "commit": first, "subdir": "bounty"}
    bounty_id = result["bounty"]["id"]
    assert (await gcoord.get_bounty(bounty_id))["source"]["commit"] == first  # agents can see what they got
    files = _package_files(gcoord, bounty_id)
    assert json.loads(files["SOURCE.json"])["commit"] == first
    assert b"OFFSET = 3" in files["target/solve.py"]  # the asked-for commit, not the branch tip
    assert "README.md" not in files and not any(n.startswith("heldout") for n in files)
    frozen = gcoord.data_dir / "bounties" / bounty_id / "source"
    assert (frozen / "heldout" / "a" / "labels" / "sum.json").read_text() == "30"

    # An annotated tag resolves to its commit, and the package records the commit.
    tagged = await gcoord.create_bounty(GitSource(served, "v1", "bounty"), self_funded=True)
    assert tagged["source"]["commit"] == first and tagged["source"]["requested"] == "v1"
    assert json.loads(_package_files(gcoord, tagged["bounty"]["id"])["SOURCE.json"])["commit"] == first


async def test_unknown_commit_subdir_or_invalid_bounty_are_clear_422s(tmp_path, daemon, gcoord):
    work = _repo_with_bounty(tmp_path)
    commit_all(work, "one")
    served = daemon.publish(work, "sum")
    cases = [
        (GitSource(served, "1" * 40, "bounty"), "git_unknown_ref", "has no commit or tag"),
        (GitSource(served, "main", "nothing-here"), "git_bad_subdir", "no subdirectory 'nothing-here'"),
        (GitSource(served, "main", "../etc"), "git_bad_subdir", "no '..'"),
        (GitSource(served, "--upload-pack=touch /tmp/x", ""), "git_bad_ref", "neither a full commit id"),
        (GitSource(served, "main", ""), "invalid_bounty", "problem"),  # the top has no bounty.toml
    ]
    for source, code, words in cases:
        with pytest.raises(Invalid) as caught:
            await gcoord.create_bounty(source, self_funded=True)
        assert caught.value.code == code and words in caught.value.message, caught.value.message
    assert not [p for p in (gcoord.data_dir / "bounties").iterdir() if not p.name.startswith(".")]


def _evil_operator_config(tmp_path: Path, marker: Path) -> dict[str, str]:
    """An operator whose own git config defines a filter, hooks and an fsmonitor that would each
    leave ``marker`` behind if git ran them: what a hostile .gitattributes would try to reach."""
    hooks = tmp_path / "operator-hooks"
    hooks.mkdir()
    script = f"#!/bin/sh\necho \"$(basename \"$0\")\" >> {marker}\ncat\n"
    for name in ("smudge", "clean", "post-checkout", "post-merge", "reference-transaction", "fsmonitor-watchman"):
        (hooks / name).write_text(script)
        (hooks / name).chmod(0o755)
    cfg = tmp_path / "operator.gitconfig"
    cfg.write_text(f"[filter \"evil\"]\n\tsmudge = {hooks}/smudge\n\tclean = {hooks}/clean\n\trequired = true\n"
                   f"[core]\n\thooksPath = {hooks}\n\tfsmonitor = {hooks}/fsmonitor-watchman\n")
    return {"GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1"}


async def test_filters_hooks_and_fsmonitor_never_run(tmp_path, daemon, gcoord, monkeypatch):
    work = _repo_with_bounty(tmp_path)
    (work / ".gitattributes").write_text("* filter=evil\n*.py text eol=crlf\n")
    (work / "bounty" / ".githooks").mkdir()
    (work / "bounty" / ".githooks" / "post-checkout").write_text("#!/bin/sh\ntouch /tmp/never\n")
    commit_all(work, "with attributes that ask for a filter")
    served = daemon.publish(work, "evil")
    marker = tmp_path / "MARKER"
    evil_env = _evil_operator_config(tmp_path, marker)

    # The guard matters: a plain clone under this operator's config does run the filter and hooks.
    git(tmp_path, "clone", "--quiet", served, str(tmp_path / "plain-clone"), env=evil_env)
    assert marker.exists() and "smudge" in marker.read_text()
    marker.unlink()

    monkeypatch.setenv("GIT_CONFIG_GLOBAL", evil_env["GIT_CONFIG_GLOBAL"])
    monkeypatch.delenv("GIT_CONFIG_NOSYSTEM", raising=False)
    result = await gcoord.create_bounty(GitSource(served, "main", "bounty"), self_funded=True)
    assert not marker.exists()
    files = _package_files(gcoord, result["bounty"]["id"])
    assert files["target/solve.py"] == SOLVE.encode()  # raw bytes: no filter, no eol conversion
    frozen = gcoord.data_dir / "bounties" / result["bounty"]["id"] / "source"
    hook = frozen / ".githooks" / "post-checkout"
    assert hook.read_text().startswith("#!/bin/sh") and not os.access(hook, os.X_OK)  # inert data


async def test_a_submodule_inside_the_bounty_is_refused_outside_it_ignored(tmp_path, daemon, gcoord):
    work = _repo_with_bounty(tmp_path)
    commit_all(work, "base")
    elsewhere = "1234567890abcdef1234567890abcdef12345678"
    (work / ".gitmodules").write_text('[submodule "lib"]\n\tpath = bounty/target/lib\n'
                                      '\turl = https://attacker.example/lib.git\n'
                                      '[submodule "docs"]\n\tpath = docs\n\turl = https://attacker.example/d.git\n')
    git(work, "update-index", "--add", "--cacheinfo", f"160000,{elsewhere},bounty/target/lib")
    git(work, "update-index", "--add", "--cacheinfo", f"160000,{elsewhere},docs")
    git(work, "add", ".gitmodules")
    git(work, "commit", "--quiet", "-m", "submodules pointing elsewhere")
    served = daemon.publish(work, "subs")
    with pytest.raises(Invalid) as caught:
        await gcoord.create_bounty(GitSource(served, "main", "bounty"), self_funded=True)
    assert caught.value.code == "git_submodule"
    assert "target/lib" in caught.value.message and "never fetched" in caught.value.message

    # The same repository with the submodule only outside the bounty folder publishes fine.
    git(work, "rm", "--quiet", "--cached", "bounty/target/lib")
    git(work, "commit", "--quiet", "-m", "drop the inner one")
    served = daemon.publish(work, "subs-outside")
    result = await gcoord.create_bounty(GitSource(served, "main", "bounty"), self_funded=True)
    assert "lib" not in " ".join(_package_files(gcoord, result["bounty"]["id"]))


async def test_symlinks_in_the_bounty_are_refused(tmp_path, daemon, gcoord):
    work = _repo_with_bounty(tmp_path)
    (work / "bounty" / "public" / "labels.link").symlink_to("/etc/passwd")
    commit_all(work, "a link out of the tree")
    served = daemon.publish(work, "links")
    with pytest.raises(Invalid) as caught:
        await gcoord.create_bounty(GitSource(served, "main", "bounty"), self_funded=True)
    assert caught.value.code == "git_symlink" and "labels.link" in caught.value.message


def _limits(**kw) -> GitLimits:
    return GitLimits(allow_private_hosts=True, **kw)


def test_oversized_files_and_bombs_are_refused(tmp_path, daemon):
    MB = 1024 * 1024
    # One file over the per-file limit: the blob filter leaves it on the server.
    big = _repo_with_bounty(tmp_path, "big")
    (big / "bounty" / "public" / "weights.bin").write_bytes(os.urandom(2 * MB))
    commit_all(big, "a large file")
    served = daemon.publish(big, "big")
    with pytest.raises(GitSourceRefused, match=r"larger than the 1.0 MB allowed per file .*weights.bin"):
        fetch_bounty_source(GitSource(served, "main", "bounty"), tmp_path / "w1", _limits(max_file_bytes=MB))

    # The same repository from a server without filter support: the watch on the disk stops it.
    served = daemon.publish(big, "big-nofilter", allow_filter=False)
    with pytest.raises(GitSourceRefused, match=r"larger than the 1.0 MB allowed") as caught:
        fetch_bounty_source(GitSource(served, "main", "bounty"), tmp_path / "w2", _limits(max_repo_bytes=MB))
    assert caught.value.code == "git_too_large"

    # Compressed small, huge unpacked (zeros): refused before anything is written out.
    bomb = _repo_with_bounty(tmp_path, "bomb")
    for i in range(12):
        (bomb / "bounty" / "public" / f"zeros{i}.bin").write_bytes(bytes(900 * 1024))
    commit_all(bomb, "a zip bomb")
    served = daemon.publish(bomb, "bomb")
    with pytest.raises(GitSourceRefused, match=r"unpacks to 10\.\d MB, over the 5.0 MB"):
        fetch_bounty_source(GitSource(served, "main", "bounty"), tmp_path / "w3",
                            _limits(max_file_bytes=MB, max_repo_bytes=5 * MB))
    assert not (tmp_path / "w3" / "tree").exists()


def test_oversized_history_is_never_fetched(tmp_path, daemon):
    work = _repo_with_bounty(tmp_path)
    (work / "history.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    commit_all(work, "a large blob, long ago")
    (work / "history.bin").unlink()
    tip = commit_all(work, "removed again")
    served = daemon.publish(work, "history", allow_filter=False)
    # Only the one commit comes over (depth 1), so 3 MB of history cannot break a 1 MB limit.
    got = fetch_bounty_source(GitSource(served, tip, "bounty"), tmp_path / "w", _limits(max_repo_bytes=1024 * 1024))
    assert got.commit == tip and (got.folder / "bounty.toml").is_file()


def test_a_server_that_never_answers_hits_the_time_limit(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts the connection (backlog) and never says a word
        source = GitSource(f"git://127.0.0.1:{silent.getsockname()[1]}/x.git", "main")
        with pytest.raises(GitSourceRefused, match="longer than 1 s") as caught:
            fetch_bounty_source(source, tmp_path / "w", _limits(timeout_s=1.0))
    assert caught.value.code == "git_timeout"


@pytest.mark.parametrize("url, limits, code, words", [
    ("ext::sh -c touch% /tmp/pwned", {}, "git_protocol_refused", "remote-helper"),
    ("fd::3", {}, "git_protocol_refused", "remote-helper"),
    ("/srv/repos/private.git", {}, "git_protocol_refused", "file transport is not allowed"),
    ("file:///srv/repos/private.git", {}, "git_protocol_refused", "file transport is not allowed"),
    ("https://user:hunter2@example.org/r.git", {}, "git_bad_url", "password"),
    ("-uhttps://example.org/r.git", {}, "git_bad_url", "leading '-'"),
    ("ssh://example.org/r.git", {"protocols": ("https",)}, "git_protocol_refused", "allowed: https"),
    ("git@example.org:r.git", {"protocols": ("https",)}, "git_protocol_refused", "ssh transport"),
    ("https://evil.example.org/r.git", {"allowed_hosts": ("github.com",)}, "git_host_refused", "not among"),
    ("git://127.0.0.1:9418/r.git", {"allow_private_hosts": False}, "git_host_refused", "local or private"),
    ("http://[::1]/r.git", {"allow_private_hosts": False}, "git_host_refused", "local or private"),
    ("http://localhost/r.git", {"allow_private_hosts": False}, "git_host_refused", "local or private"),
    # Not "private" to Python, yet no public host: carrier NAT / tailnets, IPv4 inside IPv6, benchmarking.
    ("http://100.64.0.1/r.git", {"timeout_s": 3.0}, "git_host_refused", "local or private"),
    ("http://[::ffff:127.0.0.1]/r.git", {"timeout_s": 3.0}, "git_host_refused", "local or private"),
    ("http://[64:ff9b::7f00:1]/r.git", {"timeout_s": 3.0}, "git_host_refused", "local or private"),
    ("http://[2002:7f00:1::]/r.git", {"timeout_s": 3.0}, "git_host_refused", "local or private"),
    ("http://198.18.0.1/r.git", {"timeout_s": 3.0}, "git_host_refused", "local or private"),
])
def test_urls_outside_the_operators_rules_are_refused(tmp_path, url, limits, code, words):
    marker = Path("/tmp/pwned")
    existed = marker.exists()
    with pytest.raises(GitSourceRefused) as caught:
        fetch_bounty_source(GitSource(url, "main"), tmp_path / "w", GitLimits(**limits))
    assert caught.value.code == code and words in str(caught.value), str(caught.value)
    assert marker.exists() == existed


def test_file_urls_work_only_when_the_operator_allows_them(tmp_path):
    work = _repo_with_bounty(tmp_path)
    tip = commit_all(work, "local")
    got = fetch_bounty_source(GitSource(f"file://{work}", tip, "bounty"), tmp_path / "w", GitLimits(allow_file=True))
    assert got.commit == tip and (got.folder / "target" / "solve.py").read_text() == SOLVE


async def test_admin_api_creates_from_git_and_refuses_with_422(tmp_path, daemon, gcfg, net):
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from l402tui.coordinator.admin import ensure_admin_macaroon
    from l402tui.coordinator.app import create_app
    from l402tui.coordinator.service import Coordinator
    from l402tui.store import Store

    work = _repo_with_bounty(tmp_path)
    tip = commit_all(work, "one")
    served = daemon.publish(work, "api")
    store = await Store.open(gcfg.db_path)
    coord = Coordinator(gcfg, store, net.node("coordinator"))
    srv = TestServer(create_app(coord, manage_lifecycle=False), host="127.0.0.1")
    await srv.start_server()
    try:
        token = (await ensure_admin_macaroon(store, coord.data_dir)).read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with ClientSession() as http:
            body = {"git": {"url": served, "commit": tip, "subdir": "bounty"}, "self_funded": True}
            async with http.post(url(srv, "/api/v1/admin/bounties"), json=body, headers=headers) as r:
                answer = await r.json()
                assert r.status == 201, answer
            assert answer["source"]["commit"] == tip and answer["bounty"]["status"] == "OPEN"
            # The admin client (an attached TUI, a script) sends the same source.
            from l402tui.coordinator.client import HttpCoordinatorClient

            async with HttpCoordinatorClient(str(srv.make_url("/")).rstrip("/"), admin_macaroon=token) as client:
                again = await client.create_bounty(GitSource(served, tip, "bounty"), self_funded=True)
            assert again["source"]["commit"] == tip and again["bounty"]["id"] != answer["bounty"]["id"]
            bad = [({"git": {"url": "ext::sh -c id", "commit": "main"}}, "git_protocol_refused"),
                   ({"git": {"url": served}}, None),  # schema: commit is required
                   ({"git": {"url": served, "commit": tip, "hooks": "yes"}}, None),
                   ({"path": str(work), "git": {"url": served, "commit": tip}}, "invalid_request")]
            for body, code in bad:
                async with http.post(url(srv, "/api/v1/admin/bounties"), json=body, headers=headers) as r:
                    answer = await r.json()
                    assert r.status == 422, answer
                    assert code is None or answer["error"] == code, answer
    finally:
        await srv.close()
        await coord.stop()
        await store.close()


def test_cli_creates_from_git_and_prints_the_commit(tmp_path, daemon):
    from l402tui.cli import main

    work = _repo_with_bounty(tmp_path)
    tip = commit_all(work, "one")
    served = daemon.publish(work, "cli")
    env = {"L402TUI_POLICY__GIT_ALLOW_PRIVATE_HOSTS": "true", "L402TUI_CONFIG": str(tmp_path / "none.toml")}
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path / "data"), "bounty", "create"]
    done = runner.invoke(main, [*args, "--git", served, "--commit", tip, "--subdir", "bounty", "--self-funded"],
                         env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert f"source     {served} at commit {tip} (folder bounty)" in done.output
    refused = runner.invoke(main, [*args, "--git", served, "--commit", "main", "--self-funded"], env=env)
    assert refused.exit_code == 1 and "bounty.toml" in refused.output
    usage = runner.invoke(main, [*args, "--git", served], env=env)
    assert usage.exit_code == 2 and "--git needs --commit" in usage.output
    private = runner.invoke(main, [*args, "--git", served, "--commit", tip, "--self-funded"],
                            env={"L402TUI_CONFIG": str(tmp_path / "none.toml")})
    assert private.exit_code == 1 and "local or private address" in private.output


def test_git_source_from_a_request_body():
    assert GitSource.from_json({"url": "https://h/r.git", "commit": "v1"}) == GitSource("https://h/r.git", "v1", "")
    for bad in (None, "https://h/r.git", {"url": "https://h/r.git"}, {"url": 1, "commit": "v1"},
                {"url": "https://h/r.git", "commit": "v1", "subdir": ["a"]}):
        with pytest.raises(GitSourceRefused) as caught:
            GitSource.from_json(bad)
        assert caught.value.code == "invalid_request"
