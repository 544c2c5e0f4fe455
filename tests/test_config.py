"""Configuration: TOML file, environment precedence, and one clear line per bad value."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import SECRET_KEYS, Config, ConfigError, ensure_paths, load_config
from tests.support.server_process import CROUPIER

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "croupier.example.toml"
KEYS = list(Config.model_fields)
WHOLE_KEYS = [k for k, f in Config.model_fields.items() if f.annotation is int]
BOOL_KEYS = [k for k, f in Config.model_fields.items() if f.annotation is bool]
TEXT_KEYS = [k for k in KEYS if k not in WHOLE_KEYS and k not in BOOL_KEYS]


def bounds(key: str) -> tuple[int, int]:
    field = Config.model_fields[key]
    low = next(m.ge for m in field.metadata if hasattr(m, "ge"))
    high = next(m.le for m in field.metadata if hasattr(m, "le"))
    return int(low), int(high)


def refusal(key: str, *, environ: dict[str, str] | None = None, file: Path | None = None) -> str:
    """The error line of one bad setting, checked to be one line naming ``key``."""
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ=environ or {})
    line = str(caught.value)
    assert "\n" not in line, line
    assert line.startswith(f"CROUPIER_{key.upper()} / {key}: expected "), line
    return line


def toml_file(directory: Path, text: str) -> Path:
    file = directory / "croupier.toml"
    file.write_text(text)
    return file


def test_the_example_file_loads_with_its_sections_flattened() -> None:
    """The shipped example parses, and [section] key is the key section_key."""
    config = load_config(EXAMPLE, environ={})
    assert config.backup_time == "03:00" and config.backup_keep_days == 7
    assert config.game_idle_seconds == 300 and config.ratelimit_burst == 10
    assert config.discord_api_url == "https://discord.com/api/v10"
    assert not config.discord_enabled


def test_the_readme_table_and_the_example_name_every_key_and_no_other() -> None:
    """The README's configuration table and the example file list exactly the real keys."""
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    in_table = {key for row in rows for key in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert in_table == set(KEYS)
    example = EXAMPLE.read_text()
    # The example shows every key, the rarely set ones commented out.
    spelled: set[str] = set()
    section = ""
    for line in example.splitlines():
        if match := re.fullmatch(r"\[([a-z]+)\]", line.strip()):
            section = match[1] + "_"
        elif match := re.match(r"#? ?([a-z_]+) = ", line):
            spelled.add(section + match[1])
    assert spelled == set(KEYS)
    # Where the example states a key's range, it is the range the key accepts.
    for line in example.splitlines():
        if match := re.match(r"([a-z_]+) = .*# 1 to ([0-9]+)$", line):
            stated = next(k for k in WHOLE_KEYS if k.endswith(match[1]))
            assert bounds(stated) == (1, int(match[2])), line


def test_the_readme_table_states_the_real_defaults_and_ranges_of_numbers() -> None:
    """Each whole-number key's default and upper bound in the README are the code's."""
    readme = (ROOT / "README.md").read_text()
    checked = set()
    for row in (line for line in readme.splitlines() if line.startswith("| `")):
        _, keys_cell, defaults_cell, meaning, _ = row.split("|")
        keys = re.findall(r"`([a-z_]+)`", keys_cell)
        defaults = [cell.strip() for cell in defaults_cell.split(", ")]
        assert len(defaults) == len(keys), row
        stated_maxima = {int(n) for n in re.findall(r"\b1 to ([0-9]+)(?![0-9*])", meaning)}
        whole = [key for key in keys if key in WHOLE_KEYS]
        for key in whole:
            assert defaults[keys.index(key)] == f"`{Config.model_fields[key].default}`", row
            checked.add(key)
        assert stated_maxima <= {bounds(key)[1] for key in whole}, row
    assert checked == set(WHOLE_KEYS)


def test_environment_wins_over_the_file_which_wins_over_defaults(tmp_path: Path) -> None:
    """CROUPIER_* variables override the file, the file overrides the defaults."""
    file = tmp_path / "c.toml"
    file.write_text('economy_scope = "global"\n[game]\nidle_seconds = 60\nrecovery_seconds = 90\n')
    config = load_config(
        file, environ={"CROUPIER_GAME_IDLE_SECONDS": "45", "CROUPIER_LOG_JSON": "yes"}
    )
    assert config.economy_scope == "global" and config.game_recovery_seconds == 90
    assert config.game_idle_seconds == 45 and config.log_json is True
    assert config.ratelimit_burst == Config().ratelimit_burst == 10


def test_the_file_can_be_named_by_the_environment(tmp_path: Path) -> None:
    """CROUPIER_CONFIG names the file when no path is given."""
    file = tmp_path / "c.toml"
    file.write_text('[discord]\ntoken = "abc.DEF-1"\n')
    config = load_config(None, environ={"CROUPIER_CONFIG": str(file)})
    assert config.discord_token == "abc.DEF-1" and config.discord_enabled


BAD_ENVIRONMENT = [
    ("game_idle_seconds", "soon"),
    ("game_idle_seconds", "0"),
    ("game_idle_seconds", "1.5"),
    ("game_idle_seconds", "²"),
    ("game_idle_seconds", "١٢"),
    ("game_idle_seconds", "1_000"),
    ("game_idle_seconds", " 300"),
    ("game_idle_seconds", "86401"),
    ("game_idle_seconds", "9" * 5000),
    ("game_recovery_seconds", "-1"),
    ("timer_attempts", "0"),
    ("timer_attempts", "101"),
    ("console_user", "18446744073709551616"),
    ("console_guild", "0x10"),
    ("ratelimit_burst", ""),
    ("log_json", "maybe"),
    ("log_json", "2"),
    ("log_json", "tru"),
    ("console_admin", " true"),
    ("data_dir", ""),
    ("backup_dir", ""),
    ("metrics_addr", "nowhere"),
    ("metrics_addr", "127.0.0.1:70000"),
    ("metrics_addr", "127.0.0.1:９４６４"),
    ("backup_time", "25:00"),
    ("backup_time", "3"),
    ("discord_api_url", "discord.com"),
    ("discord_token", "two words"),
    ("discord_token", "token\n"),
    ("economy_scope", "moon"),
    ("log_level", "loud"),
    ("log_file", "a\x07b"),
    ("interactions_addr", "8080"),
    ("discord_public_key", "not-hex"),
    ("discord_gateway", "nope"),
]


@pytest.mark.parametrize(("key", "value"), BAD_ENVIRONMENT)
def test_bad_environment_values_are_one_line_naming_the_key(key: str, value: str) -> None:
    """Each invalid environment value is refused in one line with the key and the rule."""
    line = refusal(key, environ={f"CROUPIER_{key.upper()}": value})
    assert len(line) < 400


BAD_FILE = [
    ("game_idle_seconds", "game_idle_seconds = 1.5"),
    ("game_idle_seconds", "game_idle_seconds = 300.0"),
    ("game_idle_seconds", "game_idle_seconds = true"),
    ("game_idle_seconds", '[game]\nidle_seconds = "300"'),
    ("game_idle_seconds", "[game]\nidle_seconds = [300]"),
    ("game_idle_seconds", "[game]\nidle_seconds = { value = 300 }"),
    ("game_idle_seconds", "[game]\nidle_seconds = 1979-05-27"),
    ("game_idle_seconds", "[game]\nidle_seconds = inf"),
    ("game_idle_seconds", "[game]\nidle_seconds = 100000000000000000000000000"),
    ("backup_time", "[backup]\ntime = 03:00:00"),
    ("data_dir", "data_dir = 1979-05-27T07:32:00"),
    ("data_dir", 'data_dir = ""'),
    ("data_dir", "data_dir = 5"),
    ("log_json", 'log_json = "true"'),
    ("log_json", "log_json = 1"),
    ("discord_token", "[discord]\ntoken = 42"),
    ("economy_scope", 'economy_scope = "Guild"'),
    ("game_idle_seconds", "game_idle_seconds = 5\n[game]\nidle_seconds = 6"),
]


@pytest.mark.parametrize(("key", "toml"), BAD_FILE)
def test_bad_file_values_are_one_line_naming_the_key(key: str, toml: str, tmp_path: Path) -> None:
    """Wrong types, fractions, dates and tables in the file are each one line naming the key."""
    refusal(key, file=toml_file(tmp_path, toml + "\n"))


def test_fractions_are_refused_never_truncated(tmp_path: Path) -> None:
    """1.5 seconds is an error in the file and in the environment, never 1."""
    file = toml_file(tmp_path, "game_idle_seconds = 1.5\n")
    assert "got 1.5" in refusal("game_idle_seconds", file=file)
    assert "got '1.5'" in refusal(
        "game_idle_seconds", environ={"CROUPIER_GAME_IDLE_SECONDS": "1.5"}
    )


def test_bad_files_are_refused_clearly(tmp_path: Path) -> None:
    """Unknown keys and sections, invalid TOML and missing files are each one clear line."""
    cases = {
        'colour = "red"\n': "config key 'colour' in ",
        "[game]\nidle = 3\n": "config key 'game.idle' in ",
        "[colour]\n": "config key 'colour' in ",
        "data_dir = \n": "not valid TOML",
        f"game_idle_seconds = {'9' * 5000}\n": "not valid TOML",
    }
    for text, expected in cases.items():
        file = tmp_path / "c.toml"
        file.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config(file, environ={})
        assert expected in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, environ={})


