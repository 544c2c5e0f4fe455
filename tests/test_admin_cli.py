"""Operator commands through the real command line: check, migrate, --help, --version."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import lmdb
import pytest

from actors import keys
from actors.records import WALLET
from bot.cli import EXIT_BROKEN_PIPE
from storage import MIGRATIONS
from tests.economy_fixtures import running_economy
from tests.support.server_process import CROUPIER


def croupier(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CROUPIER_DATA_DIR": str(data_dir)}
    return subprocess.run([CROUPIER, *args], env=env, capture_output=True, text=True, timeout=60)


def bare_store(data: Path) -> None:
    """An LMDB environment with no schema yet, as the oldest stores are."""
    (data / "lmdb").mkdir(parents=True)
    lmdb.open(str(data / "lmdb"), max_dbs=64).close()


async def test_check_passes_then_names_a_violation(tmp_path: Path) -> None:
    """`croupier check` exits 0 on a sound store and 1, naming the checks, on a tampered one."""
    data = tmp_path / "data"
    async with running_economy(data) as eco:
        await eco.economy.pay(1, 42, 43, 30, "p1")
        await eco.economy.reward(1, 42, "daily", "d1")
    good = croupier("check", data_dir=data)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "integrity: OK" in good.stdout
    report = json.loads(croupier("check", "--json", data_dir=data).stdout)
    assert report["ok"] and report["figures"]["wallets"] == 2

    env = lmdb.open(str(data / "lmdb"), max_dbs=64)
    wallets = env.open_db(b"wallets")
    with env.begin(write=True) as txn:
        key = keys.wallet_key(1, 43)
        record = WALLET.decode(txn.get(key, db=wallets))
        txn.put(
            key, WALLET.encode(dataclasses.replace(record, balance=record.balance + 5)), db=wallets
        )
    env.close()
    bad = croupier("check", data_dir=data)
    assert bad.returncode == 1
    assert "VIOLATIONS FOUND" in bad.stdout
    assert "money_sums_to_zero" in bad.stdout and "scope 1: accounts sum to 5" in bad.stdout
    assert "leaderboard_matches" in bad.stdout


def test_migrate_help_and_version(tmp_path: Path) -> None:
    """migrate applies once then reports nothing to do; --help lists every subcommand."""
    data = tmp_path / "data"
    bare_store(data)
    first = croupier("migrate", data_dir=data)
    assert first.returncode == 0
    assert f"applied {len(MIGRATIONS)} migration" in first.stdout
    again = croupier("migrate", data_dir=data)
    assert "up to date" in again.stdout
    helptext = croupier("--help", data_dir=data).stdout
    for name in ("run", "console", "check", "migrate", "backup", "bench"):
        assert name in helptext
    assert croupier("--version", data_dir=data).stdout.startswith("croupier ")


@pytest.mark.parametrize("command", ["check", "migrate"])
def test_a_data_dir_without_a_store_is_refused_not_created(tmp_path: Path, command: str) -> None:
    """check and migrate on a data dir that holds no store say so and create nothing."""
    data = tmp_path / "empty"
    data.mkdir()
    result = croupier(command, data_dir=data)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == f"croupier: no LMDB store at {data / 'lmdb'}"
    assert result.stdout == ""
    assert list(data.iterdir()) == []


@pytest.mark.parametrize("args", [("check",), ("check", "--json"), ("backup", "list")])
def test_a_reader_that_goes_away_ends_the_command_quietly(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A command whose reader has gone ends quietly, with a closed pipe's exit status."""
    data = tmp_path / "data"
    bare_store(data)
    assert croupier("migrate", data_dir=data).returncode == 0
    read_end, write_end = os.pipe()
    # The reader is gone before the command writes a byte, the surest way to hit EPIPE.
    os.close(read_end)
    env = {**os.environ, "CROUPIER_DATA_DIR": str(data)}
    with subprocess.Popen(
        [CROUPIER, *args], env=env, stdout=write_end, stderr=subprocess.PIPE, text=True
    ) as process:
        os.close(write_end)
        _, stderr = process.communicate(timeout=60)
    assert stderr == ""
    assert process.returncode == EXIT_BROKEN_PIPE


def test_check_piped_into_head_prints_its_first_line_only(tmp_path: Path) -> None:
    """The shell pipeline of the issue, as written: one line out, nothing on stderr."""
    data = tmp_path / "data"
    bare_store(data)
    assert croupier("migrate", data_dir=data).returncode == 0
    env = {**os.environ, "CROUPIER_DATA_DIR": str(data)}
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{CROUPIER}' check | head -1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "integrity: OK\n"
    assert done.stderr == ""


def test_check_on_a_missing_store_is_one_clear_line(tmp_path: Path) -> None:
    """Checking a data dir with no store fails with one line, not a traceback."""
    result = croupier("check", data_dir=tmp_path / "nothing")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("croupier: no LMDB store at")
    assert len(result.stderr.strip().splitlines()) == 1
