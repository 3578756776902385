"""The built-in ``search`` proposer: offline, deterministic, no AI.

It mutates constants marked in the mutable files::

    LEARNING_RATE = 0.01   # search: float(0.0001, 1.0, log)
    HIDDEN = 64            # search: int(8, 512, log)
    ACTIVATION = "relu"    # search: choice("relu", "gelu", "tanh")

The value that is changed is the last literal before the ``#`` (a number for float/int,
one of the options for choice), so marks work on assignments, dict entries and keyword
arguments alike.  Strategies: ``hill`` (default; perturbs one or two marks around the
last kept values, with a step that shrinks while experiments keep failing and widens
again after a keep) and ``random`` (samples every mark afresh within its range).
Everything is derived from the seed, the experiment number and results.tsv, so a
resumed run proposes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import ast
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from l402tui.agent.proposers import Proposal, ProposalContext, ProposerFailed

MARK_RE = re.compile(r"#\s*search:\s*(float|int|choice)\s*\((.*)\)\s*$")
NUMBER_RE = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")
TOKEN_RE = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[A-Za-z_]\w*""")
NAME_TOKEN_RE = re.compile(r"""'([^'\\]*)'|"([^"\\]*)"|([A-Za-z_][\w.]*)""")
STRATEGIES = ("hill", "random")
MAX_TRIES = 20


