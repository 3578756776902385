
import pytest

from l402tui.agent.loop import ExperimentLoop
from l402tui.agent.proposers import ProposalContext, ProposerFailed
from l402tui.agent.results import ResultRow
from l402tui.agent.search import MarkError, SearchProposer, parse_marks
from l402tui.agent.workspace import Workspace

SOURCE = '''\
LR = 0.01  # search: float(0.0001, 1.0, log)
CONFIG = {"hidden": 64, "act": 'relu'}  # search: int(8, 512)
ACT = "relu"  # search: choice(relu, gelu, tanh)
FLAG = True  # search: choice(True, False)
# search: int(1, 2)   (a comment line is not a mark)
def f(x, scale=2.5e-3):  # search: float(1e-4, 1e-2)
    return x
'''


def test_marks_find_the_last_literal_before_the_comment(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    marks = parse_marks(path, "m.py")
    assert [(m.name, m.kind, m.value_text) for m in marks] == [
        ("LR", "float", "0.01"), ("hidden", "int", "64"), ("ACT", "choice", '"relu"'),
        ("FLAG", "choice", "True"), ("scale", "float", "2.5e-3")]
    assert marks[0].log and (marks[0].low, marks[0].high) == (0.0001, 1.0)
    assert marks[2].options == ("relu", "gelu", "tanh")


def test_sql_marks_name_the_setting(tmp_path):
    path = tmp_path / "settings.sql"
    path.write_text("PRAGMA cache_size = 40;  -- # search: int(10, 100000, log)\n"
                    "CREATE INDEX idx_1 ON orders(status);  -- # search: choice(status, day)\n")
    marks = parse_marks(path, "settings.sql")
    assert [(m.name, m.value_text) for m in marks] == [("cache_size", "40"), ("orders", "status")]


@pytest.mark.parametrize("line,message", [
    ("X = 1  # search: int(5)", r"m.py:1: write `# search: int\(low, high\)`"),
    ("X = 1  # search: float(0, 1, log)", "low > 0 for log"),
    ("X = 1  # search: float(2, 1)", "need low < high"),
    ("X = 'a'  # search: int(1, 9)", "no number before the mark"),
    ("X = 'a'  # search: choice(b, c)", "none of the options b, c appears"),
])
def test_bad_marks_say_where_and_how_to_fix(tmp_path, line, message):
    path = tmp_path / "m.py"
    path.write_text(line + "\n")
    with pytest.raises(MarkError, match=message):
        parse_marks(path, "m.py")


def context(ws: Workspace, history, experiment) -> ProposalContext:
    return ProposalContext(ws.spec(), ws.root, ws.target, tuple(history), None, experiment, 60.0)


async def test_same_seed_same_proposals_and_edits_stay_valid_python(tmp_path, package):
    texts = []
    for run in range(2):
        ws = Workspace.create(tmp_path / f"ws{run}", package, branch="b")
        proposer = SearchProposer(seed=42)
        descriptions = []
        for n in range(1, 8):
            proposal = await proposer.propose(context(ws, [ResultRow("0" * 7, 1.0, 0.0, "keep", "baseline")], n))
            descriptions.append(proposal.description)
            source = (ws.target / "model.py").read_text()
            compile(source, "model.py", "exec")
            ws.discard()
        texts.append(descriptions)
    assert texts[0] == texts[1]
    assert len(set(texts[0])) > 3
    other = SearchProposer(seed=43)
    ws = Workspace.create(tmp_path / "ws-other", package, branch="b")
    assert (await other.propose(context(ws, [], 1))).description != texts[0][0]


async def test_bare_word_choices_are_written_as_strings(tmp_path, package):
    ws = Workspace.create(tmp_path / "ws", package, branch="b")
    model = ws.target / "model.py"
    model.write_text('OPT = "sgd"  # search: choice(sgd, adam)\n')
    proposal = await SearchProposer(seed=1).propose(context(ws, [], 1))
    assert model.read_text() == 'OPT = "adam"  # search: choice(sgd, adam)\n'
    assert proposal.description == 'OPT "sgd" -> "adam"'


async def test_no_marks_is_a_clear_failure(tmp_path, package):
    ws = Workspace.create(tmp_path / "ws", package, branch="b")
    (ws.target / "model.py").write_text("GUESS = 0.5\n")
    with pytest.raises(ProposerFailed, match="no `# search:` marks in the mutable files"):
        await SearchProposer().propose(context(ws, [], 1))


@pytest.mark.parametrize("strategy,factor", [("hill", 0.2), ("random", 0.8)])
async def test_search_improves_the_tiny_bounty(tmp_path, package, strategy, factor):
    ws = Workspace.create(tmp_path / "ws", package, branch="b")
    loop = ExperimentLoop(ws, SearchProposer(seed=5, strategy=strategy))
    summary = await loop.run(max_experiments=8)
    assert summary.baseline_metric == pytest.approx(2.5)
    assert summary.kept >= 1 and summary.best_metric < summary.baseline_metric * factor
