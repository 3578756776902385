"""A QR code drawn with half blocks: two modules per character cell, so it fits a terminal
and survives SSH (no images, no sixel).  Dark modules on a light ground, as scanners expect,
whatever the theme."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

QUIET = 2  # modules of light margin around the code (4 is the standard; 2 scans on screens)
INK = Style(color="black", bgcolor="white")
# (top dark, bottom dark) -> the cell; foreground is the dark module colour.
CELLS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def qr_matrix(payload: str) -> list[list[bool]]:
    """Modules of the smallest QR code holding ``payload`` (True: dark), quiet zone included.
    A BOLT11 invoice is encoded upper-case with a ``LIGHTNING:`` prefix: wallets accept it and
    the alphanumeric mode makes the code about a third smaller."""
    import segno  # imported here: only the wallet screen draws codes

    data = payload.strip()
    if data.lower().startswith("ln"):
        data = "LIGHTNING:" + data.upper()
    code = segno.make_qr(data, error="L", boost_error=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=QUIET)]


def qr_size(payload: str) -> tuple[int, int]:
    """(columns, rows) the drawn code takes."""
    matrix = qr_matrix(payload)
    return len(matrix[0]), (len(matrix) + 1) // 2


def render_qr(payload: str) -> Text:
    matrix = qr_matrix(payload)
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    rows = ["".join(CELLS[t, b] for t, b in zip(top, bottom)) for top, bottom in zip(matrix[::2], matrix[1::2])]
    # Light cells are spaces on a white ground: none may be trimmed, or the quiet zone goes.
    return Text("\n".join(rows), style=INK, no_wrap=True, overflow="crop", end="")
