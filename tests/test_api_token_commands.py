"""/api-token-create, -list and -revoke: Manage Server only, the secret shown once and
kept nowhere, revocation at once, and each change in the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors import ApiTokens, AuditLog
from actors.api_tokens import token_hash
from bot import CommandSet
from bot.commands import build_command_set
from limits import RateLimit
from tests.economy_fixtures import Running, running_economy
from tests.support.invoke import refused, run

ADMIN, MEMBER = 7, 42


@pytest.fixture
async def eco(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_economy(tmp_path) as running:
        yield running


@pytest.fixture
def commands(eco: Running) -> CommandSet:
    return build_command_set(
        economy=eco.economy, metrics=eco.metrics, rate_limit=RateLimit(burst_commands=1_000)
    )


def every_stored_byte(eco: Running) -> bytes:
    """Every key and value of every sub-database, concatenated."""
    found = bytearray()
    with eco.store.read() as txn:
        for db in eco.store.dbs.values():
            for key, value in txn.cursor(db=db):
                found += bytes(key) + bytes(value)
    return bytes(found)


async def test_a_token_is_shown_once_and_stored_only_as_its_hash(
    commands: CommandSet, eco: Running
) -> None:
    """The reply (ephemeral) holds the secret; no sub-database holds it, and a
    redelivery of the interaction does not show it again nor make a second token."""
    created = await run(
        commands, "api-token-create", by=ADMIN, admin=True, interaction=5, name="ci", scope="write"
    )
    assert created.error_code is None and created.ephemeral
    secret = created.result["token"]
    assert secret.startswith("crp_") and secret in created.description
    tokens = ApiTokens(eco.store, eco.clock)
    found = tokens.authenticate(secret)
    assert found is not None and (found.name, found.scope, found.guild) == ("ci", "write", 1)
    stored = every_stored_byte(eco)
    assert secret.encode() not in stored and token_hash(secret) in stored

    again = await run(
        commands, "api-token-create", by=ADMIN, admin=True, interaction=5, name="ci", scope="write"
    )
    assert again.title == "Token already created" and "token" not in again.result
    assert secret not in again.description
    assert [t.name for t in tokens.of_guild(1)] == ["ci"]


async def test_list_and_revoke_by_name_or_id(commands: CommandSet, eco: Running) -> None:
    """The list shows every token; a revoked token stops working at once."""
    made = {}
    for name, scope in (("reader", "read"), ("writer", "write")):
        reply = await run(
            commands, "api-token-create", by=ADMIN, admin=True, name=name, scope=scope
        )
        made[name] = reply.result
    listed = await run(commands, "api-token-list", by=ADMIN, admin=True)
    assert sorted(t["name"] for t in listed.result["tokens"]) == ["reader", "writer"]
    assert all("token" not in t for t in listed.result["tokens"])

    by_id = await run(
        commands, "api-token-revoke", by=ADMIN, admin=True, token=made["reader"]["id"]
    )
    by_name = await run(commands, "api-token-revoke", by=ADMIN, admin=True, token="WRITER")
    gone = await run(commands, "api-token-revoke", by=ADMIN, admin=True, token="writer")

    assert (by_id.result["name"], by_name.result["name"]) == ("reader", "writer")
    assert refused(gone) == "not_found"
    tokens = ApiTokens(eco.store, eco.clock)
    assert tokens.of_guild(1) == []
    assert tokens.authenticate(made["writer"]["token"]) is None
    actions = [e.action for e in AuditLog(eco.store, eco.clock).page(1).entries]
    assert actions == ["token.revoke", "token.revoke", "token.create", "token.create"]


async def test_token_commands_need_manage_server_and_good_options(commands: CommandSet) -> None:
    """Members without Manage Server are refused; names, scopes and duplicates are checked."""
    for command, options in (
        ("api-token-create", {"name": "x", "scope": "read"}),
        ("api-token-list", {}),
        ("api-token-revoke", {"token": "x"}),
    ):
        assert refused(await run(commands, command, by=MEMBER, **options)) == "not_permitted"
    admin = {"by": ADMIN, "admin": True}
    assert refused(await run(commands, "api-token-create", **admin, name="x", scope="all")) == (
        "invalid_input"
    )
    assert refused(await run(commands, "api-token-create", **admin, name="-x", scope="read")) == (
        "invalid_input"
    )
    await run(commands, "api-token-create", **admin, name="dup", scope="read")
    duplicate = await run(commands, "api-token-create", **admin, name="DUP", scope="write")
    assert refused(duplicate) == "invalid_input"
    assert refused(await run(commands, "api-token-list", **admin, guild=0)) == "guild_only"
