"""``bounty audit``: run the standard gaming attacks against a bounty's own evaluation.

Each attack of :mod:`l402tui.evaluation.attacks` is submitted as a real diff and
evaluated by the real harness in the chosen sandbox, on the held-out set; the
outcome is judged from the host side (files that appeared, connections that
arrived, what the agent would be shown, the verdict and flags it would get):

- ``contained``: refused, killed, failed or rejected, and no sign it achieved anything;
- ``flagged``: it got through the evaluation but anti-gaming caught it;
- ``VULNERABLE``: it achieved its aim (an escape, a leak, or an accepted score).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from l402tui.bounty.spec import BountySpec
from l402tui.evaluation import attack_memorise as memorise
from l402tui.evaluation import attacks as atk
from l402tui.evaluation.attacks import AttackResult
from l402tui.evaluation.antigaming import canary_flag, honeypot_flag
from l402tui.evaluation.audit_sql import mutable_files, sql_attack
from l402tui.evaluation.harness import EvaluationResult, evaluate, summarize
from l402tui.evaluation.sandbox import Limits, Sandbox
from l402tui.evaluation.scoring import verdict

VERDICTS = ("contained", "flagged", "VULNERABLE", "skipped")


@dataclass
class AuditReport:
    bounty: str
    sandbox: str
    results: list[AttackResult] = field(default_factory=list)
    honest: AttackResult | None = None

    @property
    def vulnerable(self) -> list[AttackResult]:
        rows = [r for r in self.results if r.verdict == "VULNERABLE"]
        if self.honest is not None and self.honest.verdict == "VULNERABLE":
            rows.append(self.honest)
        return rows

    def table(self) -> str:
        rows = [(r.name, r.verdict, r.detail) for r in self.results]
        if self.honest is not None:
            rows.append((self.honest.name, self.honest.verdict, self.honest.detail))
        width = max(len(r[0]) for r in rows)
        lines = [f"audit of {self.bounty} in the {self.sandbox} sandbox", "",
                 f"{'attack':<{width}}  {'result':<10}  detail", f"{'-' * width}  {'-' * 10}  {'-' * 40}"]
        lines += [f"{name:<{width}}  {v:<10}  {detail}" for name, v, detail in rows]
        bad = len(self.vulnerable)
        lines += ["", f"{bad} attack(s) succeeded" if bad else "every attack was contained or flagged"]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"bounty": self.bounty, "sandbox": self.sandbox,
                "results": [r.__dict__ for r in self.results],
                "honest": self.honest.__dict__ if self.honest else None}


class _Listener:
    """A TCP listener on every host address: any connection from the sandbox is an escape."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            self.connections.append(addr[0])
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _host_addresses() -> list[str]:
    addresses = ["127.0.0.1", "172.17.0.1"]
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            addresses += [a.address for a in addrs if a.family == socket.AF_INET]
    except Exception:  # psutil is a nicety here; loopback and the docker bridge are the main targets
        pass
    return list(dict.fromkeys(addresses))


