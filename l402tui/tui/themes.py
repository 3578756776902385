"""Theme files: TOML, one theme per file, shipped in the package (``l402tui/themes/``,
package data, so a wheel carries them) and added by users in ``<data dir>/themes/``.
A user theme with a shipped name replaces the shipped one.

A file's keys are Textual ``Theme`` fields (name, primary, secondary, accent,
warning, error, success, foreground, background, surface, panel, boost, dark, ansi,
luminosity_spread, text_alpha) plus a ``[variables]`` table of design variables.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "themes"
DEFAULT_THEME = "l402-dark"
COLOUR_FIELDS = ("primary", "secondary", "accent", "warning", "error", "success",
                 "foreground", "background", "surface", "panel", "boost")
OTHER_FIELDS = {"name": str, "dark": bool, "ansi": bool, "luminosity_spread": float,
                "text_alpha": float, "variables": dict}


class ThemeFileError(ValueError):
    """A theme file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ThemeFile:
    path: Path
    fields: dict[str, Any]

    @property
    def name(self) -> str:
        return self.fields["name"]

    def to_textual(self):
        from textual.theme import Theme

        fields = dict(self.fields)
        if fields.get("ansi"):
            # Textual's own CSS uses these two for ANSI themes; without them it fails to start.
            fields["variables"] = {"ansi-background": "ansi_black", "ansi-foreground": "ansi_white",
                                   **fields.get("variables", {})}
        return Theme(**fields)


def parse_theme_file(path: Path) -> ThemeFile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"{path}: cannot read theme file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"{path}: not valid TOML: {exc}") from None
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key in COLOUR_FIELDS:
            if not isinstance(value, str):
                raise ThemeFileError(f"{path}: {key} must be a colour string like \"#1e1e2e\", got {value!r}")
            _check_colour(path, key, value)
        elif key in OTHER_FIELDS:
            kind = OTHER_FIELDS[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise ThemeFileError(f"{path}: {key} must be {kind.__name__}, got {value!r}")
        else:
            known = ", ".join([*COLOUR_FIELDS, *OTHER_FIELDS])
            raise ThemeFileError(f"{path}: unknown key {key!r}; theme files may set {known}")
        fields[key] = value
    if "name" not in fields or not fields["name"].strip():
        fields["name"] = path.stem
    if "primary" not in fields:
        raise ThemeFileError(f"{path}: primary is required (the main accent colour, e.g. primary = \"#F7A21B\")")
    for var, value in fields.get("variables", {}).items():
        if not isinstance(value, str):
            raise ThemeFileError(f"{path}: variables.{var} must be a string, got {value!r}")
    return ThemeFile(path, fields)


def _check_colour(path: Path, key: str, value: str) -> None:
    from textual.color import Color, ColorParseError

    if value.startswith("ansi_"):
        return  # Textual resolves ANSI names itself, including ansi_default (transparent)
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{path}: {key} = {value!r} is not a colour; use #rrggbb, rgb(…) or a name") from None


def discover_themes(user_dir: Path | None, shipped_dir: Path = SHIPPED_DIR) -> tuple[list[ThemeFile], list[str]]:
    """Every usable theme (shipped first, then the user's) and one error line per bad file.

    A broken user theme must not stop the app, so errors are returned, not raised."""
    themes: dict[str, ThemeFile] = {}
    errors: list[str] = []
    for folder in (shipped_dir, user_dir):
        if folder is None or not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = parse_theme_file(path)
            except ThemeFileError as exc:
                errors.append(str(exc))
                continue
            themes[theme.name] = theme
    return list(themes.values()), errors