def test_several_bad_values_still_give_one_line() -> None:
    """With many bad keys the line names the first and lists the others."""
    line = refusal(
        "economy_scope",
        environ={
            "CROUPIER_ECONOMY_SCOPE": "moon",
            "CROUPIER_BACKUP_TIME": "x",
            "CROUPIER_LOG_JSON": "?",
        },
    )
    assert line.endswith("(also invalid: log_json, backup_time)")


def test_refused_secrets_are_not_repeated_in_the_error_line() -> None:
    """A bad token or secret is named by its key and length, never by its text."""
    named = {key for key in KEYS if "token" in key or "secret" in key}
    assert named == SECRET_KEYS
    for key in SECRET_KEYS:
        line = refusal(key, environ={f"CROUPIER_{key.upper()}": "hunter2 with spaces"})
        assert "hunter2" not in line and line.endswith("got 19 characters (not shown)")


def test_unknown_environment_variables_are_left_to_their_owners() -> None:
    """CROUPIER_* variables that are not keys (tools and tests set some) are not errors."""
    assert load_config(None, environ={"CROUPIER_FUZZ_EXAMPLES": "5"}) == Config()


# Random TOML values: every key refuses every value of a type it does not take. These
# write and read files, so a loaded machine must not fail them on hypothesis's deadline.


