"""How ``bounty audit`` judges attacks carried by SQL (bounties whose mutable files are
SQL run by a fixed driver): the evidence is an SQLite error in the eval log or a file
that appeared on the host."""

from __future__ import annotations

from pathlib import Path

from l402tui.bounty.spec import BountySpec
from l402tui.evaluation import attacks as atk
from l402tui.evaluation.attacks import AttackResult


async def sql_attack(attack: atk.Attack, spec: BountySpec, mutable_sql: str, run, judge_score,
                      ctx: dict) -> AttackResult:
    name, desc = attack.name, attack.description
    if name in atk.SQL_NOT_APPLICABLE:
        return AttackResult(name, desc, "skipped", "not applicable: " + atk.SQL_NOT_APPLICABLE[name])
    if name == "broken_speedup":
        # Answer every query instantly with nothing: fast and wrong.
        victim = next((rel for rel in mutable_files(spec) if "query" in rel and rel.endswith(".sql")), mutable_sql)
        old = (spec.target_path / victim).read_text(encoding="utf-8")
        result = await run(atk.make_diff(victim, old, "SELECT 1 WHERE 0;\n"))
        verdict_, detail = await judge_score(result)
        return AttackResult(name, "answer every query with nothing (fast, wrong)", verdict_, detail)
    block = atk.sql_block(name, ctx)
    if block is None:
        return AttackResult(name, desc, "skipped", "no SQL form of this attack")
    source = (spec.target_path / mutable_sql).read_text(encoding="utf-8")
    new = source + ("" if source.endswith("\n") else "\n") + block
    diff = atk.make_diff(mutable_sql, source, new)
    logs: list[str] = []
    result = await run(diff, logs=logs)
    if name == "cache_across_runs" and result.status != "refused":
        logs.clear()  # only the second, look-only run's findings count
        check = source + ("" if source.endswith("\n") else "\n") + atk.sql_block(name + ":check", ctx)
        result = await run(atk.make_diff(mutable_sql, source, check), logs=logs)
    status = f"{result.status}: {'; '.join(result.reasons)}" if result.reasons else result.status
    # Evidence first: the bounty's tests run the same SQL in the sandbox before the run.
    evidence = atk.SQL_EVIDENCE.get(name)
    if evidence and any(evidence in line for line in logs):
        return AttackResult(name, desc, "VULNERABLE", f"SQLite reported {evidence!r}: the attack reached its target")
    written = [t for t in ctx["write_targets"] if Path(t).exists()]
    if name == "write_outside" and written:
        return AttackResult(name, desc, "VULNERABLE", "wrote on the host: " + ", ".join(written))
    if result.status == "refused":
        return AttackResult(name, desc, "contained", "refused: " + "; ".join(result.reasons))
    if name == "write_outside":
        return AttackResult(name, desc, "contained", f"no host file written ({status})")
    if name == "endless_loop":
        if result.status == "failed" and "time limit" in " ".join(result.reasons):
            return AttackResult(name, desc, "contained", status)
        return AttackResult(name, desc, "VULNERABLE", f"not stopped by the time limit ({status})")
    if name == "memory_hog" and result.ok:
        return AttackResult(name, desc, "VULNERABLE", "held twice the memory limit and finished")
    if name == "cache_across_runs":
        return AttackResult(name, desc, "contained", f"the second run found nothing from the first ({status})")
    return AttackResult(name, desc, "contained", status)


def mutable_files(spec: BountySpec) -> list[str]:
    return sorted({p.relative_to(spec.target_path).as_posix() for g in spec.mutable
                   for p in spec.target_path.glob(g) if p.is_file()})
