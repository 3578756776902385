"""The two-phase evaluation end to end on tiny real bounties, in every runner."""

from __future__ import annotations

import textwrap

import pytest

from l402tui.bounty import load_bounty
from l402tui.evaluation.harness import UNSANDBOXED_REFUSAL, evaluate
from l402tui.evaluation.sandbox import LocalSandbox
from tinybounty import ECHO_FIX, FIX_DIFF, make_sums


async def test_baseline_and_honest_fix_on_heldout(any_runner, sums):
    lines: list[str] = []
    base = await evaluate(sums, None, sandbox=any_runner, log=lines.append)
    fixed = await evaluate(sums, FIX_DIFF, sandbox=any_runner, allow_unsandboxed=True)
    assert base.ok and fixed.ok, (base.reasons, fixed.reasons)
    # held-out: h1 9, h2 6, h3 1, h4 4, c1 9; skipping negatives gets h1 and h4 right only
    assert base.medians["accuracy"] == pytest.approx(2 / 5)
    assert fixed.medians["accuracy"] == 1.0
    assert base.medians["canary_matches"] == 0
    assert {"wall_s", "cpu_s", "peak_rss_mb"} <= set(fixed.medians)
    assert any("solved 5 items" in line for line in lines)  # the untrusted output reached the sponsor's log


async def test_public_set_is_used_when_asked(sums):
    result = await evaluate(sums, None, eval_set="public", sandbox=LocalSandbox())
    # public: p1 6, p2 8, p3 30, c1 5; without negatives p1 and p3 are right
    assert result.medians["accuracy"] == 0.5


async def test_repeats_give_medians_and_spreads(sums):
    result = await evaluate(sums, None, sandbox=LocalSandbox(), repeats=3)
    assert [r.repeat for r in result.runs] == [0, 1, 2]
    assert result.spreads["accuracy"] == 0.0
    assert result.spreads["wall_s"] >= 0.0


async def test_interactive_predictor_never_gets_inputs(any_runner, echo):
    base = await evaluate(echo, None, sandbox=any_runner)
    fixed = await evaluate(echo, ECHO_FIX, sandbox=any_runner, allow_unsandboxed=True)
    assert base.ok and fixed.ok, (base.reasons, fixed.reasons)
    assert base.medians["accuracy"] == pytest.approx(0.1)
    assert fixed.medians["accuracy"] == pytest.approx(0.9)
    assert base.runs[0].peak_rss_mb > 0  # measured for the predictor


async def test_interactive_inputs_dir_is_empty(isolated, echo):
    peek = textwrap.dedent("""\
        diff --git a/guess.py b/guess.py
        --- a/guess.py
        +++ b/guess.py
        @@ -1,4 +1,6 @@
        +import os, sys
        +print("inputs:", os.listdir(os.environ["L402_INPUTS"]), file=sys.stderr)
         LOOKBACK = 1
         
         
         def predict(history):
        """)
    lines: list[str] = []
    result = await evaluate(echo, peek, sandbox=isolated, log=lines.append)
    assert result.ok
    assert "[repeat 1] inputs: []" in lines


async def test_local_runner_refuses_untrusted_code_unless_allowed(sums):
    result = await evaluate(sums, FIX_DIFF, sandbox=LocalSandbox())
    assert (result.status, result.reasons, result.runs) == ("refused", [UNSANDBOXED_REFUSAL], [])


async def test_refused_diff_runs_nothing(sums):
    result = await evaluate(sums, FIX_DIFF.replace("sumlib.py", "solve.py"), sandbox=LocalSandbox(),
                            allow_unsandboxed=True)
    assert result.status == "refused"
    assert result.reasons == ["solve.py is not a mutable file; this bounty allows changes to: sumlib.py"]
    assert result.runs == []


async def test_required_tests_must_pass(tmp_path):
    spec = load_bounty(make_sums(tmp_path / "b", test_command='["python3", "test_sumlib.py"]'))
    breaks_tests = FIX_DIFF.replace("+SKIP_NEGATIVE = False\n", "+SKIP_NEGATIVE = False\n+raise RuntimeError('broken')\n").replace(
        "@@ -1,6 +1,6 @@", "@@ -1,6 +1,7 @@")
    ok = await evaluate(spec, FIX_DIFF, sandbox=LocalSandbox(), allow_unsandboxed=True)
    broken = await evaluate(spec, breaks_tests, sandbox=LocalSandbox(), allow_unsandboxed=True)
    assert ok.ok
    assert broken.status == "refused"
    assert broken.reasons == ["the bounty's required tests failed: the run exited with code 1"]