def toml_value(value: Any) -> str:
    """``value`` spelled as a TOML inline value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's, except that TOML has no surrogate pairs and no raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    st.dates(),
    st.datetimes(),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=6,
)


def takes(key: str, value: Any) -> bool:
    """Whether ``value`` has a type the key accepts (its range is checked apart)."""
    if key in BOOL_KEYS:
        return isinstance(value, bool)
    if key in WHOLE_KEYS:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(KEYS), value=toml_values, as_section=st.booleans())
def test_values_of_the_wrong_type_in_the_file_are_one_line(
    key: str, value: Any, as_section: bool, tmp_path: Path
) -> None:
    """Any TOML value of a type the key does not take is refused in one line naming it."""
    if takes(key, value):
        return
    section, _, rest = key.partition("_")
    line = f"{key} = {toml_value(value)}\n"
    if as_section:
        line = f"[{section}]\n{rest} = {toml_value(value)}\n"
    assert tomllib.loads(line)  # the spelling is valid TOML
    refusal(key, file=toml_file(tmp_path, line))


@settings(deadline=None)
@given(key=st.sampled_from(WHOLE_KEYS), text=st.text(max_size=30))
def test_environment_numbers_are_ascii_digits_in_range(key: str, text: str) -> None:
    """An environment number is accepted exactly when it is ASCII digits within the bounds."""
    low, high = bounds(key)
    well_formed = re.fullmatch(r"-?[0-9]+", text, re.ASCII) is not None
    environ = {f"CROUPIER_{key.upper()}": text}
    if well_formed and low <= int(text) <= high:
        assert getattr(load_config(None, environ=environ), key) == int(text)
    else:
        refusal(key, environ=environ)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_good_whole_numbers_round_trip_through_file_and_environment(
    data: st.DataObject, tmp_path: Path
) -> None:
    """Any whole number within a key's bounds reads back the same from either source."""
    key = data.draw(st.sampled_from(WHOLE_KEYS))
    low, high = bounds(key)
    number = data.draw(st.integers(min_value=low, max_value=high))
    from_env = load_config(None, environ={f"CROUPIER_{key.upper()}": str(number)})
    assert getattr(from_env, key) == number
    from_file = load_config(toml_file(tmp_path, f"{key} = {number}\n"), environ={})
    assert getattr(from_file, key) == number


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("true", True),
        ("YES", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
    ],
)
def test_boolean_words_round_trip(word: str, value: bool) -> None:
    """The accepted boolean spellings in the environment, in any case."""
    # With the HTTP endpoint on, every boolean may be false.
    endpoint = {"CROUPIER_INTERACTIONS_ADDR": "[::]:8080", "CROUPIER_DISCORD_PUBLIC_KEY": "0" * 64}
    for key in BOOL_KEYS:
        config = load_config(None, environ={**endpoint, f"CROUPIER_{key.upper()}": word})
        assert getattr(config, key) is value


