#!/usr/bin/env python3
"""l402tui's hold-invoice plugin with its methods under ``l402tui-hold-*``, so it loads
beside daywalker90's ``holdinvoice`` or Boltz's ``hold`` (same names otherwise):

    lightningd --plugin=/path/to/cln_holdinvoice_prefixed.py

Keep it next to cln_holdinvoice.py; the l402tui cln backend finds either by ``help``.
"""

import os
import runpy
from pathlib import Path

os.environ["L402TUI_HOLD_PREFIXED"] = "1"
runpy.run_path(str(Path(__file__).resolve().with_name("cln_holdinvoice.py")), run_name="__main__")
