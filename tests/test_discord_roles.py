"""Shop items whose role the bot cannot grant, through the real economy and the Discord
transport against the fake Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import CommandSet
from bot.commands import build_command_set
from limits import RateLimit
from metrics import Metrics
from tests.economy_fixtures import Running, running_economy
from tests.fake_discord import BOT_ROLE_POSITION, GUILD_ID, FakeDiscord
from tests.support.discord import embed, serving

MEMBER, ADMIN = 42, 7
_MANAGE_GUILD = 1 << 5
_EPHEMERAL = 1 << 6
ROLE_ABOVE, ROLE_BELOW, ROLE_LATER = 801, 802, 803


@pytest.fixture
async def eco(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_economy(tmp_path) as running:
        yield running


@pytest.fixture
def commands(eco: Running) -> CommandSet:
    return build_command_set(
        economy=eco.economy, metrics=eco.metrics, rate_limit=RateLimit(burst_commands=1000)
    )


async def ask(
    fake: FakeDiscord, name: str, options: dict[str, Any], *, user: int = MEMBER
) -> dict[str, Any]:
    """Send one command and return the message data of its answer."""
    permissions = _MANAGE_GUILD if user == ADMIN else 0
    interaction = fake.send_interaction(
        fake.slash_command(name, options, user_id=user, permissions=permissions)
    )
    [callback] = await fake.wait_callbacks(interaction)
    return dict(callback.data)


def holds(eco: Running, name: str) -> int:
    lines = eco.economy.inventory(GUILD_ID, MEMBER)
    return sum(line.count for line in lines if line.item.name == name)


async def test_a_role_above_the_bot_warns_the_admin_and_is_not_used_up(
    eco: Running, commands: CommandSet, metrics: Metrics
) -> None:
    """Creating an item whose role sits above the bot's warns the admin; /use of it is
    refused with the reason and keeps the item; a role below is granted and the item used."""
    roles = {ROLE_ABOVE: BOT_ROLE_POSITION + 5, ROLE_BELOW: BOT_ROLE_POSITION - 5}
    with FakeDiscord(roles=roles) as fake:
        async with serving(fake, commands, metrics):
            await fake.wait_commands_synced()
            high = await ask(
                fake, "shop-add", {"name": "Crown", "price": 5, "role": str(ROLE_ABOVE)}, user=ADMIN
            )
            low = await ask(
                fake, "shop-add", {"name": "Pass", "price": 5, "role": str(ROLE_BELOW)}, user=ADMIN
            )
            for item in ("Crown", "Pass"):
                assert embed(await ask(fake, "buy", {"item": item}))["title"] == "Bought"
            refused = await ask(fake, "use", {"item": "Crown"})
            used = await ask(fake, "use", {"item": "Pass"})
    warnings = [f["value"] for f in embed(high).get("fields", []) if f["name"] == "Warning"]
    assert len(warnings) == 1 and f"<@&{ROLE_ABOVE}>" in warnings[0]
    assert all(f["name"] != "Warning" for f in embed(low).get("fields", []))
    assert refused.get("flags") == _EPHEMERAL
    assert "nothing was used up" in embed(refused)["description"]
    assert embed(used)["title"] == "Item used"
    assert (holds(eco, "Crown"), holds(eco, "Pass")) == (1, 0)
    assert fake.role_grants == [(GUILD_ID, MEMBER, ROLE_BELOW)]
    assert not any(r.path.endswith(f"/roles/{ROLE_ABOVE}") for r in fake.requests)


async def test_a_403_on_the_grant_keeps_the_item(
    eco: Running, commands: CommandSet, metrics: Metrics
) -> None:
    """A role the bot's cache does not know, which Discord then refuses with 403, leaves
    the item unused and tells the member why."""
    with FakeDiscord() as fake:
        async with serving(fake, commands, metrics):
            await fake.wait_commands_synced()
            await ask(
                fake, "shop-add", {"name": "Key", "price": 5, "role": str(ROLE_LATER)}, user=ADMIN
            )
            await ask(fake, "buy", {"item": "Key"})
            # The role is created above the bot after the bot joined the guild.
            fake.roles = {ROLE_LATER: BOT_ROLE_POSITION + 1}
            refused = await ask(fake, "use", {"item": "Key"})
        puts = [r for r in fake.requests if r.path.endswith(f"/roles/{ROLE_LATER}")]
    assert [r.status for r in puts] == [403]
    assert embed(refused)["title"] == "That did not work"
    assert "nothing was used up" in embed(refused)["description"]
    assert holds(eco, "Key") == 1
    assert fake.role_grants == []
