"""Make the README's PNG screenshots from the TUI's snapshot SVGs.

The snapshot tests (tests/tui/test_snapshots.py) render every main screen to SVG;
this converts the chosen ones to PNG under docs/img/.  Needs cairosvg
(`pip install cairosvg`; it uses the system's libcairo) or, failing that,
rsvg-convert (`apt-get install librsvg2-bin`).

    python scripts/screenshots.py            # the README set
    python scripts/screenshots.py --out /tmp/shots --all
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = ROOT / "tests" / "tui" / "__snapshots__"
README_SET = {
    "main.png": "test_snapshots/test_bounties_pane[l402-dark].svg",
    "live-eval-log.png": "test_snapshots/test_live_log_mid_run[l402-dark].svg",
    "submission-detail.png": "test_snapshots/test_submission_detail[l402-dark].svg",
    "filtered-table.png": "test_snapshots/test_filtered_table[l402-dark].svg",
    "agent-chart.png": "test_snapshots/test_agent_panel_with_a_running_loop[l402-dark].svg",
    "create-self-funded.png": "test_snapshots/test_create_dialog_picks_self_funding_and_says_why[l402-dark].svg",
    "small-80x24.png": "test_snapshots/test_small_terminal[l402-dark].svg",
    "light-theme.png": "test_snapshots/test_submissions_pane[l402-light].svg",
    "bounty-detail.png": "test_snapshots_screens/test_bounty_detail_with_charts[l402-dark].svg",
    "wallet.png": "test_snapshots_screens/test_wallet_screen_short[l402-dark].svg",
}


def convert(svg: Path, png: Path, width: int) -> None:
    try:
        import cairosvg
    except ImportError:
        cairosvg = None
    if cairosvg is not None:
        cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=width)
        return
    tool = shutil.which("rsvg-convert")
    if tool is None:
        sys.exit("no SVG converter: `pip install cairosvg` or `apt-get install librsvg2-bin`")
    subprocess.run([tool, "-w", str(width), "-o", str(png), str(svg)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--all", action="store_true", help="every snapshot, named after it")
    parser.add_argument("--width", type=int, default=1400, help="PNG width in pixels")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = ({svg.stem + ".png": str(svg.relative_to(SNAPSHOTS)) for svg in SNAPSHOTS.glob("*/*.svg")}
             if args.all else README_SET)
    missing = [svg for svg in pairs.values() if not (SNAPSHOTS / svg).is_file()]
    if missing:
        sys.exit(f"missing snapshots {missing}: run `pytest tests/tui/test_snapshots.py --snapshot-update` first")
    for png, svg in sorted(pairs.items()):
        convert(SNAPSHOTS / svg, args.out / png, args.width)
        print(args.out / png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
