"""The demo's one wait for its story (headless and in the TUI): done when every required
milestone is seen, given up when told, and an actor's failure is raised, not waited out."""

from __future__ import annotations

import asyncio

import pytest

from l402tui.demo import story


def _show(marks: story.Milestones) -> story.Performance:
    return story.Performance(None, None, print, marks, asyncio.Event())


async def test_it_ends_when_the_last_milestone_is_marked():
    marks = story.Milestones()
    show = _show(marks)
    for name in story.REQUIRED[:-1]:
        marks.mark(name)
    asyncio.get_running_loop().call_later(0.05, marks.mark, story.REQUIRED[-1])
    assert await asyncio.wait_for(show.until_complete(lambda: False), 5) is True


async def test_it_gives_up_when_told_and_raises_an_actors_failure():
    show = _show(story.Milestones())
    assert await show.until_complete(lambda: True) is False

    async def broken():
        raise RuntimeError("agent crashed")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    show.tasks.append(task)
    with pytest.raises(RuntimeError, match="agent crashed"):
        await asyncio.wait_for(show.until_complete(lambda: False), 5)
