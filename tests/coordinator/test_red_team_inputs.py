"""Hostile input against the coordinator as `serve` runs it (start_coordinator, a real
loopback socket): every bad request gets a 4xx naming what was wrong, nothing is
created by it, and the server keeps serving."""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
import re
import socket
import tarfile
import time

import aiohttp
import pytest

from l402tui.config import load_config
from l402tui.coordinator import http_common
from l402tui.coordinator.runtime import start_coordinator
from tests.coordinator.conftest import make_bounty


@pytest.fixture
async def live(tmp_path, monkeypatch):
    monkeypatch.setattr(http_common, "HEADER_TIMEOUT_S", 1.0)
    cfg = load_config(tmp_path / "none.toml", env={}).with_overrides({
        "paths.data_dir": str(tmp_path / "data"), "coordinator.port": 0,
        "rate_limits.per_ip_per_minute": 100_000})
    running = await start_coordinator(cfg, evaluate=False)
    admin = {"Authorization": f"Bearer {running.admin_path.read_text().strip()}"}
    async with aiohttp.ClientSession() as session:
        yield running, session, admin
    await running.close()


async def _call(session, method, url, **kw):
    async with session.request(method, url, **kw) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def _still_serving(running, session):
    status, body = await _call(session, "GET", running.url + "/api/v1/status")
    assert status == 200 and body["ok"] is True


async def test_typed_booleans_and_fields_are_refused_with_their_name(live, tmp_path):
    running, session, admin = live
    folder = str(make_bounty(tmp_path / "sponsor"))
    for body, field in [({"path": folder, "self_funded": "false"}, "self_funded"),
                        ({"path": folder, "self_funded": 0}, "self_funded"),
                        ({"path": folder, "self_funded": None}, "self_funded"),
                        ({"path": 7}, "path"), ({"self_funded": True}, "path"), ({"path": ""}, "path"),
                        ({"path": "x" * 5000}, "path"), ({"path": "a\x00b"}, "path")]:
        status, answer = await _call(session, "POST", running.url + "/api/v1/admin/bounties", json=body,
                                     headers=admin)
        assert status == 422, (body, answer)
        assert answer["field"] == field and field in answer["message"], answer
    payment = running.url + "/api/v1/admin/payments/k1/resolve"
    for body, field in [({"sent": "true"}, "sent"), ({"sent": 1}, "sent"),
                        ({"sent": True, "fee_msat": 2**70}, "fee_msat"),
                        ({"sent": True, "fee_msat": -1}, "fee_msat"), ({"sent": True, "fee_msat": 1.5}, "fee_msat"),
                        ({"sent": True, "fee_msat": True}, "fee_msat")]:
        status, answer = await _call(session, "POST", payment, json=body, headers=admin)
        assert status == 422 and answer["field"] == field, (body, answer)
    status, answer = await _call(session, "GET", running.url + "/api/v1/admin/bounties", headers=admin)
    assert answer["bounties"] == []  # nothing was created by any of it

    # The gzip upload's query flag is typed too.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="tiny")
    status, answer = await _call(session, "POST", running.url + "/api/v1/admin/bounties?self_funded=maybe",
                                 data=buf.getvalue(), headers={**admin, "Content-Type": "application/gzip"})
    assert status == 422 and answer["field"] == "self_funded", answer
    await _still_serving(running, session)


async def test_nested_junk_and_oversized_bodies_get_4xx(live):
    running, session, admin = live
    routes = ["/api/v1/admin/bounties", "/api/v1/admin/payouts/resume", "/api/v1/admin/submissions/s1/review",
              "/api/v1/admin/payments/k1/resolve", "/api/v1/admin/bounties/b1/refund"]
    bodies = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
              b'{"path": ' + b"[" * 40 + b"]" * 40 + b"}", b"\xff\xfe junk", b"[]", b'"x"', b"null",
              b'{"note": NaN, "decision": "accept", "sent": true, "invoice": "x", "path": "p"}',
              b'{"path": "p"' + b" " * (3 * 1024 * 1024) + b"}"]
    for route in routes:
        for body in bodies:
            status, answer = await _call(session, "POST", running.url + route, data=body,
                                         headers={**admin, "Content-Type": "application/json"})
            assert 400 <= status < 500, (route, body[:40], status, answer)
            assert isinstance(answer, dict) and answer["error"] and answer["message"], answer
    # Gzip-framed junk where JSON is expected on a public route.
    status, answer = await _call(session, "POST", running.url + "/api/v1/submissions/s1/claim",
                                 data=gzip.compress(b"{}"), headers={"Content-Type": "application/json"})
    assert 400 <= status < 500, answer
    await _still_serving(running, session)


async def test_query_numbers_are_whole_and_in_range(live):
    running, session, admin = live
    for query in ["limit=abc", "limit=+5", "limit=1_000", "limit=%201", "limit=99999999999999999999", "limit=-1"]:
        status, answer = await _call(session, "GET", running.url + "/api/v1/admin/submissions?" + query,
                                     headers=admin)
        assert status == 422 and answer["field"] == "limit", (query, answer)