class MarkError(ValueError):
    """A ``# search:`` mark that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Mark:
    path: Path
    line_no: int  # 0-based
    name: str
    kind: str  # float | int | choice
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    options: tuple[str, ...] = ()  # choice: the options' source text
    span: tuple[int, int] = (0, 0)  # where the current value sits in the line
    value_text: str = ""

    @property
    def label(self) -> str:
        return self.name

    def current(self) -> float | str:
        if self.kind == "choice":
            return self.value_text
        return float(self.value_text)


def _split_args(text: str) -> list[str]:
    return [m.group(0) for m in TOKEN_RE.finditer(text)]


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as relu


def parse_marks(path: Path, rel: str) -> list[Mark]:
    marks = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        m = MARK_RE.search(line)
        if not m or line.lstrip().startswith("#"):
            continue
        kind, args_text = m.group(1), m.group(2)
        code = line[:m.start()]
        where = f"{rel}:{i + 1}"
        args = _split_args(args_text)
        if kind in ("float", "int"):
            flags = [a for a in args if not NUMBER_RE.fullmatch(a)]
            nums = [a for a in args if NUMBER_RE.fullmatch(a)]
            if len(nums) != 2 or any(f != "log" for f in flags):
                raise MarkError(f"{where}: write `# search: {kind}(low, high)` or `{kind}(low, high, log)`, "
                                f"got `{kind}({args_text})`")
            low, high = float(nums[0]), float(nums[1])
            log = bool(flags)
            if not low < high or (log and low <= 0):
                raise MarkError(f"{where}: need low < high{' and low > 0 for log' if log else ''}, "
                                f"got {nums[0]}, {nums[1]}")
            found = list(NUMBER_RE.finditer(code))
            if not found:
                raise MarkError(f"{where}: no number before the mark to search over")
            value = found[-1]
            marks.append(Mark(path, i, _label(code, value.start(), rel, i), kind, low, high, log, (), value.span(),
                              value.group(0)))
        else:
            if len(args) < 2:
                raise MarkError(f"{where}: choice needs at least two options, e.g. choice(\"a\", \"b\")")
            wanted = {repr(_literal(a)) for a in args}
            spans = [t for t in TOKEN_RE.finditer(code) if repr(_literal(t.group(0))) in wanted]
            if not spans:
                raise MarkError(f"{where}: none of the options {', '.join(args)} appears before the mark")
            value = spans[-1]
            marks.append(Mark(path, i, _label(code, value.start(), rel, i), kind, options=tuple(args),
                              span=value.span(),
                              value_text=value.group(0)))
    return marks


def _label(code: str, value_start: int, rel: str, line_index: int) -> str:
    """What the mark sets: the last name (or quoted key) before the value, as in
    ``LR = 0.01``, ``{"hidden": 64}``, ``f(scale=2.5e-3)``, ``PRAGMA cache_size = 40``."""
    names = [m.group(1) or m.group(2) or m.group(3) for m in NAME_TOKEN_RE.finditer(code[:value_start])]
    names = [n for n in names if n]
    return names[-1] if names else f"{rel}:{line_index + 1}"


def format_value(mark: Mark, value: float | str) -> str:
    if mark.kind == "choice":
        return str(value)
    if mark.kind == "int":
        return str(int(value))
    text = f"{value:.4g}"
    return text if any(c in text for c in ".en") else text + ".0"


class SearchProposer:
    """Hill climbing or random search over ``# search:`` marks."""

    name = "search"

    def __init__(self, seed: int = 0, strategy: str = "hill"):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown search strategy {strategy!r}; use {' or '.join(STRATEGIES)}")
        self.seed = seed
        self.strategy = strategy

    def marks(self, ctx: ProposalContext) -> list[Mark]:
        out = []
        for path in ctx.mutable_files():
            out.extend(parse_marks(path, path.relative_to(ctx.target).as_posix()))
        return out

    async def propose(self, ctx: ProposalContext) -> Proposal:
        try:
            marks = self.marks(ctx)
        except MarkError as exc:
            raise ProposerFailed(str(exc)) from None
        if not marks:
            raise ProposerFailed("no `# search:` marks in the mutable files "
                                 f"({', '.join(ctx.spec.mutable)}); add some, or use the command proposer")
        rng = random.Random(f"{self.seed}:{ctx.experiment}")
        tried = {r.description for r in ctx.history if r.status != "keep"}
        streak = _failures_since_keep(ctx)
        changes: list[tuple[Mark, str]] = []
        description = ""
        for _ in range(MAX_TRIES):
            attempt = self._changes(marks, rng, streak)
            if not attempt:
                continue
            changes = attempt
            description = "; ".join(f"{m.label} {m.value_text} -> {new}" for m, new in changes)
            if description not in tried:
                break
            # else: tried before from this point; look for a fresh one, but after
            # MAX_TRIES a repeat is still a fair experiment (a noisy metric may differ).
        if not changes:
            raise ProposerFailed("no mark could be moved (every range is a single value?)")
        _apply(changes)
        return Proposal(description)

    def _changes(self, marks: list[Mark], rng: random.Random, streak: int) -> list[tuple[Mark, str]]:
        if self.strategy == "random":
            picked = marks
        else:
            count = 2 if len(marks) > 1 and rng.random() < 0.25 else 1
            picked = rng.sample(marks, count)
        # The step shrinks while nothing is kept (fine-tuning around a good point) and
        # snaps back to wide after a keep; now and then a wide jump escapes a local optimum.
        scale = max(0.03, 0.5 * 0.85 ** streak)
        if streak >= 8 and rng.random() < 0.15:
            scale = 0.5
        out = []
        for mark in picked:
            new = self._mutate(mark, rng, scale)
            if new != mark.value_text:
                out.append((mark, new))
        return out

    def _mutate(self, mark: Mark, rng: random.Random, scale: float) -> str:
        if mark.kind == "choice":
            current = repr(_literal(mark.value_text))
            others = [o for o in mark.options if repr(_literal(o)) != current]
            return _as_source(rng.choice(others), mark.value_text)
        lo, hi = mark.low, mark.high
        if self.strategy == "random":
            x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if mark.log else rng.uniform(lo, hi)
        else:
            cur = min(max(float(mark.value_text), lo), hi)
            if mark.log:
                x = cur * math.exp(rng.gauss(0.0, scale * 2.0))
            else:
                x = cur + rng.gauss(0.0, scale * (hi - lo) / 2.0)
        x = min(max(x, lo), hi)
        if mark.kind == "int":
            n = int(round(x))
            if n == int(round(float(mark.value_text))):
                n += rng.choice((-1, 1))
            return format_value(mark, min(max(n, int(math.ceil(lo))), int(math.floor(hi))))
        return format_value(mark, x)


def _as_source(option: str, current: str) -> str:
    """An option as code in the style of the current value: ``choice(sgd, adam)`` marks a
    line holding ``"sgd"``, so ``adam`` must be written as ``"adam"``."""
    value = _literal(option)
    if isinstance(value, str) and current[:1] in ("'", '"'):
        quote = current[0]
        return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
    return option


def _failures_since_keep(ctx: ProposalContext) -> int:
    n = 0
    for row in reversed(ctx.history):
        if row.status == "keep":
            break
        n += 1
    return n


def _apply(changes: list[tuple[Mark, str]]) -> None:
    by_file: dict[Path, list[tuple[Mark, str]]] = {}
    for mark, new in changes:
        by_file.setdefault(mark.path, []).append((mark, new))
    for path, items in by_file.items():
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        for mark, new in items:
            line = lines[mark.line_no]
            a, b = mark.span
            lines[mark.line_no] = line[:a] + new + line[b:]
        path.write_text("\n".join(lines), encoding="utf-8")
