"""The command proposer driving a stand-in coding-agent CLI (a real subprocess)."""

import re
import sys
import textwrap

import pytest

from l402tui.agent.loop import ExperimentLoop
from l402tui.agent.proposers import TEMPLATES, CommandProposer, ProposalContext, program_md
from l402tui.agent.results import ResultRow
from l402tui.agent.workspace import Workspace

# Reads the prompt like a coding agent would: finds program.md and the description path in it.
FAKE_AGENT = textwrap.dedent('''\
    import re, subprocess, sys, pathlib
    prompt, mode = sys.argv[1], sys.argv[2]
    program = pathlib.Path(re.search(r"Read (\\S+program\\.md)", prompt).group(1))
    text = program.read_text()
    model = pathlib.Path("target/model.py")
    lines = model.read_text().splitlines(keepends=True)
    lines[0] = "GUESS = 2.9  # search: float(0.01, 100.0, log)\\n"
    model.write_text("".join(lines))
    description = re.search(r"description of the idea to (\\S+),", prompt).group(1)
    pathlib.Path(description).write_text("move GUESS next to the labels\\n")
    if mode == "commit":
        subprocess.run(["git", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qam", "agent commit"], check=True)
    if mode == "fail":
        print("model quota exceeded")
        sys.exit(4)
    if mode == "hang":
        import time; time.sleep(60)
''')


@pytest.fixture
def fake_agent(tmp_path):
    path = tmp_path / "fake_agent.py"
    path.write_text(FAKE_AGENT)
    return path


@pytest.fixture
def ws(tmp_path, package):
    return Workspace.create(tmp_path / "ws", package, branch="b")


def test_templates_render_with_the_prompt_and_files(ws):
    ctx = ProposalContext(ws.spec(), ws.root, ws.target, (), None, 1, 60.0)
    argv = CommandProposer.from_template("aider").render(ctx, ws.scratch / "program.md", ws.scratch / "d.txt")
    assert argv[:4] == ["aider", "--yes-always", "--no-auto-commits", "--no-gitignore"]
    assert argv[-1] == "target/model.py" and "program.md" in argv[-2]
    assert CommandProposer.from_command_line("claude").argv == TEMPLATES["claude"]
    with pytest.raises(ValueError, match="unknown command template 'gpt'"):
        CommandProposer.from_template("gpt")


def test_program_md_has_what_a_coding_agent_needs(ws):
    history = (ResultRow("abcdef1", 2.5, 0.1, "keep", "baseline"), ResultRow("bcdef12", 2.9, 0.1, "discard", "GUESS 0.1"))
    text = program_md(ProposalContext(ws.spec(), ws.root, ws.target, history, 2.5, 2, 120.0), ws.scratch / "d.txt")
    assert "Guess the hidden number" in text
    assert "- `target/model.py`" in text
    assert "`error`: minimize" in text and "best so far\n(2.500000)" in text
    assert "bcdef12\t2.900000\t0.1\tdiscard\tGUESS 0.1" in text
    assert "held-out" in text and str(ws.scratch / "d.txt") in text


async def test_a_cli_edit_is_judged_by_the_loop(ws, fake_agent):
    loop = ExperimentLoop(ws, CommandProposer([sys.executable, str(fake_agent), "{prompt}", "ok"]))
    summary = await loop.run(max_experiments=1)
    assert summary.kept == 1 and summary.best_metric == pytest.approx(0.1)
    assert loop.log.read()[-1].description == "move GUESS next to the labels"
    assert (ws.scratch / "program.md").exists()  # left for the curious; excluded from git


async def test_commits_made_by_the_cli_are_undone_but_its_edit_is_kept(ws, fake_agent):
    loop = ExperimentLoop(ws, CommandProposer([sys.executable, str(fake_agent), "{prompt}", "commit"]))
    await loop.run(max_experiments=1)
    messages = [c.message.split("\n")[0] for c in ws.repo.iter_commits()]
    assert messages == ["move GUESS next to the labels", "baseline"]


async def test_cli_failure_and_timeout_are_crashes(ws, fake_agent):
    failing = ExperimentLoop(ws, CommandProposer([sys.executable, str(fake_agent), "{prompt}", "fail"]))
    await failing.run(max_experiments=1)
    row = failing.log.read()[-1]
    assert row.status == "crash" and re.search(r"exited with code 4: model quota exceeded", row.description)
    assert "GUESS = 0.5" in (ws.target / "model.py").read_text()

    hanging = ExperimentLoop(ws, CommandProposer([sys.executable, str(fake_agent), "{prompt}", "hang"],
                                                 timeout_s=1.0))
    await hanging.run(max_experiments=1)
    assert "ran past 1 s and was killed" in hanging.log.read()[-1].description


async def test_a_missing_cli_says_so(ws):
    loop = ExperimentLoop(ws, CommandProposer(["no-such-coding-agent", "{prompt}"]))
    await loop.run(max_experiments=1)
    assert "'no-such-coding-agent' is not installed or not on PATH" in loop.log.read()[-1].description