def _raw(url: str, request: bytes, read_s: float = 2.0) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        sock.settimeout(read_s)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except TimeoutError:
            pass
    return got


@pytest.mark.parametrize("how", ["after=99999999999999999999", "after=-1", "after=1e5", "after=%2B3",
                                 "Last-Event-ID: 99999999999999999999", "Last-Event-ID: 12abc",
                                 "Last-Event-ID: " + "9" * 5000])
async def test_huge_or_junk_event_ids_are_refused_before_the_stream_starts(live, how):
    running, session, admin = live
    path, header = ("/api/v1/events?" + how, b"") if how.startswith("after") else \
        ("/api/v1/events", how.encode() + b"\r\n")
    request = (f"GET {path} HTTP/1.1\r\nHost: x\r\n{admin and 'Authorization: ' + admin['Authorization']}\r\n"
               ).encode() + header + b"Connection: close\r\n\r\n"
    answer = await asyncio.to_thread(_raw, running.url, request)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1, answer[:500]  # one answer, not a 500 inside a 200 stream
    assert b"text/event-stream" not in answer
    await _still_serving(running, session)


async def test_long_paths_get_4xx_and_are_not_logged_whole(live, caplog):
    running, session, admin = live
    caplog.set_level(logging.DEBUG)
    for size in (3_000, 9_000, 100_000):
        request = f"GET /api/v1/bounties/{'a' * size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        answer = await asyncio.to_thread(_raw, running.url, request)
        assert re.match(rb"HTTP/1\.[01] (414|400|404) ", answer), (size, answer[:200])
        assert len(re.findall(rb"HTTP/1\.[01] \d{3}", answer)) == 1
    logged = [logging.Formatter().format(r) for r in caplog.records]
    assert max(map(len, logged), default=0) < 2_000, max(logged, key=len)[:500]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a client's junk logged as an error"
    await _still_serving(running, session)


async def test_slow_headers_time_out(live):
    running, session, admin = live
    host, port = running.url.removeprefix("http://").rsplit(":", 1)

    def trickle() -> float:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            t0 = time.monotonic()
            sock.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")  # never finished
            sock.settimeout(10)
            while True:
                try:
                    if not sock.recv(1024):
                        return time.monotonic() - t0
                    sock.sendall(b"X-Slow: 1\r\n")
                except (ConnectionResetError, BrokenPipeError):
                    return time.monotonic() - t0
                except TimeoutError:
                    return 99.0

    took = await asyncio.to_thread(trickle)
    assert took < 5, f"an unfinished request head held its connection for {took:.1f} s"
    await _still_serving(running, session)


@pytest.mark.parametrize("path, extra", [("/api/v1/submissions/s_x/claim", b""),
                                         ("/api/v1/admin/bounties", b"admin")])
async def test_a_trickled_body_times_out_with_408(live, monkeypatch, path, extra):
    # Slowloris past the header timeout: a whole head, then a body a byte at a time.
    from l402tui.coordinator import schema

    monkeypatch.setattr(schema, "BODY_TIMEOUT_S", 1.0)
    monkeypatch.setattr(schema, "MIN_BODY_RATE", 10**9)
    running, session, admin = live
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    auth = f"Authorization: {admin['Authorization']}\r\n".encode() if extra else b""

    def trickle(content_type: bytes) -> tuple[float, bytes]:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            t0 = time.monotonic()
            sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + auth +
                         b"Content-Type: " + content_type + b"\r\nContent-Length: 100000\r\n\r\n{")
            sock.settimeout(0.3)
            answer = b""
            while time.monotonic() - t0 < 40:
                try:
                    got = sock.recv(65536)
                    if not got:
                        return time.monotonic() - t0, answer
                    answer += got
                except TimeoutError:
                    try:
                        sock.sendall(b" ")
                    except (BrokenPipeError, ConnectionResetError):
                        return time.monotonic() - t0, answer
                except ConnectionResetError:
                    return time.monotonic() - t0, answer
            return 99.0, answer

    kinds = [b"application/json"] + ([b"application/gzip"] if extra else [])
    for kind in kinds:
        took, answer = await asyncio.to_thread(trickle, kind)
        # 1 s for the body, then aiohttp's lingering read (10 s) before it closes.
        assert took < 30, f"a trickled body held its connection for {took:.1f} s"
        assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer, answer[:300]
    await _still_serving(running, session)


async def test_connections_per_address_are_capped(live):
    running, session, admin = live
    cap = http_common.ConnectionCap(3, cap_loopback=True)  # loopback is exempt in production
    cap.install(running.runner.server)
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    try:
        extra = await asyncio.to_thread(_raw, running.url, b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert extra.startswith(b"HTTP/1.1 503") and b"too_many_connections" in extra, extra[:200]
    finally:
        for sock in held:
            sock.close()
    await asyncio.sleep(0.2)
    assert cap.open == {} and cap.refused == 1
    await _still_serving(running, session)