def _files_under(path: Path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


async def audit_bounty(spec: BountySpec, *, sandbox: Sandbox, time_limit_s: float | None = None,
                       baseline_repeats: int | None = None, honest_diff: str | None = None,
                       allow_unsandboxed: bool = False, only: set[str] | None = None,
                       progress: Callable[[str], None] | None = None, concurrency: int = 2,
                       extra_env: dict[str, str] | None = None, ignore_patterns: bool = False,
                       honest_repeats: int | None = None) -> AuditReport:
    """Try every attack (or those in ``only``) and judge each; see the module doc.

    ``ignore_patterns`` drops the bounty's ``forbidden_patterns`` for the audit, to see
    what the sandbox alone holds (patterns are a speed bump; the sandbox is the wall).
    """
    if ignore_patterns:
        spec = dataclasses.replace(spec, forbidden_patterns=())
    report = AuditReport(spec.name + (" (forbidden_patterns ignored)" if ignore_patterns else ""), sandbox.kind)
    say = progress or (lambda _msg: None)
    limit = min(spec.run.timeout_s, spec.time_limit_s, time_limit_s or float("inf"))
    limits = Limits(memory_mb=spec.memory_mb, cpus=spec.cpus, time_limit_s=limit, gpu=spec.gpu)
    token = secrets.token_hex(6)
    scratch = Path(tempfile.mkdtemp(prefix="l402tui-audit-"))
    escape_dir = scratch / "host-escape"
    escape_dir.mkdir()
    escape_dir.chmod(0o777)  # so only the sandbox, never file permissions, keeps writes out
    baseline: dict | None = None
    mutable_py = atk.first_python_mutable(spec.target_path, spec.mutable)
    mutable_sql = atk.first_mutable_with_suffix(spec.target_path, spec.mutable, ".sql")
    batch = spec.run.mode == "batch"

    async def run(diff: str, repeats: int = 1, logs: list[str] | None = None, keep: Path | None = None,
                  eval_set: str = "heldout") -> EvaluationResult:
        return await evaluate(spec, diff, eval_set=eval_set, sandbox=sandbox, repeats=repeats,
                              log=logs.append if logs is not None else None, limits=limits,
                              allow_unsandboxed=allow_unsandboxed, keep_artifacts=keep, extra_env=extra_env)

    baseline_lock = asyncio.Lock()

    async def baseline_medians() -> dict:
        async with baseline_lock:
            return await _measure() if baseline is None else baseline

    async def _measure() -> dict:
        nonlocal baseline
        if baseline is None:
            say("measuring the baseline on the held-out set")
            result = await evaluate(spec, None, sandbox=sandbox, repeats=baseline_repeats or spec.repeats,
                                    limits=limits, extra_env=extra_env)
            baseline = {"ok": result.ok, "medians": result.medians, "spreads": result.spreads,
                        "reasons": result.reasons}
        return baseline

    async def judge_score(result: EvaluationResult) -> tuple[str, str]:
        """contained / flagged / VULNERABLE for an attack that finished its evaluation."""
        if not result.ok:
            return "contained", f"{result.status}: {'; '.join(result.reasons)}"
        # The judge's checks: honeypots (knows the held-out answers), then canaries.
        flag = honeypot_flag([r.metrics for r in result.runs], spec.honeypot_alpha) \
            or canary_flag(r.metrics for r in result.runs)
        base = await baseline_medians()
        if not base["ok"]:
            return "contained", "evaluation finished but the baseline failed, so nothing can be accepted"
        v = verdict(spec, result.medians, baseline_medians=base["medians"], baseline_spreads=base["spreads"])
        if flag is not None:
            return "flagged", flag.reason + ("" if not v.accepted else " (its score alone would have been accepted)")
        if v.accepted:
            return "VULNERABLE", f"accepted with improvement {v.improvement:.2%}"
        return "contained", "rejected: " + "; ".join(v.reasons)

    public_artifacts: dict[str, str] = {}
    if batch and mutable_py:
        keep = scratch / "public-artifacts"
        say("running the baseline on the public set (the answers an attacker would hard-code)")
        public = await evaluate(spec, None, eval_set="public", sandbox=sandbox, repeats=1, limits=limits,
                                keep_artifacts=keep, extra_env=extra_env)
        if public.ok:
            labels = spec.public_path / "labels"
            for path in _files_under(keep):
                rel = str(Path(path).relative_to(keep))
                # The true public answers where the labels share the outputs' file name
                # and format; otherwise what the shipped code itself answers.
                source = labels / rel if (labels / rel).is_file() else Path(path)
                data = source.read_bytes()
                if len(data) < 2_000_000:
                    public_artifacts[rel] = data.decode("utf-8", "replace")

    heldout = spec.heldout_path(0)
    listener = _Listener()
    ctx = {
        "token": token, "port": listener.port, "hosts": _host_addresses(), "memory_mb": spec.memory_mb,
        "public_artifacts": public_artifacts,
        "secret_files": (_files_under(heldout / "labels") + _files_under(spec.scorer_path))[:40],
        "label_files": _files_under(heldout / "labels")[:20],
        "write_targets": [str(escape_dir / f"escape-{token}"), str(spec.scorer_path / f"escape-{token}"),
                          str(heldout / "labels" / f"escape-{token}"), f"/tmp/l402audit-escape-{token}"],
    }
    source = (spec.target_path / mutable_py).read_text(encoding="utf-8") if mutable_py else ""

    async def one(attack: atk.Attack) -> AttackResult:
        async with slots:
            say(f"attack {attack.name}: {attack.description}")
            if attack.name == memorise.NAME:
                result = await _memorise(spec, run, judge_score, mutable_py, mutable_sql, source, public_artifacts)
            elif attack.kind == "diff":
                result = await _diff_attack(spec, attack, run)
            elif not mutable_py and mutable_sql:
                result = await sql_attack(attack, spec, mutable_sql, run, judge_score, ctx)
            elif not mutable_py:
                result = AttackResult(attack.name, attack.description, "skipped",
                                      "no mutable .py or .sql file to carry code")
            elif attack.name == "symlink_labels" and not batch:
                result = AttackResult(attack.name, attack.description, "skipped",
                                      "interactive bounties are scored over a pipe, not from output files")
            elif attack.name in ("hardcode_canaries", "broken_speedup") and not (batch and public_artifacts):
                why = ("interactive bounties give the predictor no answer file to fill" if not batch
                       else "the baseline produced no public outputs to copy")
                if attack.name == "broken_speedup":
                    diff = atk.insertion_diff(mutable_py, source, atk.PRELUDE + "_l402_done()\n")
                    verdict_, detail = await judge_score(await run(diff))
                    result = AttackResult(attack.name, "exit at once without doing the work", verdict_, detail)
                else:
                    result = AttackResult(attack.name, attack.description, "skipped", why)
            else:
                diff = atk.insertion_diff(mutable_py, source, atk.code_block(attack.name, ctx))
                result = await _code_attack(attack, diff, run, judge_score, ctx, listener, spec)
            say(f"  {attack.name} -> {result.verdict}: {result.detail}")
            return result

    # Attacks are independent (each checks only its own traces), so they share the cores.
    slots = asyncio.Semaphore(max(1, concurrency))
    try:
        chosen = [a for a in (*atk.ATTACKS, memorise.ATTACK) if not only or a.name in only]
        report.results = list(await asyncio.gather(*(one(a) for a in chosen)))
        if honest_diff is not None:
            say("honest improvement (baseline and candidate measured back to back, no attack running)")
            # The bounty's own repeats (or more): one noisy run must not decide that nobody can win.
            # ...and the bounty's own time limit: the audit's cap only hurries the attacks.
            full = Limits(memory_mb=spec.memory_mb, cpus=spec.cpus,
                          time_limit_s=min(spec.run.timeout_s, spec.time_limit_s), gpu=spec.gpu)
            report.honest = await _honest(spec, honest_diff, sandbox, full, honest_repeats or spec.repeats,
                                          extra_env)
    finally:
        listener.close()
        for target in ctx["write_targets"]:
            Path(target).unlink(missing_ok=True)
        for place in (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path.home()):
            (place / f".l402cache-{token}").unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return report


async def _memorise(spec: BountySpec, run, judge_score, mutable_py: str | None, mutable_sql: str | None,
                    source: str, public_artifacts: dict[str, str]) -> AttackResult:
    name, desc = memorise.NAME, memorise.DESCRIPTION
    leak = memorise.leaked_labels(spec)
    if mutable_py and spec.run.mode == "batch":
        outputs = memorise.batch_outputs(leak, list(public_artifacts), public_artifacts)
        if not outputs:
            return AttackResult(name, desc, "skipped", "no output of the public run has a held-out label to replay")
        diff = atk.insertion_diff(mutable_py, source, memorise.batch_block(outputs))
    elif mutable_py:
        diff = memorise.append_diff(mutable_py, source, memorise.interactive_block(leak))
    elif mutable_sql:
        victims = [p for p in mutable_files(spec) if p.endswith(".sql") and "query" in p] or [mutable_sql]
        old = (spec.target_path / victims[0]).read_text(encoding="utf-8")
        query = memorise.sql_query(spec, leak, old)
        if query is None:
            return AttackResult(name, desc, "skipped", "no workload of parameterised queries to answer from a leak")
        diff = atk.make_diff(victims[0], old, query)
    else:
        return AttackResult(name, desc, "skipped", "no mutable .py or .sql file to carry the replay")
    verdict_, detail = await judge_score(await run(diff))
    if verdict_ == "VULNERABLE" and spec.honeypots is None:
        detail += ("; the bounty declares no honeypots ([antigaming] honeypots), so a leaked held-out set "
                   "would be paid")
    return AttackResult(name, desc, verdict_, detail)


async def _diff_attack(spec: BountySpec, attack: atk.Attack, run) -> AttackResult:
    if attack.name == "edit_scorer":
        scorer_files = sorted(p for p in spec.scorer_path.rglob("*") if p.is_file() and p.suffix == ".py") or \
            sorted(p for p in spec.scorer_path.rglob("*") if p.is_file())
        victim = scorer_files[0] if scorer_files else spec.scorer_path / "score.py"
        rel = Path("..") / spec.scorer_dir / victim.relative_to(spec.scorer_path)
        old = victim.read_text(encoding="utf-8", errors="replace") if victim.exists() else ""
        diff = atk.make_diff(rel.as_posix(), old, 'print(\'{"cpu_s": 0, "accuracy": 1}\')\n')
    else:
        rel_name = atk.first_fixed_file(spec.target_path, {p.relative_to(spec.target_path).as_posix()
                                                           for g in spec.mutable for p in spec.target_path.glob(g)})
        path = spec.target_path / rel_name
        old = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        diff = atk.make_diff(rel_name, old, old + "# tests pass whatever happens\n")
    result = await run(diff)
    if result.status == "refused":
        return AttackResult(attack.name, attack.description, "contained", "refused: " + "; ".join(result.reasons))
    return AttackResult(attack.name, attack.description, "VULNERABLE",
                        f"the diff was not refused (evaluation {result.status})")


async def _code_attack(attack: atk.Attack, diff: str, run, judge_score, ctx: dict, listener: _Listener,
                       spec: BountySpec) -> AttackResult:
    logs: list[str] = []
    name, desc = attack.name, attack.description
    if name == "cache_across_runs":
        first = await run(diff, logs=logs)
        second = await run(diff, logs=logs)
        hits = [line.split("SUCCESS ", 1)[1] for line in logs if f"{atk.MARK} {name} SUCCESS" in line]
        if hits:
            return AttackResult(name, desc, "VULNERABLE", "a later run found: " + ", ".join(hits))
        if first.status == "refused":
            return AttackResult(name, desc, "contained", "refused: " + "; ".join(first.reasons))
        return AttackResult(name, desc, "contained", f"two runs, nothing survived between them ({second.status})")
    result = await run(diff, logs=logs)
    successes = [line.split("SUCCESS ", 1)[1] for line in logs if f"{atk.MARK} {name} SUCCESS" in line]
    status = f"{result.status}: {'; '.join(result.reasons)}" if result.reasons else result.status
    written = [t for t in ctx["write_targets"] if Path(t).exists()]
    if result.status == "refused" and not successes and not (name == "write_outside" and written) \
            and not (name == "network" and listener.connections):
        return AttackResult(name, desc, "contained", "refused: " + "; ".join(result.reasons))
    if name == "write_outside":
        if written:
            return AttackResult(name, desc, "VULNERABLE", "wrote on the host: " + ", ".join(written))
        return AttackResult(name, desc, "contained", f"no host file written ({status})")
    if name == "network":
        if listener.connections or successes:
            seen = list(dict.fromkeys(listener.connections + successes))
            return AttackResult(name, desc, "VULNERABLE", "connected: " + ", ".join(seen))
        return AttackResult(name, desc, "contained", f"no connection reached the host ({status})")
    if name == "leak_to_logs":
        shown = json.dumps(result.agent_view())
        in_log = any(ctx["token"] in line for line in logs)
        if ctx["token"] in shown:
            return AttackResult(name, desc, "VULNERABLE", "held-out data reached the agent's view")
        return AttackResult(name, desc, "contained", "printed data stayed in the sponsor's eval log"
                            + ("" if in_log else " (the log did not capture it either)") + f" ({status})")
    if name == "endless_loop":
        if result.status == "failed" and "time limit" in " ".join(result.reasons):
            return AttackResult(name, desc, "contained", status)
        return AttackResult(name, desc, "VULNERABLE", f"not stopped by the time limit ({status})")
    if name in ("read_labels", "fork_bomb", "memory_hog"):
        if successes:
            return AttackResult(name, desc, "VULNERABLE", "; ".join(successes[:3]))
        notes = [line.split(f"{atk.MARK} ", 1)[1] for line in logs if f"{atk.MARK} {name}" in line]
        if name == "read_labels":
            notes = ["no label, scorer file or other process was readable"]
        return AttackResult(name, desc, "contained", "; ".join([*notes[:1], status]))
    verdict_, detail = await judge_score(result)  # hardcode_canaries, broken_speedup, symlink_labels
    return AttackResult(name, desc, verdict_, detail)


async def _honest(spec: BountySpec, diff: str, sandbox: Sandbox, limits: Limits, repeats: int,
                  extra_env: dict[str, str] | None) -> AttackResult:
    """A real improvement must still be accepted: the audit's guard against a bounty so
    locked down that nobody can win it.  Baseline and candidate repeats alternate, so
    a change in the host's load hits both alike."""
    name, desc = "honest_improvement", "a real improvement must be accepted"
    base_runs, cand_runs = [], []
    for _ in range(repeats):
        base = await evaluate(spec, None, sandbox=sandbox, repeats=1, limits=limits, extra_env=extra_env)
        if not base.ok:
            return AttackResult(name, desc, "VULNERABLE", "the baseline itself failed: " + "; ".join(base.reasons))
        cand = await evaluate(spec, diff, sandbox=sandbox, repeats=1, limits=limits, extra_env=extra_env,
                              allow_unsandboxed=True)
        if not cand.ok:
            return AttackResult(name, desc, "VULNERABLE", f"the honest diff {cand.status}: " + "; ".join(cand.reasons))
        base_runs += base.runs
        cand_runs += cand.runs
    base_medians, base_spreads = summarize(base_runs)
    cand_medians, _ = summarize(cand_runs)
    v = verdict(spec, cand_medians, baseline_medians=base_medians, baseline_spreads=base_spreads)
    flag = honeypot_flag([r.metrics for r in cand_runs], spec.honeypot_alpha) or \
        canary_flag(r.metrics for r in cand_runs)
    if v.accepted and flag is None:
        return AttackResult(name, desc, "accepted", f"accepted with improvement {v.improvement:.2%}")
    why = "; ".join(v.reasons) or (flag.reason if flag else "")
    return AttackResult(name, desc, "VULNERABLE", f"an honest improvement was not accepted: {why}")
