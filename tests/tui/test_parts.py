"""Pieces of the TUI that need no app: bars, formats, themes, keymap, log reading, CSV."""

from __future__ import annotations

import csv

from pathlib import Path

import pytest

from l402tui.coordinator.operator_reads import read_log_segments
from l402tui.tui import format as fmt
from l402tui.tui.actions import BINDING_IDS, KeymapError, check_keymap
from l402tui.tui.agent_events import AgentExperiment, best_so_far, experiments_per_hour
from l402tui.tui.bars import bar, sparkline
from l402tui.tui.export import export_csv
from l402tui.tui.store_source import headline_metric, score_of
from l402tui.tui.themes import ThemeFileError, discover_themes, parse_theme_file


def test_bars_have_eighth_block_resolution_and_a_fixed_width():
    assert bar(0.5, 4) == "██  "
    assert bar(1 / 32, 4) == "▏   "
    assert bar(1.7, 3) == "███" and bar(-1, 3) == "   " and bar(None, 3) == "···"


def test_sparklines_scale_to_the_range_and_keep_gaps():
    assert sparkline([0, 50, 100], 3, 0, 100) == "▁▅█"
    assert sparkline([1, None, 1], 3) == "▅ ▅"
    assert sparkline(range(100), 4, 0, 99) == "████"  # only the last `width` values
    assert len(sparkline([5], 10)) == 10


def test_money_and_time_read_like_people_say_them():
    assert fmt.sats(44_400_000) == "44,400" and fmt.sats(1_500) == "1" and fmt.sats(None) == "—"
    assert fmt.sats_exact(21_347_463) == "21,347.463" and fmt.sats_exact(5_000) == "5"  # msat where they matter
    assert fmt.score(0.9679559999999999) == "0.968" and fmt.score(2.104) == "2.104" and fmt.score(None) == "—"
    assert fmt.score(1234567.0) == "1.235e+06" and fmt.score(0.0) == "0"
    assert fmt.csv_value(1_796_000_000.0, "created_at") == "2026-11-30T00:53:20Z"
    assert fmt.csv_value(0.1 + 0.2, "heldout_score") == "0.3"
    assert fmt.reasons_text(["below_threshold", "guard_failed:wall_s", "flagged:canary", "odd text"]) == (
        "not enough better than the best; guard metric wall_s got worse; flagged: canary string in output; odd text")
    assert fmt.event_sentence("submission.status", "s_ab", {"status": "FLAGGED"}) == "submission s_ab is now FLAGGED"
    assert fmt.event_sentence("payout.complete", "s_ab", {"amount_msat": 44_400_000}) == \
        "payout s_ab completed (44,400 sat)"
    assert fmt.until(1000 + 3 * 86400 + 7200, 1000) == "in 3d 2h"
    assert fmt.until(1000 - 90, 1000) == "1m 30s ago"
    assert fmt.bytes_iec(3 * 2**30) == "3.0 GiB"


def test_stored_scores_are_found_whatever_their_shape():
    assert score_of('{"metrics": {"f1": 0.8, "wall_s": 3}}', "f1") == 0.8
    assert score_of('{"status": "pending"}', "f1") is None
    assert score_of('{"heldout_score": 0.7, "metrics": {"f1": 0.9}}', "f1") == 0.7
    assert score_of("not json", "f1") is None
    assert headline_metric('{"primary_metric": "cpu_s", "metrics": []}') == "cpu_s"
    assert headline_metric('{"metrics": [{"name": "a", "weight": 0}, {"name": "b", "weight": 2}]}') == "b"


def test_log_segments_keep_partial_lines_for_later_and_mark_repeats(tmp_path):
    a, b = tmp_path / "r0.log", tmp_path / "r1.log"
    a.write_text("one\ntwo\nthr")
    lines, offset = read_log_segments([(0, a)], 0, finished=False)
    assert lines == ["── repeat 0 · r0.log ──", "one", "two"] and offset == 8
    a.write_text("one\ntwo\nthree\n")
    b.write_text("x\n")
    lines, offset = read_log_segments([(0, a), (1, b)], offset, finished=False)
    assert lines == ["three", "── repeat 1 · r1.log ──", "x"]
    assert read_log_segments([(0, a), (1, b)], offset, finished=True) == ([], offset)
    lines, offset = read_log_segments([(0, a)], 0, finished=True, max_bytes=5)
    assert lines == ["── repeat 0 · r0.log ──", "one"] and offset == 4  # bounded batches


