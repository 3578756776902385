"""Proposers: whatever edits the mutable files for the next experiment.

A proposer edits files in the work tree and returns a one-line description; the loop
judges the result.  Two kinds ship: ``search`` (built-in, offline; see
:mod:`l402tui.agent.search`) and ``command``, which runs any coding-agent CLI with a
generated ``program.md`` (templates for ``claude -p``, ``codex exec``, ``aider
--message``, or a free-form command line).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import git

from l402tui.agent.results import ResultRow
from l402tui.agent.workspace import SCRATCH
from l402tui.bounty.spec import BountySpec

HISTORY_ROWS = 30  # program.md shows the latest rows; older ones add cost, not insight


class ProposerFailed(Exception):
    """The proposer could not produce an edit; logged as a crash, and the loop goes on."""


@dataclass(frozen=True)
class ProposalContext:
    spec: BountySpec
    root: Path  # the work tree root
    target: Path  # root / target/
    history: tuple[ResultRow, ...]  # results.tsv so far (row 0 is the baseline)
    best_metric: float | None
    experiment: int  # this experiment's number (the baseline is 0)
    time_budget_s: float

    def mutable_files(self) -> list[Path]:
        files = {p for g in self.spec.mutable for p in self.target.glob(g) if p.is_file()}
        return sorted(files)


@dataclass(frozen=True)
class Proposal:
    description: str


class Proposer(Protocol):
    name: str

    async def propose(self, ctx: ProposalContext) -> Proposal: ...


# command proposer -------------------------------------------------------------------------

# {prompt}: the instruction text; {program}: path of program.md; {files}: the mutable files
# (one argument each); {workdir}: the work tree.  Each template is an argv list.
TEMPLATES: dict[str, list[str]] = {
    "claude": ["claude", "-p", "{prompt}", "--permission-mode", "acceptEdits"],
    "codex": ["codex", "exec", "--full-auto", "{prompt}"],
    # aider commits on its own by default; the loop owns the history, so it must not.
    "aider": ["aider", "--yes-always", "--no-auto-commits", "--no-gitignore", "--message", "{prompt}", "{files}"],
}

PROMPT = ("Read {program} and run exactly one experiment as it describes: edit only the mutable files "
          "to try one idea, write a one-line description of the idea to {description}, then stop. "
          "Do not run git and do not edit any other file.")


def program_md(ctx: ProposalContext, description_path: Path) -> str:
    """The brief a coding agent gets, in autoresearch's spirit: what to change, how it is
    judged, what was tried."""
    spec = ctx.spec
    primary = spec.primary_metric
    rows = ctx.history[-HISTORY_ROWS:]
    table = "\n".join("\t".join((r.commit, f"{r.metric:.6f}", f"{r.memory_gb:.1f}", r.status, r.description))
                      for r in rows) or "(nothing yet)"
    metrics = "\n".join(f"- `{m.name}`: {m.direction}, weight {m.weight:g}"
                        + (f", guard (may not regress more than {m.tolerance:.0%})" if m.guard else "")
                        + (" (measured by the harness)" if m.source == "harness" else "")
                        for m in spec.metrics)
    files = "\n".join(f"- `{p.relative_to(ctx.root).as_posix()}`" for p in ctx.mutable_files())
    best = "unknown" if ctx.best_metric is None else f"{ctx.best_metric:.6f}"
    return f"""# program.md: {spec.name}, experiment {ctx.experiment}

{spec.description.strip()}

## What you may change

Only these files (everything else is frozen; edits elsewhere make the experiment a crash):

{files}

## How it is judged

The code in `{spec.target_dir}/` runs as `{shlex.join(spec.run.command)}` on the public inputs
(`{spec.public_dir}/inputs/`) and a frozen scorer computes the metrics:

{metrics}

The experiment is kept only if `{primary.name}` ({primary.direction}) beats the best so far
({best}) by more than the measurement noise; otherwise the work tree is reset.  Each run has
{spec.run.timeout_s:g} s; an experiment has {ctx.time_budget_s:g} s in all.  Hard-coding
answers for the public inputs does not pay: submissions are scored on a secret held-out set.

## History (results.tsv: commit, metric, memory_gb, status, description)

```
{table}
```

## Your task

Try ONE new idea that is not in the history above.  Keep the change small and the code
runnable.  Then write a one-line description of what you changed to `{description_path}`.
"""


class CommandProposer:
    """Runs a coding-agent CLI in the work tree to make one edit."""

    name = "command"

    def __init__(self, argv: list[str], *, timeout_s: float = 900.0, env: dict[str, str] | None = None):
        if not argv:
            raise ValueError("the command proposer needs a command, e.g. --proposer-command 'claude -p {prompt}'")
        self.argv = argv
        self.timeout_s = timeout_s
        self.env = env

    @classmethod
    def from_template(cls, name: str, **kw) -> "CommandProposer":
        if name not in TEMPLATES:
            raise ValueError(f"unknown command template {name!r}; known: {', '.join(TEMPLATES)}, "
                             "or give a free-form command line")
        return cls(list(TEMPLATES[name]), **kw)

    @classmethod
    def from_command_line(cls, line: str, **kw) -> "CommandProposer":
        if line.strip() in TEMPLATES:
            return cls.from_template(line.strip(), **kw)
        return cls(shlex.split(line), **kw)

    def render(self, ctx: ProposalContext, program: Path, description: Path) -> list[str]:
        prompt = PROMPT.format(program=program, description=description)
        files = [p.relative_to(ctx.root).as_posix() for p in ctx.mutable_files()]
        argv: list[str] = []
        for arg in self.argv:
            if arg == "{files}":
                argv.extend(files)
                continue
            argv.append(arg.replace("{prompt}", prompt).replace("{program}", str(program))
                        .replace("{workdir}", str(ctx.root)).replace("{files}", " ".join(files)))
        return argv

    async def propose(self, ctx: ProposalContext) -> Proposal:
        scratch = ctx.root / SCRATCH
        scratch.mkdir(exist_ok=True)
        program, description = scratch / "program.md", scratch / "description.txt"
        description.unlink(missing_ok=True)
        program.write_text(program_md(ctx, description), encoding="utf-8")
        repo = git.Repo(ctx.root)
        head_before = repo.head.commit.hexsha
        argv = self.render(ctx, program, description)
        log = scratch / "proposer.log"
        try:
            with open(log, "wb") as out:
                proc = await asyncio.create_subprocess_exec(*argv, cwd=ctx.root, stdin=subprocess.DEVNULL,
                                                            stdout=out, stderr=subprocess.STDOUT,
                                                            env=self.env, start_new_session=True)
        except FileNotFoundError:
            raise ProposerFailed(f"{argv[0]!r} is not installed or not on PATH") from None
        try:
            code = await asyncio.wait_for(proc.wait(), self.timeout_s)
        except asyncio.TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise ProposerFailed(f"{argv[0]} ran past {self.timeout_s:g} s and was killed") from None
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        if repo.head.commit.hexsha != head_before:
            # The tool committed despite being told not to: keep its edits, undo its commits,
            # so the loop still owns the branch.
            repo.head.reset(head_before, index=True, working_tree=False)
        if code != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip()[-300:]
            raise ProposerFailed(f"{argv[0]} exited with code {code}: {tail}")
        text = description.read_text(encoding="utf-8", errors="replace").strip() if description.exists() else ""
        description.unlink(missing_ok=True)
        return Proposal(text.splitlines()[0] if text else f"{argv[0]} edit (no description written)")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
