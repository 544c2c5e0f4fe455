"""Configuration: TOML file, environment precedence, and one clear line per bad value."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from tests.support.server_process import CROUPIER

EXAMPLE = Path(__file__).parent.parent / "croupier.example.toml"


def test_the_example_file_loads_with_its_sections_flattened() -> None:
    """The shipped example parses, and [section] key is the key section_key."""
    config = load_config(EXAMPLE, environ={})
    assert config.backup_time == "03:00" and config.backup_keep_days == 7
    assert config.game_idle_seconds == 300 and config.ratelimit_burst == 10
    assert config.discord_api_url == "https://discord.com/api/v10"
    assert not config.discord_enabled


def test_environment_wins_over_the_file() -> None:
    """CROUPIER_* variables override the file, and are typed like it."""
    config = load_config(
        EXAMPLE,
        environ={"CROUPIER_ECONOMY_SCOPE": "global", "CROUPIER_LOG_JSON": "yes"},
    )
    assert config.economy_scope == "global" and config.log_json is True


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CROUPIER_METRICS_ADDR": "nowhere"}, "metrics_addr"),
        ({"CROUPIER_BACKUP_TIME": "25:00"}, "backup_time"),
        ({"CROUPIER_GAME_IDLE_SECONDS": "soon"}, "CROUPIER_GAME_IDLE_SECONDS"),
        ({"CROUPIER_GAME_IDLE_SECONDS": "0"}, "game_idle_seconds"),
        ({"CROUPIER_LOG_JSON": "maybe"}, "CROUPIER_LOG_JSON"),
        ({"CROUPIER_DISCORD_API_URL": "discord.com"}, "discord_api_url"),
    ],
)
def test_bad_values_name_their_key(environ: dict[str, str], named: str) -> None:
    """Each invalid value is refused with a message naming the key."""
    with pytest.raises(ConfigError, match=named):
        load_config(None, environ=environ)


def test_bad_files_are_refused_clearly(tmp_path: Path) -> None:
    """Unknown keys, invalid TOML and missing files are each one clear error."""
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "red"\n')
    with pytest.raises(ConfigError, match="'colour' is unknown"):
        load_config(unknown, environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, environ={})
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "missing.toml", environ={})


def test_the_command_line_stops_with_one_line_on_bad_config(tmp_path: Path) -> None:
    """An invalid setting stops `croupier run` with exit 2 and one line naming the key."""
    env = {**os.environ, "CROUPIER_DATA_DIR": str(tmp_path), "CROUPIER_ECONOMY_SCOPE": "moon"}
    done = subprocess.run([CROUPIER, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "croupier: configuration error: CROUPIER_ECONOMY_SCOPE / economy_scope: "
        "'moon' must be 'guild' or 'global'"
    ]
