"""Label safety, fed the run it exists for: one that searches everything it can read.

A random marker is planted in the held-out labels (a file of its own and a key of the
answers the scorer reads) and another in the held-out inputs.  The submitted diff makes
the run read every file it can reach (its work copy, its inputs, its artifacts, the
environment, its command line; in an isolating sandbox the whole visible tree: the local
runner isolates nothing, so there the host's other files are out of scope) and report
which marker it saw.  It must see the inputs' marker (so the search works) and never the
labels'.  The probe holds neither marker verbatim: its own source is in the tree it searches.
"""

from __future__ import annotations

import json
import os
import textwrap

from l402tui.bounty import load_bounty
from l402tui.evaluation.harness import evaluate
from test_harness import _prepended
from tinybounty import make_sums

PROBE = textwrap.dedent('''\
    import json as _json, os as _os, sys as _sys


    def _search():
        wanted = {name: bytes.fromhex(hexed)[::-1] for name, hexed in @WANTED@.items()}
        # Everything but the read-only system tree (/usr, the image's or the host's, holds no
        # bounty data) and kernel views; /proc/self is read below.
        skip = ("/usr", "/proc", "/sys", "/dev", "/bin", "/lib", "/lib64", "/sbin")
        roots = [_os.getcwd(), *[a for a in _sys.argv[1:] if _os.path.isdir(a)]]
        if _os.environ.get("PROBE_WHOLE_TREE") == "1":
            roots.append("/")
        seen = {name: [] for name in wanted}
        blobs = [("env", "\\0".join(f"{k}={v}" for k, v in _os.environ.items()).encode()),
                 ("argv", "\\0".join(_sys.argv).encode())]
        for special in ("/proc/self/environ", "/proc/self/cmdline"):
            try:
                with open(special, "rb") as fh:
                    blobs.append((special, fh.read()))
            except OSError:
                pass
        files = 0
        done = set()
        for root in roots:
            for here, dirs, names in _os.walk(root):
                if here.startswith(skip) and here != "/":
                    dirs[:] = []
                    continue
                for name in names:
                    path = _os.path.join(here, name)
                    if path in done:
                        continue
                    done.add(path)
                    blobs.append((path, path.encode()))
                    try:
                        with open(path, "rb") as fh:
                            blobs.append((path, fh.read(4 << 20)))
                        files += 1
                    except OSError:
                        pass
        for where, blob in blobs:
            for name, marker in wanted.items():
                if marker in blob and where not in seen[name]:
                    seen[name].append(where)
        with open(_os.path.join(_sys.argv[2], "probe.json"), "w") as fh:
            _json.dump({"seen": seen, "files_read": files}, fh)


    _search()
''')


def _plant(root, label_marker: str, input_marker: str) -> None:
    labels, inputs = root / "heldout" / "a" / "labels", root / "heldout" / "a" / "inputs"
    answers = json.loads((labels / "answers.json").read_text())
    answers[label_marker] = 0
    (labels / "answers.json").write_text(json.dumps(answers))
    (labels / "NOTES.txt").write_text(f"sponsor's note: {label_marker}\n")
    # The inputs' marker as a file name (the solver sums every input file's integers).
    (inputs / input_marker).write_text("4\n")


async def test_a_marker_planted_in_the_labels_is_nowhere_the_run_can_read(any_runner, tmp_path):
    label_marker, input_marker = f"LBL{os.urandom(12).hex()}", f"INP{os.urandom(12).hex()}"
    root = make_sums(tmp_path / "sums")
    _plant(root, label_marker, input_marker)
    spec = load_bounty(root)
    wanted = {"labels": label_marker.encode()[::-1].hex(), "inputs": input_marker.encode()[::-1].hex()}
    probe = PROBE.replace("@WANTED@", repr(wanted))
    isolated = any_runner.isolated
    kept = tmp_path / "kept"
    result = await evaluate(spec, _prepended(spec, probe), sandbox=any_runner, allow_unsandboxed=True,
                            keep_artifacts=kept, extra_env={"PROBE_WHOLE_TREE": "1" if isolated else "0"})
    assert result.ok, result.reasons
    report = json.loads((kept / "probe.json").read_text())
    assert report["seen"]["inputs"], report  # the search reads what the run is given
    assert report["files_read"] >= len(os.listdir(root / "heldout" / "a" / "inputs")), report
    assert report["seen"]["labels"] == [], f"held-out labels reachable by the run: {report['seen']['labels']}"
