"""Keep-or-reset decisions and the submit policy, on the bounty spec of the tiny bounty."""

import statistics

import pytest

from l402tui.agent.judge import judge, robust_spread
from l402tui.agent.public_eval import PublicScore
from l402tui.agent.remote import RemoteBounty
from l402tui.agent.session import should_submit
from l402tui.bounty import load_bounty


def score(values: list[float], **extra: list[float]) -> PublicScore:
    samples = {"error": values, **extra}
    return PublicScore({k: statistics.median(v) for k, v in samples.items()},
                       {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in samples.items()},
                       len(values), 10.0, samples)


@pytest.fixture
def spec(bounty_dir):
    return load_bounty(bounty_dir)


def test_one_slow_repeat_does_not_hide_a_real_gain(spec):
    best = score([1.00, 1.01, 0.99])
    candidate = score([0.90, 0.91, 1.80])  # one repeat hit a busy machine
    assert robust_spread(candidate)["error"] == pytest.approx(1.4826 * 0.01)
    verdict = judge(spec, candidate, best, k_sigma=2.0)
    assert verdict.better and verdict.improvement == pytest.approx(0.09)


def test_a_gain_inside_the_noise_is_not_kept(spec):
    best = score([1.00, 1.10, 0.90])
    verdict = judge(spec, score([0.97, 1.07, 0.87]), best, k_sigma=2.0)
    assert not verdict.better and "within the noise margin" in verdict.reason


def test_worse_and_equal_are_not_kept(spec):
    best = score([1.0])
    assert judge(spec, score([1.0]), best, 2.0).reason == "+0.000%: not better"
    assert not judge(spec, score([1.2]), best, 2.0).better


def test_a_guard_regressing_against_the_baseline_blocks_a_keep(tmp_path):
    from agent_fixtures import make_bounty

    root = make_bounty(tmp_path / "guarded")
    toml = (root / "bounty.toml").read_text()
    toml += '\n[[metrics]]\nname = "inputs_seen"\ndirection = "maximize"\nweight = 0.0\nguard = true\n'
    (root / "bounty.toml").write_text(toml)
    spec = load_bounty(root)
    baseline = score([2.0], inputs_seen=[1.0])
    candidate = score([1.0], inputs_seen=[0.0])
    verdict = judge(spec, candidate, baseline, 2.0, baseline)
    assert not verdict.better and "guard inputs_seen regressed by 100.00%" in verdict.reason


def bounty(best: float | None = None, status: str = "OPEN", pool_left: int = 1000) -> RemoteBounty:
    baseline = {"error": 2.0}
    return RemoteBounty("b1", "guess", status, "error", baseline, {"error": best} if best else baseline,
                        0.01, pool_left, "")


def test_submit_only_when_beating_the_current_best_by_the_minimum(spec):
    ours, base = score([1.0]), score([2.0])  # a 50 % public gain
    assert should_submit(spec, bounty(), ours, base)[0]
    assert should_submit(spec, bounty(best=1.2), ours, base)[0]  # theirs: 40 %
    ok, why = should_submit(spec, bounty(best=1.0), ours, base)  # theirs: 50 %
    assert not ok and "does not beat the current best's 50.00%" in why
    assert should_submit(spec, bounty(status="CLOSED"), ours, base) == (False, "the bounty is CLOSED, not OPEN")
    assert should_submit(spec, bounty(pool_left=0), ours, base) == (False, "the pool is spent")
