"""Canaries, the public/held-out gap and near-duplicate diffs raise flags."""

from __future__ import annotations

import io
import json
import struct
import tempfile
from pathlib import Path

import pytest

import tinybounty
from l402tui.evaluation.antigaming import (EMPTY_OUTPUTS_SHA256, HONEYPOT_CHANCE, HONEYPOT_HITS, HONEYPOT_ITEMS,
                                          binomial_tail, canary_flag, diff_similarity, honeypot_flag,
                                          near_duplicate_flag, outputs_identify_submission, overfit_flag,
                                          same_outputs_flag)
from tinybounty import FIX_DIFF

SAMPLES = Path(__file__).resolve().parents[2] / "sample_bounties"


def test_canary_match_on_any_repeat_flags():
    assert canary_flag([{"canary_matches": 0.0}, {"canary_matches": 0.0}]) is None
    flag = canary_flag([{"canary_matches": 0.0}, {"canary_matches": 1.0}])
    assert flag.kind == "canary"
    assert flag.reason == ("1 canary item(s) on the held-out set got their public answers: the code appears to "
                           "hard-code public-set answers")


def test_overfit_gap():
    assert overfit_flag(0.12, 0.10, tolerance=0.05) is None
    flag = overfit_flag(0.40, 0.02, tolerance=0.10)
    assert flag.kind == "overfit"
    assert "exceeds the held-out gain (2.00%) by 38.00%" in flag.reason


def test_near_duplicate_ignores_whitespace_comments_and_offsets():
    copied = (FIX_DIFF.replace("@@ -1,6 +1,6 @@", "@@ -3,6 +3,6 @@")
              .replace("+SKIP_NEGATIVE = False", "+SKIP_NEGATIVE   =   False\n+# my own idea!"))
    assert diff_similarity(FIX_DIFF, copied) == 1.0
    flag = near_duplicate_flag(copied, [("sub-1", FIX_DIFF)], threshold=0.9)
    assert flag.kind == "near_duplicate"
    assert flag.reason == "the diff is 100% similar to earlier submission sub-1 (threshold 90%)"


def test_different_diffs_are_not_duplicates():
    other = FIX_DIFF.replace("+SKIP_NEGATIVE = False", "+SKIP_NEGATIVE = False\n+CACHE = {}\n+LIMIT = 10")
    assert near_duplicate_flag(other, [("sub-1", FIX_DIFF)], threshold=0.9) is None
    assert near_duplicate_flag(FIX_DIFF, [], threshold=0.9) is None


# -- honeypots -------------------------------------------------------------------------

def test_binomial_tail_matches_the_exact_sum():
    from math import comb

    for n, k, p in [(10, 3, 0.2), (200, 19, 1 / 26), (8, 8, 1e-3), (50, 0, 0.5)]:
        exact = sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert binomial_tail(n, k, p) == pytest.approx(exact, rel=1e-9, abs=1e-300)
    assert binomial_tail(10, 11, 0.5) == 0.0
    assert binomial_tail(10, 1, 0.0) == 0.0


def _hp(k, n=200, chance=1 / 26):
    return {"val_bpb": 3.1, HONEYPOT_ITEMS: n, HONEYPOT_HITS: k, HONEYPOT_CHANCE: chance}


def test_honeypot_hits_at_chance_pass_and_above_chance_flag_with_evidence():
    assert honeypot_flag([_hp(8), _hp(11), _hp(6)], alpha=0.001) is None
    flag = honeypot_flag([_hp(8), _hp(200), _hp(7)], alpha=0.001)
    assert flag.kind == "knows_heldout"
    ev = flag.to_json()["evidence"]
    assert (ev["n"], ev["k"], ev["repeats"], ev["hits_per_repeat"]) == (200, 200, 3, [8, 200, 7])
    assert ev["p_value_combined"] == pytest.approx(3 * (1 / 26) ** 200, rel=1e-6)
    assert ev["chance"] == pytest.approx(1 / 26) and ev["alpha"] == 0.001
    assert flag.reason.startswith("200 of 200 honeypot items answered right where chance allows 7.7 ")


