"""Unpacking and freezing a bounty is disk work of up to the upload limits: it runs off the
event loop, which keeps answering every other request meanwhile."""

from __future__ import annotations

import asyncio

from l402tui.coordinator import publishing
from l402tui.coordinator.sponsor_client import pack_folder
from tests.coordinator.conftest import make_bounty


def _off_loop(fn):
    def checked(*args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        raise AssertionError(f"{fn.__name__} ran on the event loop")
    return checked


async def test_an_uploaded_bounty_is_unpacked_and_frozen_off_the_event_loop(coordinator, tmp_path, monkeypatch):
    monkeypatch.setattr(publishing, "unpack", _off_loop(publishing.unpack))
    monkeypatch.setattr(publishing, "make_tree_private", _off_loop(publishing.make_tree_private))
    result = await coordinator.create_bounty(pack_folder(make_bounty(tmp_path / "b")))
    assert result["bounty"]["id"]
