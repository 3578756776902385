import pytest

from l402tui.agent.results import HEADER, ResultRow, ResultsFormatError, ResultsLog


def test_rows_are_written_in_autoresearch_columns(tmp_path):
    log = ResultsLog(tmp_path / "results.tsv")
    log.ensure()
    log.append(ResultRow("a1b2c3d4e5", 0.99791234, 44.04, "keep", "baseline"))
    log.append(ResultRow("b2c3d4e", 0.0, 0.0, "crash", "double the width\t(OOM)\nagain"))
    assert (tmp_path / "results.tsv").read_text() == (
        "commit\tmetric\tmemory_gb\tstatus\tdescription\n"
        "a1b2c3d\t0.997912\t44.0\tkeep\tbaseline\n"
        "b2c3d4e\t0.000000\t0.0\tcrash\tdouble the width (OOM) again\n"
    )
    rows = log.read()
    assert [r.status for r in rows] == ["keep", "crash"]
    assert rows[0].metric == pytest.approx(0.997912)


def test_a_torn_last_line_is_dropped_on_read_and_removed_by_ensure(tmp_path):
    path = tmp_path / "results.tsv"
    log = ResultsLog(path)
    log.ensure()
    log.append(ResultRow("1111111", 1.5, 0.1, "keep", "baseline"))
    with open(path, "a") as fh:
        fh.write("2222222\t1.4")  # a kill -9 in the middle of a write
    assert len(log.read()) == 1
    log.ensure()
    assert path.read_text().endswith("keep\tbaseline\n")
    log.append(ResultRow("3333333", 1.2, 0.1, "discard", "next"))
    assert [r.commit for r in log.read()] == ["1111111", "3333333"]


def test_a_foreign_file_is_refused_with_the_line(tmp_path):
    path = tmp_path / "results.tsv"
    path.write_text("\t".join(HEADER) + "\n1111111\t1.0\t0.1\tmaybe\tx\n")
    with pytest.raises(ResultsFormatError, match=r"results.tsv:2: status must be one of keep, discard, crash"):
        ResultsLog(path).read()
    path.write_text("commit,metric\n")
    with pytest.raises(ResultsFormatError, match="header must be"):
        ResultsLog(path).read()
