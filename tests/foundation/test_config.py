from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from l402tui.cli import main
from l402tui.config import ConfigError, load_config


def test_precedence_default_file_env_cli(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[coordinator]\nport = 9000\nfee_percent = 5\n[prices]\ndownload_sats = 50\n')
    env = {"L402TUI_COORDINATOR__PORT": "9100"}
    cfg = load_config(path, env)
    assert cfg.get("coordinator.port") == 9100 and cfg.sources["coordinator.port"] == "env:L402TUI_COORDINATOR__PORT"
    assert cfg.get("coordinator.fee_percent") == 5.0 and cfg.sources["coordinator.fee_percent"] == f"file:{path}"
    assert cfg.get("coordinator.host") == "127.0.0.1" and cfg.sources["coordinator.host"] == "default"
    cli = cfg.with_overrides({"coordinator.port": 9200})
    assert cli.get("coordinator.port") == 9200 and cli.sources["coordinator.port"] == "cli"
    assert cfg.get("coordinator.port") == 9100  # the original is untouched


def test_bad_values_give_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[coordinator]\nport = "eighty"\n')
    with pytest.raises(ConfigError, match="coordinator.port: expected int, got 'eighty'"):
        load_config(path, {})
    path.write_text('[coordinatr]\nport = 1\n')
    with pytest.raises(ConfigError, match=r"unknown section \[coordinatr\]"):
        load_config(path, {})
    with pytest.raises(ConfigError, match="L402TUI_EVALUATION__NOPE"):
        load_config(tmp_path / "absent.toml", {"L402TUI_EVALUATION__NOPE": "1"})
    with pytest.raises(ConfigError, match="expected bool"):
        load_config(tmp_path / "absent.toml", {"L402TUI_EVALUATION__ALLOW_UNSANDBOXED": "maybe"})


def test_xdg_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c"))
    cfg = load_config()
    assert cfg.config_path == tmp_path / "c" / "l402tui" / "config.toml"
    assert cfg.db_path == tmp_path / "d" / "l402tui" / "l402tui.sqlite"


def test_config_show_names_sources(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[tui]\ntheme = "l402-light"\n')
    monkeypatch.setenv("L402TUI_PRICES__DOWNLOAD_SATS", "42")
    result = CliRunner().invoke(main, ["--config", str(path), "--data-dir", str(tmp_path / "data"),
                                       "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["tui.theme"] == {"value": "l402-light", "source": f"file:{path}"}
    assert shown["prices.download_sats"] == {"value": 42, "source": "env:L402TUI_PRICES__DOWNLOAD_SATS"}
    assert shown["paths.data_dir"]["source"] == "cli"
    text = CliRunner().invoke(main, ["--config", str(path), "config", "show"]).output
    assert "precedence:" in text and "tui.theme" in text