async def test_crash_and_timeout_are_failures_with_safe_reasons(tmp_path):
    spec = load_bounty(make_sums(tmp_path / "b", timeout_s=1))
    crash = FIX_DIFF.replace("+SKIP_NEGATIVE = False\n", "+SKIP_NEGATIVE = False\n+raise SystemExit('heldout!')\n"
                             ).replace("@@ -1,6 +1,6 @@", "@@ -1,6 +1,7 @@")
    hang = FIX_DIFF.replace("+SKIP_NEGATIVE = False\n", "+SKIP_NEGATIVE = False\n+while True: pass\n").replace(
        "@@ -1,6 +1,6 @@", "@@ -1,6 +1,7 @@")
    crashed = await evaluate(spec, crash, sandbox=LocalSandbox(), allow_unsandboxed=True)
    hung = await evaluate(spec, hang, sandbox=LocalSandbox(), allow_unsandboxed=True)
    assert crashed.status == "failed"
    assert crashed.reasons == ["repeat 1 of 1: the run exited with code 1"]
    assert "heldout!" not in str(crashed.agent_view())  # the agent never sees what its code printed
    assert hung.status == "failed"
    assert hung.reasons == ["repeat 1 of 1: the run exceeded its time limit (1 s) and was killed"]


async def test_scorer_without_metrics_fails_clearly(tmp_path):
    root = make_sums(tmp_path / "b")
    (root / "scorer" / "score.py").write_text("print('no json here')\n")
    result = await evaluate(load_bounty(root), None, sandbox=LocalSandbox())
    assert result.reasons == ["repeat 1 of 1: the scorer reported no metrics JSON object"]


async def test_harness_metrics_come_from_outside_not_from_the_scorer(tmp_path):
    root = make_sums(tmp_path / "b", metrics='[[metrics]]\nname = "accuracy"\ndirection = "maximize"\n\n'
                     '[[metrics]]\nname = "wall_s"\ndirection = "minimize"\nsource = "harness"\nweight = 0.5\n')
    score = root / "scorer" / "score.py"
    score.write_text(score.read_text().replace('"canary_matches": matches}', '"canary_matches": matches, '
                                               '"wall_s": 0.0}'))
    result = await evaluate(load_bounty(root), None, sandbox=LocalSandbox())
    assert result.ok
    assert result.medians["wall_s"] > 0
    assert result.medians["wall_s"] == result.runs[0].wall_s


async def test_logs_are_kept_in_log_dir_and_capped(tmp_path):
    chatty = FIX_DIFF.replace("+SKIP_NEGATIVE = False\n", "+SKIP_NEGATIVE = False\n+print('x' * 5000)\n").replace(
        "@@ -1,6 +1,6 @@", "@@ -1,6 +1,7 @@")
    spec = load_bounty(make_sums(tmp_path / "b"))
    result = await evaluate(spec, chatty, sandbox=LocalSandbox(), allow_unsandboxed=True, log_dir=tmp_path / "logs",
                            log_cap_bytes=1000)
    text = (tmp_path / "logs" / "repeat-0.log").read_text()
    assert result.ok
    assert "[harness] log truncated at 1000 bytes" in text
    assert result.runs[0].log_path == str(tmp_path / "logs" / "repeat-0.log")


