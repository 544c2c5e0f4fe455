"""Sharding: the configuration keys, and shards identified the way Discord requires."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import CommandSet
from bot.config import ConfigError, load_config
from metrics import Metrics
from tests.fake_discord import GUILD_ID, FakeDiscord
from tests.support.discord import embed, serving
from tests.toy_commands import ToyBank

# Guilds on shards 0 to 3 by Discord's formula, (guild_id >> 22) % shards.
_GUILD_BASE = ((GUILD_ID >> 22) // 4 * 4) << 22
_GUILDS = tuple(_GUILD_BASE + (n << 22) + 3 for n in range(4))
_interval_seconds = 0.3


def test_shard_keys_default_to_discords_count_and_every_shard() -> None:
    """Without the keys, the count comes from Discord and the process runs every shard."""
    config = load_config(environ={})
    assert (config.discord_shard_count, config.discord_shard_id_list) == (None, None)


def test_shard_keys_from_environment_and_file(tmp_path: Path) -> None:
    """A count and ids read the same from the environment and from the file."""
    config = load_config(
        environ={"CROUPIER_DISCORD_SHARDS": "4", "CROUPIER_DISCORD_SHARD_IDS": "0,2"}
    )
    assert (config.discord_shard_count, config.discord_shard_id_list) == (4, (0, 2))
    file = tmp_path / "croupier.toml"
    file.write_text('[discord]\nshards = "3"\nshard_ids = "1,2"\n')
    config = load_config(file, environ={})
    assert (config.discord_shard_count, config.discord_shard_id_list) == (3, (1, 2))


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CROUPIER_DISCORD_SHARDS": "0"}, "CROUPIER_DISCORD_SHARDS"),
        ({"CROUPIER_DISCORD_SHARDS": "many"}, "CROUPIER_DISCORD_SHARDS"),
        ({"CROUPIER_DISCORD_SHARD_IDS": "1;2"}, "CROUPIER_DISCORD_SHARD_IDS"),
        ({"CROUPIER_DISCORD_SHARD_IDS": "1"}, "CROUPIER_DISCORD_SHARD_IDS"),
        (
            {"CROUPIER_DISCORD_SHARDS": "2", "CROUPIER_DISCORD_SHARD_IDS": "1,2"},
            "CROUPIER_DISCORD_SHARD_IDS",
        ),
        (
            {"CROUPIER_DISCORD_SHARDS": "2", "CROUPIER_DISCORD_SHARD_IDS": "1,1"},
            "CROUPIER_DISCORD_SHARD_IDS",
        ),
    ],
)
def test_bad_shard_keys_stop_with_one_line(environ: dict[str, str], named: str) -> None:
    """A count below 1 or not a number, ids not a list, ids without a count, ids past the
    count or repeated: each stops start-up with one line naming the key."""
    with pytest.raises(ConfigError) as refused:
        load_config(environ=environ)
    message = str(refused.value)
    assert message.startswith(named) and "\n" not in message


async def test_two_shards_are_identified_in_order_and_both_serve(metrics: Metrics) -> None:
    """With Discord's recommended two shards and a max_concurrency of 1, shard 0 is
    identified first, shard 1 an identify interval later, and each serves its guild."""
    bank = ToyBank()
    commands = bank.command_set(metrics)
    with FakeDiscord(
        shards=2,
        max_concurrency=1,
        identify_interval_seconds=_interval_seconds,
        guild_ids=_GUILDS[:2],
    ) as fake:
        async with serving(
            fake, commands, metrics, identify_interval_seconds=_interval_seconds
        ) as running:
            assert running.connections == [True]
            await fake.wait_commands_synced()
            answers = {}
            for guild in _GUILDS[:2]:
                payload = fake.slash_command("balance", guild_id=guild)
                answers[fake.shard_of(guild)] = fake.send_interaction(payload)
            replies = {s: (await fake.wait_callbacks(i))[0] for s, i in answers.items()}
        identifies = fake.identifies
    assert [(i.shard_id, i.shard_count, i.accepted) for i in identifies] == [
        (0, 2, True),
        (1, 2, True),
    ]
    assert identifies[1].at - identifies[0].at >= _interval_seconds
    assert set(replies) == {0, 1}
    assert all(embed(r.data)["title"] == "Balance" for r in replies.values())


async def test_chosen_shards_identify_in_waves_of_one_per_bucket(
    commands: CommandSet, metrics: Metrics
) -> None:
    """A process running shards 1, 2 and 3 of 4 with max_concurrency 2 identifies one
    shard of each bucket at a time: 1 and 2 together, then 3 an interval later."""
    with FakeDiscord(
        shards=4, max_concurrency=2, identify_interval_seconds=_interval_seconds, guild_ids=_GUILDS
    ) as fake:
        async with serving(
            fake,
            commands,
            metrics,
            shards=4,
            shard_ids=(1, 2, 3),
            identify_interval_seconds=_interval_seconds,
        ):
            await fake.wait_commands_synced()
            guild = _GUILDS[3]
            assert fake.shard_of(guild) == 3
            balance = fake.send_interaction(fake.slash_command("balance", guild_id=guild))
            await fake.wait_callbacks(balance)
        identifies = fake.identifies
    assert all(i.accepted and i.shard_count == 4 for i in identifies)
    first, second, third = identifies
    assert {first.shard_id, second.shard_id} == {1, 2} and third.shard_id == 3
    assert third.at - max(first.at, second.at) >= _interval_seconds


@pytest.fixture
def commands(metrics: Metrics) -> CommandSet:
    return ToyBank().command_set(metrics)


async def test_a_bot_in_more_than_2500_guilds_connects_on_the_recommended_shards(
    commands: CommandSet, metrics: Metrics
) -> None:
    """Discord refuses one shard more than 2,500 guilds (4011); with the shard count
    Discord recommends, a bot in 2,600 guilds connects and serves each shard's guilds."""
    guilds = tuple(_GUILD_BASE + (n << 22) + 3 for n in range(2600))
    # Discord's heartbeat interval: the fake's quick one would have a client busy with
    # 2,600 GUILD_CREATEs taken for a dead connection.
    with FakeDiscord(shards=2, guild_ids=guilds, heartbeat_interval_ms=41_250) as fake:
        async with serving(fake, commands, metrics):
            await fake.wait_commands_synced()
            last = guilds[-1]
            balance = fake.send_interaction(fake.slash_command("balance", guild_id=last))
            await fake.wait_callbacks(balance)
        identifies = fake.identifies
    assert sorted((i.shard_id, i.accepted) for i in identifies) == [(0, True), (1, True)]