def test_shipped_themes_include_dark_light_and_ansi(tmp_path):
    themes, errors = discover_themes(None)
    by_name = {t.name: t for t in themes}
    assert errors == [] and {"l402-dark", "l402-light", "l402-ansi"} <= set(by_name)
    assert by_name["l402-light"].fields["dark"] is False
    ansi = by_name["l402-ansi"].to_textual()
    assert ansi.ansi and ansi.background == "ansi_default"  # transparent in tmux


def test_shipped_themes_are_package_data_a_wheel_carries():
    """They live inside the package and pyproject's package-data globs name each one
    (checked by hand with `pip wheel . --no-deps`: l402tui/themes/*.toml are in it)."""
    import fnmatch
    import tomllib

    from l402tui.tui.themes import SHIPPED_DIR

    package = Path(__file__).resolve().parents[2] / "l402tui"
    assert SHIPPED_DIR.parent == package
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["l402tui"]
    shipped = sorted(p.relative_to(package).as_posix() for p in SHIPPED_DIR.glob("*.toml"))
    assert len(shipped) >= 3
    assert [p for p in shipped if not any(fnmatch.fnmatch(p, g) for g in globs)] == []


def test_user_themes_load_and_bad_ones_are_reported_not_fatal(tmp_path):
    (tmp_path / "mine.toml").write_text('primary = "#ff0000"\ndark = true\n')
    (tmp_path / "broken.toml").write_text('primary = "not a colour"\n')
    (tmp_path / "typo.toml").write_text('primray = "#ff0000"\n')
    themes, errors = discover_themes(tmp_path)
    assert "mine" in {t.name for t in themes}
    assert len(errors) == 2
    assert any("broken.toml" in e and "is not a colour" in e for e in errors)
    assert any("typo.toml" in e and "unknown key 'primray'" in e for e in errors)
    with pytest.raises(ThemeFileError, match="primary is required"):
        (tmp_path / "x.toml").write_text('dark = false\n')
        parse_theme_file(tmp_path / "x.toml")


def test_keymap_names_real_binding_ids_only():
    assert check_keymap({"toggle_agent": " ctrl+a "}) == {"toggle_agent": "ctrl+a"}
    with pytest.raises(KeymapError, match="unknown binding id.*'toggle_agnet'.*toggle_agent"):
        check_keymap({"toggle_agnet": "ctrl+a"})
    with pytest.raises(KeymapError, match="expected a key string"):
        check_keymap({"quit": 3})
    assert {"quit", "show_keys", "export_csv", "log_next_match"} <= BINDING_IDS


def test_experiment_rate_and_running_best():
    rows = [AgentExperiment(f"c{i}", m, s, "", 1000 + 60 * i)
            for i, (m, s) in enumerate([(3.0, "keep"), (3.5, "discard"), (2.0, "keep"), (None, "crash")])]
    assert experiments_per_hour(rows, now=1000 + 240) == pytest.approx(4 * 3600 / 240)
    assert best_so_far(rows, minimize=True) == [3.0, 2.0]
    assert best_so_far(rows, minimize=False) == [3.0, 3.0]
    assert experiments_per_hour([], now=0) == 0.0


def test_csv_export_never_overwrites(tmp_path):
    first = export_csv(tmp_path, "ledger", ["a", "b"], [[1, None]], now=0)
    second = export_csv(tmp_path, "ledger", ["a", "b"], [[2, "x"]], now=0)
    assert first != second
    assert list(csv.reader(first.open())) == [["a", "b"], ["1", ""]]


def test_the_braille_chart_draws_points_marks_and_the_baseline():
    from l402tui.tui.chart import Series, line_chart

    chart = line_chart([Series([0.8, 0.83, 0.82, None, 0.86], "cyan")], 30, 4, baseline=0.8,
                       marks=[(0, 0.8), (4, 0.86)])
    rows = chart.plain.split("\n")
    assert len(rows) == 4 and rows[0].lstrip().startswith("0.86") and rows[-1].lstrip().startswith("0.8")
    assert all(len(r) == 30 for r in rows)
    assert any("\u2800" < ch <= "\u28ff" for ch in rows[0][8:])  # the best point reaches the top row
    styles = {str(span.style) for span in chart.spans}
    assert {"bold green", "yellow", "cyan"} <= styles  # kept marks, baseline, the line
    assert line_chart([Series([None])], 20, 3).plain == "no points yet"