async def test_outputs_that_are_symlinks_are_never_scored(isolated, sums):
    # The trusted scorer runs on the host: a link to the held-out labels would score 100 %.
    labels = sums.heldout_path(0) / "labels" / "answers.json"
    link = FIX_DIFF.replace("+SKIP_NEGATIVE = False\n", "+SKIP_NEGATIVE = False\n+import atexit, os\n"
                            f"+atexit.register(lambda: (os.remove(os.environ['L402_ARTIFACTS'] + '/answers.json'), "
                            f"os.symlink({str(labels)!r}, os.environ['L402_ARTIFACTS'] + '/answers.json')))\n"
                            ).replace("@@ -1,6 +1,6 @@", "@@ -1,6 +1,8 @@")
    result = await evaluate(sums, link, sandbox=isolated)
    assert result.status == "failed"
    assert result.code == "output_invalid"
    assert result.agent_view() == {"status": "failed", "code": "output_invalid", "repeats": 1,
                                   "sandbox": isolated.kind}
    # The operator's detail names the file, escaped (the run chose the name).
    assert result.reasons == ["repeat 1 of 1: the run left a symlink in its outputs ('answers.json'); "
                              "outputs must be plain files"]


def _prepended(spec, lines: str) -> str:
    import difflib

    old = (spec.target_path / "sumlib.py").read_text()
    body = "".join(difflib.unified_diff(old.splitlines(keepends=True), (lines + old).splitlines(keepends=True),
                                        "a/sumlib.py", "b/sumlib.py"))
    return "diff --git a/sumlib.py b/sumlib.py\n" + body


async def test_parallel_repeats_overlap_and_keep_their_order(sums):
    stamp = ("import sys, time\nprint('start', time.time(), file=sys.stderr, flush=True)\ntime.sleep(0.5)\n"
             "print('end', time.time(), file=sys.stderr, flush=True)\n")
    lines: list[str] = []
    result = await evaluate(sums, _prepended(sums, stamp), sandbox=LocalSandbox(), repeats=4, parallel=2,
                            allow_unsandboxed=True, log=lines.append)
    assert result.ok, result.reasons
    assert [r.repeat for r in result.runs] == [0, 1, 2, 3]
    spans = {}
    for line in lines:
        if line.startswith("[repeat ") and (" start " in line or " end " in line):
            tag, word, when = line.split("] ", 1)[0], *line.split("] ", 1)[1].split()[:2]
            spans.setdefault(tag, {})[word] = float(when)
    assert len(spans) == 4
    ordered = sorted(spans.values(), key=lambda s: s["start"])
    assert ordered[1]["start"] < ordered[0]["end"]  # two ran at once
    assert result.medians["accuracy"] == pytest.approx(2 / 5)


async def test_parallel_repeats_stop_at_the_first_failure(sums):
    result = await evaluate(sums, _prepended(sums, "raise SystemExit(3)\n"), sandbox=LocalSandbox(), repeats=5,
                            parallel=2, allow_unsandboxed=True)
    assert result.status == "failed" and len(result.runs) == 1
    assert result.reasons[0].startswith("repeat 1 of 5: ")


async def test_a_non_finite_metric_is_output_invalid(tmp_path):
    # A scorer that computes an error from the run's numbers returns NaN when the run writes
    # NaN; NaN passes every comparison the verdict makes.  The harness refuses it at the source.
    root = make_sums(tmp_path / "b", metrics='[[metrics]]\nname = "error"\ndirection = "minimize"\n')
    (root / "scorer" / "score.py").write_text(textwrap.dedent('''\
        import json, os, sys
        truth = json.load(open(os.path.join(sys.argv[2], "answers.json")))
        got = json.load(open(os.path.join(sys.argv[1], "answers.json")))
        print(json.dumps({"error": sum(abs(got[k] - v) for k, v in truth.items()) / len(truth),
                          "info": float("inf")}))
    '''))
    nan = FIX_DIFF.replace("+SKIP_NEGATIVE = False\n", "+SKIP_NEGATIVE = False\n+sum = lambda v: float('nan')\n"
                           ).replace("@@ -1,6 +1,6 @@", "@@ -1,6 +1,7 @@")
    spec = load_bounty(root)
    honest = await evaluate(spec, FIX_DIFF, sandbox=LocalSandbox(), allow_unsandboxed=True)
    assert honest.ok and honest.medians["error"] == 0.0
    assert "info" not in honest.medians  # a non-finite figure no check reads is dropped
    result = await evaluate(spec, nan, sandbox=LocalSandbox(), allow_unsandboxed=True)
    assert result.status == "failed" and result.code == "output_invalid"
    assert result.reasons == ["repeat 1 of 1: the scorer reported a non-finite value for error"]