def test_honeypot_test_is_one_sided_bonferroni_and_needs_honeypot_metrics():
    # 18 hits of 200 at 1/26: p ≈ 0.0008 for one repeat (flag at 0.001), but not once
    # three repeats share the level (3 × 0.0008 > 0.001).
    one = binomial_tail(200, 18, 1 / 26)
    assert one < 0.001 < 3 * one
    assert honeypot_flag([_hp(18)], alpha=0.001).kind == "knows_heldout"
    assert honeypot_flag([_hp(18), _hp(5), _hp(5)], alpha=0.001) is None
    assert honeypot_flag([_hp(0)], alpha=0.001) is None  # fewer hits than chance is no sign of anything
    assert honeypot_flag([{"val_bpb": 3.0}], alpha=0.001) is None  # a set without honeypots
    assert honeypot_flag([], alpha=0.001) is None


def test_impossible_honeypot_figures_are_flagged_not_waved_through():
    assert honeypot_flag([_hp(201)], alpha=0.001).kind == "knows_heldout"
    assert honeypot_flag([_hp(3, chance=1.5)], alpha=0.001).kind == "knows_heldout"


def _charlm_scorer():
    import importlib.util

    path = SAMPLES / "charlm" / "scorer" / "score.py"
    module_spec = importlib.util.spec_from_file_location("charlm_score", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _charlm_metrics(predict) -> dict:
    """The real charlm scorer over its real held-out text, fed by ``predict(history)``."""
    scorer = _charlm_scorer()
    labels = SAMPLES / "charlm" / "heldout" / "a" / "labels"
    text = (labels / "val.txt").read_bytes()
    stream = bytearray(b"CLM1")
    for i in range(len(text)):
        stream += struct.pack("<256f", *predict(text[:i]))
    return scorer.score(io.BytesIO(bytes(stream)), io.BytesIO(), text, {},
                        json.loads((labels / "honeypots.json").read_text()))


def _bigram_model():
    """An honest model: byte bigrams of the training text (Genesis), add-one smoothed."""
    train = (SAMPLES / "charlm" / "target" / "data" / "train.txt").read_bytes()
    counts = [[1.0] * 256 for _ in range(256)]
    for a, b in zip(train, train[1:]):
        counts[a][b] += 1
    rows = [[c / sum(row) for c in row] for row in counts]
    return lambda history: rows[history[-1] if history else 10]


def test_the_charlm_scorer_flags_a_replay_of_the_heldout_text_and_not_an_honest_model():
    text = (SAMPLES / "charlm" / "heldout" / "a" / "labels" / "val.txt").read_bytes()
    honest = _charlm_metrics(_bigram_model())
    assert honest[HONEYPOT_ITEMS] == 200 and honest["val_bpb"] < 4.0
    assert honeypot_flag([honest], alpha=0.001) is None
    assert binomial_tail(200, int(honest[HONEYPOT_HITS]), 1 / 26) > 0.01

    def replay(history):
        probs = [0.01 / 255] * 256
        probs[text[len(history)]] = 0.99
        return probs

    leaked = _charlm_metrics(replay)
    assert leaked["val_bpb"] < 0.02 and leaked[HONEYPOT_HITS] == 200
    flag = honeypot_flag([leaked], alpha=0.001)
    assert flag.kind == "knows_heldout" and flag.evidence["p_value"] < 1e-200


# -- near duplicates by the meaning of the code ----------------------------------------

ADDED_CODE = '''\
diff --git a/logparse.py b/logparse.py
--- a/logparse.py
+++ b/logparse.py
@@ -10,2 +10,8 @@
 def analyze(lines):
-    return slow(lines)
+    counts = {}  # per host
+    for line in lines:
+        host = line.split(" ")[0]
+        counts[host] = counts.get(host, 0) + 1
+    label = f"hosts: {len(counts)}"
+    return {"hosts": counts, "label": label, 'share': 0.50}
'''


def test_a_quote_swapped_copy_is_flagged():
    swapped = ADDED_CODE.replace('"', "\x00").replace("'", '"').replace("\x00", "'")
    assert swapped != ADDED_CODE
    assert diff_similarity(ADDED_CODE, swapped) == 1.0
    assert near_duplicate_flag(swapped, [("sub-1", ADDED_CODE)], threshold=0.9).kind == "near_duplicate"
    quoted_fix = FIX_DIFF.replace('"""The mutable part', "'''The mutable part").replace('tokens."""', "tokens.'''")
    assert diff_similarity(FIX_DIFF, quoted_fix) == 1.0


def test_a_renamed_locals_copy_with_other_comments_and_spelling_is_flagged():
    renamed = '''\
diff --git a/logparse.py b/logparse.py
--- a/logparse.py
+++ b/logparse.py
@@ -10,2 +10,9 @@
 def analyze(lines):
-    return slow(lines)
+    # tally the requests of each host
+    tally = {}
+    for row in lines:
+        who = row.split(' ')[0]
+        tally[who] = tally.get(who, 0) + 1
+    text = f'hosts: {len(tally)}'
+    return {'hosts': tally, 'label': text, "share": .5}
'''
    assert diff_similarity(ADDED_CODE, renamed) == 1.0
    flag = near_duplicate_flag(renamed, [("sub-1", ADDED_CODE)], threshold=0.9)
    assert flag.evidence == {"earlier_submission": "sub-1", "similarity": 1.0, "threshold": 0.9}


def test_different_edits_of_the_same_lines_are_not_duplicates():
    # Renaming is only for names the diff introduces: the file's own names keep theirs.
    other = ADDED_CODE.replace("line.split(\" \")[0]", "line.partition(\" \")[2]").replace(
        "counts.get(host, 0) + 1", "counts.get(host, 0) + len(line)").replace("0.50", "0.25")
    assert diff_similarity(ADDED_CODE, other) < 0.9
    tuned = FIX_DIFF.replace("+SKIP_NEGATIVE = False", "+SKIP_NEGATIVE = 0")
    assert diff_similarity(FIX_DIFF, tuned) < 0.9
    assert near_duplicate_flag(other, [("sub-1", ADDED_CODE)], threshold=0.9) is None


def test_sql_copies_are_folded_by_sqlglot_and_other_indexes_are_not():
    def sql(rel, body):
        lines = body.splitlines()
        return (f"diff --git a/{rel} b/{rel}\n--- a/{rel}\n+++ b/{rel}\n@@ -1,1 +1,{len(lines)} @@\n"
                "-CREATE INDEX idx_orders_1 ON orders(status);\n" + "".join(f"+{x}\n" for x in lines))

    honest = sql("indexes.sql", "CREATE INDEX idx_customers_region ON customers(lower(region), id);\n"
                                "CREATE INDEX idx_orders_customer ON orders(customer_id, day, status, sku, qty);")
    copy = sql("indexes.sql", 'create index "mine" on Customers (LOWER(region),id) ; -- faster\n'
                              "create index other ON orders (customer_id,day,  status,sku,qty)")
    other = sql("indexes.sql", "CREATE INDEX idx_orders_day ON orders(day);\nCREATE INDEX idx_c ON customers(id);")
    assert diff_similarity(honest, copy) == 1.0
    assert diff_similarity(honest, other) < 0.9


def test_a_form_feed_cannot_hide_lines_from_the_comparison():
    # git ends lines at \n only; a \x0c inside an added line must not split or swallow anything.
    sneaky = ADDED_CODE.replace("+    counts = {}  # per host", "+    counts = {}  # per host\x0c@@ -0,0 +1,3 @@")
    assert diff_similarity(ADDED_CODE, sneaky) == 1.0


# -- identical outputs -----------------------------------------------------------------

def test_same_outputs_flags_identical_heldout_outputs_only():
    digest = "ab" * 32
    flag = same_outputs_flag(digest, [("sub-1", "cd" * 32), ("sub-2", digest)])
    assert flag.kind == "same_outputs" and flag.evidence["earlier_submission"] == "sub-2"
    assert same_outputs_flag(digest, [("sub-1", "cd" * 32)]) is None
    assert same_outputs_flag(None, [("sub-1", digest)]) is None
    # Interactive runs write no files: every one has the digest of nothing.
    assert same_outputs_flag(EMPTY_OUTPUTS_SHA256, [("sub-1", EMPTY_OUTPUTS_SHA256)]) is None


def test_outputs_identify_a_submission_only_where_a_weighted_metric_scores_files():
    from l402tui.bounty import load_bounty

    assert not outputs_identify_submission(load_bounty(SAMPLES / "logparse"))  # cpu_s: same reports for all
    assert not outputs_identify_submission(load_bounty(SAMPLES / "charlm"))  # over a pipe
    assert outputs_identify_submission(load_bounty(tinybounty.make_sums(Path(tempfile.mkdtemp()) / "sums")))