def test_text_values_round_trip(tmp_path: Path) -> None:
    """Valid text values read back as written; paths expand ~."""
    environ = {
        "CROUPIER_DATA_DIR": "~/croupier",
        "CROUPIER_METRICS_ADDR": "[::1]:0",
        "CROUPIER_LOG_LEVEL": "WARNING",
        "CROUPIER_BACKUP_TIME": "4:05",
        "CROUPIER_BACKUP_DIR": str(tmp_path),
    }
    config = load_config(None, environ=environ)
    assert config.data_dir == Path("~/croupier").expanduser()
    assert config.metrics_host_port == ("::1", 0)
    assert config.log_level == "warning" and config.backup_time == "4:05"
    assert config.backups_path == tmp_path
    assert load_config(None, environ={}).backups_path == Path("data") / "backups"


def test_a_data_dir_that_cannot_be_created_or_written_is_refused(tmp_path: Path) -> None:
    """A file in the way, a path under a file, or a directory that takes no file: one line."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    for data_dir, why in [
        (blocker, "not a directory"),
        (blocker / "data", "cannot create it"),
        (Path("/proc"), "cannot write a file in it"),
    ]:
        config = load_config(None, environ={"CROUPIER_DATA_DIR": str(data_dir)})
        with pytest.raises(ConfigError) as caught:
            ensure_paths(config)
        line = str(caught.value)
        assert line.startswith("CROUPIER_DATA_DIR / data_dir: expected a directory") and why in line
    fresh = load_config(None, environ={"CROUPIER_DATA_DIR": str(tmp_path / "a" / "b")})
    ensure_paths(fresh)
    # The directories are made, and the probe leaves nothing behind.
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["backups"]
    assert not list((tmp_path / "a" / "b" / "backups").iterdir())


def test_a_backup_dir_or_log_file_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    """The backup directory and the log file are checked at start like the data dir."""
    data = {"CROUPIER_DATA_DIR": str(tmp_path / "data")}
    (tmp_path / "file").write_text("")
    for key, value, expected in [
        ("backup_dir", str(tmp_path / "file"), "expected a directory"),
        ("log_file", str(tmp_path / "missing" / "croupier.log"), "expected a file"),
        ("log_file", str(tmp_path), "expected a file"),
    ]:
        config = load_config(None, environ={**data, f"CROUPIER_{key.upper()}": value})
        with pytest.raises(ConfigError) as caught:
            ensure_paths(config)
        assert str(caught.value).startswith(f"CROUPIER_{key.upper()} / {key}: {expected}")
    log = tmp_path / "logs" / "croupier.log"
    log.parent.mkdir()
    ensure_paths(load_config(None, environ={**data, "CROUPIER_LOG_FILE": str(log)}))
    assert log.exists()


def test_the_command_line_stops_with_one_line_on_bad_config(tmp_path: Path) -> None:
    """An invalid setting stops `croupier run` with exit 2 and one line naming the key."""
    env = {**os.environ, "CROUPIER_DATA_DIR": str(tmp_path), "CROUPIER_ECONOMY_SCOPE": "moon"}
    done = subprocess.run([CROUPIER, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "croupier: configuration error: CROUPIER_ECONOMY_SCOPE / economy_scope: "
        "expected 'guild' or 'global', got 'moon'"
    ]


def test_the_command_line_refuses_an_unwritable_data_dir(tmp_path: Path) -> None:
    """`croupier console` on a data dir it cannot create stops with exit 2 and one line."""
    (tmp_path / "file").write_text("")
    env = {**os.environ, "CROUPIER_DATA_DIR": str(tmp_path / "file" / "data")}
    done = subprocess.run(
        [CROUPIER, "console"], env=env, capture_output=True, text=True, timeout=60, input=""
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CROUPIER_DATA_DIR / data_dir" in lines[0], done.stderr
