"""The ``bounty.toml`` format: parsing and validation that reports every problem at once.

Documented in ``docs/bounty-format.md``.  :func:`load_bounty` returns a
:class:`BountySpec` or raises :class:`BountyInvalid` carrying one
:class:`Problem` per mistake, each with the line it is on and how to fix it.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l402tui.bounty.toml_lines import KeyLines

SPEC_FILE = "bounty.toml"
DIRECTIONS = ("minimize", "maximize")
RUN_MODES = ("batch", "interactive")
TARGET_KINDS = ("relative", "absolute")
METRIC_SOURCES = ("score", "harness")
# Measured from outside the run (the GPU ones through NVML, on the slot's GPU).
HARNESS_MEASUREMENTS = ("wall_s", "cpu_s", "peak_rss_mb", "gpu_s", "gpu_energy_j", "gpu_peak_mem_mb")
GPU_MEASUREMENTS = ("gpu_s", "gpu_energy_j", "gpu_peak_mem_mb")
PLACEHOLDERS = {
    "run": {"inputs", "artifacts", "workdir"},
    "score": {"artifacts", "labels", "measurements", "scorer", "canaries", "metrics_out", "inputs"},
}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class BountyInvalid(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str
    weight: float = 1.0
    guard: bool = False
    tolerance: float = 0.0  # relative regression allowed for a guard (0.01 = 1 %)
    source: str = "score"  # score: from the scorer's JSON; harness: measured from outside

    def better(self, new: float, old: float) -> bool:
        return new < old if self.direction == "minimize" else new > old


@dataclass(frozen=True)
class Phase:
    command: list[str]
    timeout_s: float
    mode: str = "batch"

    def render(self, **values: str) -> list[str]:
        return [arg.format(**values) for arg in self.command]


@dataclass(frozen=True)
class BountySpec:
    root: Path
    name: str
    description: str
    target_dir: str
    mutable: tuple[str, ...]
    public_dir: str
    heldout_dirs: tuple[str, ...]
    scorer_dir: str
    run: Phase
    score: Phase
    metrics: tuple[Metric, ...]
    target_kind: str
    target_improvement: float
    min_improvement: float
    pool_sats: int
    deadline: dt.datetime | None
    duration_hours: float | None
    holdback_s: float | None
    stake_sats: int
    max_changed_lines: int
    forbidden_patterns: tuple[str, ...]
    test_command: list[str] | None
    cpus: float
    memory_mb: int
    disk_mb: int
    gpu: bool
    time_limit_s: float
    image: str | None
    repeats: int
    k_sigma: float
    canaries: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    rejected_stake_keep_percent: float = 50.0  # of a REJECTED submission's stake, kept into the pool
    # Rationing of held-out evaluations (docs/verdicts.md): this many a day per bounty
    # need no stake beyond reward.stake_sats; each one past them needs a stake that
    # grows by rationing_stake_sats per further free_evaluations_per_day (0: 1 % of the pool).
    free_evaluations_per_day: int = 10
    rationing_stake_sats: int = 0
    honeypot_alpha: float = 0.001  # one-sided test level of the knows_heldout flag (antigaming)
    honeypots: str | None = None  # file in every held-out labels/ naming the honeypot items
    exclusive: bool | None = None  # the whole machine per evaluation; None: the coordinator's default

    @property
    def target_path(self) -> Path:
        return self.root / self.target_dir

    @property
    def public_path(self) -> Path:
        return self.root / self.public_dir

    @property
    def scorer_path(self) -> Path:
        return self.root / self.scorer_dir

    def heldout_path(self, index: int = 0) -> Path:
        return self.root / self.heldout_dirs[index % len(self.heldout_dirs)]

    @property
    def primary_metric(self) -> Metric:
        weighted = [m for m in self.metrics if m.weight > 0]
        return max(weighted, key=lambda m: m.weight)

    def deadline_from(self, created_at: dt.datetime) -> dt.datetime:
        if self.deadline is not None:
            return self.deadline
        return created_at + dt.timedelta(hours=self.duration_hours or 24 * 7)


class _Reader:
    """Reads typed values out of the parsed TOML, collecting problems instead of stopping."""

    def __init__(self, data: dict[str, Any], lines: KeyLines, file: str):
        self.data = data
        self.lines = lines
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, self.lines.line_of(path), f"{path} {message}"))

    def raw(self, path: str) -> Any:
        node: Any = self.data
        for part in _split_path(path):
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    return _MISSING
                node = node[part]
            else:
                if not isinstance(node, dict) or part not in node:
                    return _MISSING
                node = node[part]
        return node

    def get(self, path: str, kind: type | tuple[type, ...], default: Any = ..., *, hint: str = "") -> Any:
        value = self.raw(path)
        if value is _MISSING:
            if default is ...:
                extra = f" ({hint})" if hint else ""
                self.problems.append(Problem(self.file, self.lines.line_of(path), f"{path} is required{extra}"))
                return None
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(_type_name(k) for k in kinds)
            self.problem(path, f"must be {names}, got {_type_name(type(value))} {value!r}")
            return None
        return value

    def positive(self, path: str, kind: type, default: Any = ..., *, allow_zero: bool = False,
                 hint: str = "") -> Any:
        value = self.get(path, kind, default, hint=hint)
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            bound = ">= 0" if allow_zero else "> 0"
            self.problem(path, f"must be {bound}, got {value!r}")
            return None
        return value

    def choice(self, path: str, options: tuple[str, ...], default: Any = ...) -> Any:
        value = self.get(path, str, default)
        if value is not None and value not in options:
            quoted = " or ".join(f'"{o}"' for o in options)
            self.problem(path, f'must be {quoted}, got "{value}"')
            return None
        return value

    def command(self, path: str, phase: str) -> list[str] | None:
        value = self.get(path, (str, list), hint="a list of arguments, e.g. [\"python3\", \"run.py\"]")
        if value is None:
            return None
        if isinstance(value, str):
            args = shlex.split(value)
        elif all(isinstance(a, str) for a in value):
            args = list(value)
        else:
            self.problem(path, "must be a list of strings")
            return None
        if not args:
            self.problem(path, "must not be empty")
            return None
        allowed = PLACEHOLDERS[phase]
        for arg in args:
            for name in re.findall(r"{([^{}]*)}", arg):
                if name not in allowed:
                    self.problem(path, f"uses unknown placeholder {{{name}}}; the {phase} phase knows "
                                 + ", ".join(f"{{{a}}}" for a in sorted(allowed)))
        return args


class _Missing:
    pass


_MISSING = _Missing()


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list", dict: "a table", dt.datetime: "a date-time"}.get(kind, kind.__name__)


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in path.split("."):
        m = re.fullmatch(r"([A-Za-z0-9_\-]+)(?:\[(\d+)\])?", piece)
        if not m:
            parts.append(piece)
            continue
        parts.append(m.group(1))
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
    return parts


KNOWN_KEYS: dict[str, set[str]] = {
    "": {"name", "description", "files", "run", "score", "metrics", "target", "reward",
         "constraints", "resources", "noise", "canaries", "rationing", "antigaming"},
    "files": {"target", "mutable", "public", "heldout", "scorer"},
    "run": {"command", "timeout_s", "mode"},
    "score": {"command", "timeout_s"},
    "metrics": {"name", "direction", "weight", "guard", "tolerance", "source"},
    "target": {"kind", "improvement", "min_improvement"},
    "reward": {"pool_sats", "deadline", "duration_hours", "holdback_s", "stake_sats",
               "rejected_stake_keep_percent"},
    "constraints": {"max_changed_lines", "forbidden_patterns", "test_command"},
    "resources": {"cpus", "memory_mb", "disk_mb", "gpu", "time_limit_s", "image", "exclusive"},
    "noise": {"repeats", "k_sigma"},
    "canaries": {"file"},
    "antigaming": {"honeypot_alpha", "honeypots"},
    "rationing": {"free_evaluations_per_day", "stake_sats"},
}


def _check_unknown_keys(r: _Reader) -> None:
    for key in r.data:
        if key not in KNOWN_KEYS[""]:
            r.problem(key, "is not a known key; known top-level keys: " + ", ".join(sorted(KNOWN_KEYS[""])))
    for section, known in KNOWN_KEYS.items():
        if not section:
            continue
        value = r.data.get(section)
        tables = value if isinstance(value, list) else [value]
        for i, table in enumerate(tables):
            if not isinstance(table, dict):
                continue
            prefix = f"{section}[{i}]" if isinstance(value, list) else section
            for key in table:
                if key not in known:
                    r.problem(f"{prefix}.{key}", "is not a known key; known: " + ", ".join(sorted(known)))


def _check_relative_path(r: _Reader, root: Path, path: str, value: str | None, *, must_exist: bool = True,
                         kind: str = "directory") -> None:
    if value is None:
        return
    p = Path(value)
    if p.is_absolute() or ".." in p.parts:
        r.problem(path, f"must be a path inside the bounty folder, got {value!r}")
        return
    full = root / p
    if must_exist:
        if kind == "directory" and not full.is_dir():
            r.problem(path, f"names {value!r}, which is not a directory in {root}; create it or fix the path")
        elif kind == "file" and not full.is_file():
            r.problem(path, f"names {value!r}, which is not a file in {root}; create it or fix the path")


def _parse(data: dict[str, Any], lines: KeyLines, root: Path, file: str) -> BountySpec | list[Problem]:
    r = _Reader(data, lines, file)
    _check_unknown_keys(r)

    name = r.get("name", str)
    if name is not None and not name.strip():
        r.problem("name", "must not be empty")
    description = r.get("description", str, "")

    target_dir = r.get("files.target", str, "target")
    _check_relative_path(r, root, "files.target", target_dir)
    mutable_raw = r.get("files.mutable", list, hint='globs inside files.target, e.g. ["parser.py"]')
    mutable: list[str] = []
    if mutable_raw is not None:
        if not mutable_raw:
            r.problem("files.mutable", "must list at least one file glob the agents may change")
        for i, g in enumerate(mutable_raw):
            if not isinstance(g, str) or not g.strip():
                r.problem(f"files.mutable[{i}]", f"must be a non-empty glob string, got {g!r}")
            elif Path(g).is_absolute() or ".." in Path(g).parts:
                r.problem(f"files.mutable[{i}]", f"must stay inside files.target, got {g!r}")
            else:
                mutable.append(g)
        if target_dir and (root / target_dir).is_dir():
            for g in mutable:
                if not any(p.is_file() for p in (root / target_dir).glob(g)):
                    r.problem("files.mutable", f"glob {g!r} matches no file in {target_dir}/")
    public_dir = r.get("files.public", str, "public")
    _check_relative_path(r, root, "files.public", public_dir)
    heldout_raw = r.get("files.heldout", (list, str), hint='e.g. ["heldout/a", "heldout/b"]')
    heldout: list[str] = []
    if isinstance(heldout_raw, str):
        heldout_raw = [heldout_raw]
    if heldout_raw is not None:
        if not heldout_raw:
            r.problem("files.heldout", "must name at least one held-out directory")
        for i, h in enumerate(heldout_raw):
            if not isinstance(h, str):
                r.problem(f"files.heldout[{i}]", f"must be a string, got {h!r}")
                continue
            _check_relative_path(r, root, "files.heldout", h)
            heldout.append(h)
            if target_dir and Path(h).parts[:1] == Path(target_dir).parts[:1]:
                r.problem("files.heldout", f"{h!r} lies inside files.target, so it would ship to agents; move it out")
    scorer_dir = r.get("files.scorer", str, "scorer")
    _check_relative_path(r, root, "files.scorer", scorer_dir)

    run_cmd = r.command("run.command", "run")
    run_timeout = r.positive("run.timeout_s", float, 300.0)
    run_mode = r.choice("run.mode", RUN_MODES, "batch")
    score_cmd = r.command("score.command", "score")
    score_timeout = r.positive("score.timeout_s", float, 300.0)
    if run_mode == "interactive" and score_cmd and not any("{metrics_out}" in a for a in score_cmd):
        r.problem("score.command", "must write its metrics to {metrics_out} when run.mode is \"interactive\" "
                  "(its stdin/stdout talk to the predictor)")

    metrics_raw = r.get("metrics", list, hint='add a [[metrics]] table with name and direction')
    metrics: list[Metric] = []
    if metrics_raw is not None:
        if not metrics_raw:
            r.problem("metrics", "must have at least one [[metrics]] table")
        seen: set[str] = set()
        for i, m in enumerate(metrics_raw):
            p = f"metrics[{i}]"
            if not isinstance(m, dict):
                r.problem(p, "must be a table ([[metrics]])")
                continue
            mname = r.get(f"{p}.name", str)
            if mname is not None:
                if not NAME_RE.match(mname):
                    r.problem(f"{p}.name", f"must be lower_snake_case (a-z, 0-9, _), got {mname!r}")
                elif mname in seen:
                    r.problem(f"{p}.name", f"repeats metric {mname!r}; names must be unique")
                seen.add(mname)
            direction = r.choice(f"{p}.direction", DIRECTIONS)
            weight = r.positive(f"{p}.weight", float, 1.0, allow_zero=True)
            guard = r.get(f"{p}.guard", bool, False)
            tolerance = r.positive(f"{p}.tolerance", float, 0.0, allow_zero=True)
            source = r.choice(f"{p}.source", METRIC_SOURCES, "score")
            if source == "harness" and mname is not None and mname not in HARNESS_MEASUREMENTS:
                r.problem(f"{p}.name", f"with source = \"harness\" must be one of {', '.join(HARNESS_MEASUREMENTS)}, got {mname!r}")
            if source == "harness" and mname in GPU_MEASUREMENTS and r.raw("resources.gpu") is not True:
                r.problem(f"{p}.name", f"{mname} is measured on the run's GPU; set resources.gpu = true")
            if weight == 0 and guard is False:
                r.problem(f"{p}.weight", "is 0 and the metric is not a guard, so it would be ignored; "
                          "give it a weight or set guard = true")
            if None not in (mname, direction, weight, guard, tolerance, source):
                metrics.append(Metric(mname, direction, weight, guard, tolerance, source))
        if metrics_raw and len(metrics) == len(metrics_raw) and not any(m.weight > 0 for m in metrics):
            r.problem("metrics", "need at least one metric with weight > 0 to measure improvement")

    target_kind = r.choice("target.kind", TARGET_KINDS, "relative")
    improvement = r.positive("target.improvement", float, hint="e.g. 0.05 for 5 % better than the baseline")
    min_improvement = r.positive("target.min_improvement", float, 0.0, allow_zero=True)
    if improvement is not None and min_improvement is not None and min_improvement > improvement:
        r.problem("target.min_improvement", f"({min_improvement}) must not exceed target.improvement ({improvement})")
    if target_kind == "relative" and improvement is not None and improvement >= 1:
        r.problem("target.improvement", f"is relative (a fraction); {improvement} means {improvement:.0%}. "
                  "Use e.g. 0.05 for 5 %, or set target.kind = \"absolute\"")
    if target_kind == "absolute" and len([m for m in metrics if m.weight > 0]) > 1:
        r.problem("target.kind", "\"absolute\" needs exactly one weighted metric; use \"relative\" for a composite")

    pool = r.positive("reward.pool_sats", int, hint="the sats paid out for reaching the target")
    deadline = r.get("reward.deadline", dt.datetime, None)
    duration = r.positive("reward.duration_hours", float, None)
    if deadline is not None:
        if isinstance(deadline, dt.datetime) and deadline.tzinfo is None:
            r.problem("reward.deadline", "must carry a time zone, e.g. 2026-12-31T00:00:00Z")
            deadline = None
    if r.raw("reward.deadline") is not _MISSING and r.raw("reward.duration_hours") is not _MISSING:
        r.problem("reward.duration_hours", "conflicts with reward.deadline; give one of them")
    holdback = r.positive("reward.holdback_s", float, None)
    stake = r.positive("reward.stake_sats", int, 0, allow_zero=True)
    stake_keep = r.positive("reward.rejected_stake_keep_percent", float, 50.0, allow_zero=True)
    if stake_keep is not None and not 0 <= stake_keep <= 100:  # also nan
        r.problem("reward.rejected_stake_keep_percent", f"is {stake_keep:g}; use a percentage from 0 to 100")

    max_lines = r.positive("constraints.max_changed_lines", int, 500)
    patterns_raw = r.get("constraints.forbidden_patterns", list, [])
    patterns: list[str] = []
    for i, pat in enumerate(patterns_raw or []):
        if not isinstance(pat, str):
            r.problem(f"constraints.forbidden_patterns[{i}]", f"must be a string, got {pat!r}")
            continue
        try:
            re.compile(pat)
            patterns.append(pat)
        except re.error as exc:
            r.problem(f"constraints.forbidden_patterns[{i}]", f"is not a valid regex ({exc}): {pat!r}")
    test_cmd = None
    if r.raw("constraints.test_command") is not _MISSING:
        test_cmd = r.command("constraints.test_command", "run")

    cpus = r.positive("resources.cpus", float, 1.0)
    memory_mb = r.positive("resources.memory_mb", int, 1024)
    if memory_mb is not None and memory_mb < 32:
        r.problem("resources.memory_mb", f"is {memory_mb} MB; at least 32 MB is needed to start Python")
    # Everything a run writes (work dir, artifacts, /tmp) together; see docs/bounty-format.md.
    disk_mb = r.positive("resources.disk_mb", int, 512)
    if disk_mb is not None and not 16 <= disk_mb <= 1024 * 1024:
        r.problem("resources.disk_mb", f"is {disk_mb} MB; give 16 MB to 1048576 MB (1 TiB) for the run's files")
    gpu = r.get("resources.gpu", bool, False)
    exclusive = r.get("resources.exclusive", bool, None)
    time_limit = r.positive("resources.time_limit_s", float, 600.0)
    image = r.get("resources.image", str, None)

    repeats = r.positive("noise.repeats", int, 3)
    if repeats is not None and repeats > 50:
        r.problem("noise.repeats", f"is {repeats}; more than 50 repeats per evaluation is surely a mistake")
    k_sigma = r.positive("noise.k_sigma", float, 2.0, allow_zero=True)

    free_evals = r.positive("rationing.free_evaluations_per_day", int, 10)
    rationing_stake = r.positive("rationing.stake_sats", int, 0, allow_zero=True)

    canaries = r.get("canaries.file", str, None)
    if canaries is not None:
        _check_relative_path(r, root, "canaries.file", canaries, kind="file")

    honeypot_alpha = r.positive("antigaming.honeypot_alpha", float, 0.001)
    if honeypot_alpha is not None and honeypot_alpha >= 0.5:
        r.problem("antigaming.honeypot_alpha", f"is {honeypot_alpha}; a test level that high flags honest "
                  "submissions by chance (the default is 0.001)")
    honeypots = r.get("antigaming.honeypots", str, None)
    if honeypots is not None:
        for h in heldout:  # every rotated held-out set carries its own honeypots
            _check_relative_path(r, root, "antigaming.honeypots", f"{h}/labels/{honeypots}", kind="file")

    if r.problems:
        return r.problems
    return BountySpec(
        root=root, name=name, description=description, target_dir=target_dir, mutable=tuple(mutable),
        public_dir=public_dir, heldout_dirs=tuple(heldout), scorer_dir=scorer_dir,
        run=Phase(run_cmd, run_timeout, run_mode), score=Phase(score_cmd, score_timeout),
        metrics=tuple(metrics), target_kind=target_kind, target_improvement=improvement,
        min_improvement=min_improvement, pool_sats=pool, deadline=deadline, duration_hours=duration,
        holdback_s=holdback, stake_sats=stake, rejected_stake_keep_percent=stake_keep, max_changed_lines=max_lines,
        forbidden_patterns=tuple(patterns), test_command=test_cmd, cpus=cpus, memory_mb=memory_mb, disk_mb=disk_mb,
        gpu=gpu, time_limit_s=time_limit, image=image, repeats=repeats, k_sigma=k_sigma,
        canaries=canaries, raw=data, free_evaluations_per_day=free_evals, rationing_stake_sats=rationing_stake,
        honeypot_alpha=honeypot_alpha, honeypots=honeypots, exclusive=exclusive,
    )


def load_bounty(path: Path | str) -> BountySpec:
    """Parse and validate ``DIR/bounty.toml`` (or the file itself); raises BountyInvalid."""
    path = Path(path)
    file = path if path.name == SPEC_FILE or path.is_file() else path / SPEC_FILE
    root = file.parent.resolve()
    shown = str(file)
    if not file.is_file():
        raise BountyInvalid([Problem(shown, None, f"not found; a bounty folder needs a {SPEC_FILE} "
                                     "(see docs/bounty-format.md)")])
    text = file.read_text(encoding="utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise BountyInvalid([Problem(shown, line, f"TOML syntax error: {msg}" +
                                     (f" (column {m.group(2)})" if m else ""))]) from None
    result = _parse(data, KeyLines(text), root, shown)
    if isinstance(result, list):
        raise BountyInvalid(result)
    return result
