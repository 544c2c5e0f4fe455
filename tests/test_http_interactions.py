"""Discord's HTTP interactions endpoint, served by hypercorn on 127.0.0.1, against the
fake Discord: signed deliveries in, answers in the HTTP response, follow-ups by REST."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from nacl.signing import SigningKey

from bot import CommandSet
from bot.config import ConfigError, load_config
from bot.http import bound_port, open_http_listeners
from bot.http.interactions import InteractionsEndpoint, run_endpoint
from limits import EndpointLimits
from metrics import Metrics, Readiness
from tests.conftest import sample
from tests.fake_discord import GUILD_ID, FakeDiscord
from tests.fake_discord.http_delivery import Delivered, HttpDelivery, signed_headers
from tests.toy_commands import VIP_ROLE_ID, ToyBank

_EPHEMERAL = 1 << 6


@dataclass
class Serving:
    endpoint: InteractionsEndpoint
    delivery: HttpDelivery
    client: httpx.AsyncClient
    readiness: Readiness

    async def deliver(self, payload: Mapping[str, Any], **kwargs: Any) -> Delivered:
        return await self.delivery.deliver(self.client, payload, **kwargs)


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as running:
        yield running


@pytest.fixture
def bank() -> ToyBank:
    return ToyBank()


@pytest.fixture
def commands(bank: ToyBank, metrics: Metrics) -> CommandSet:
    return bank.command_set(metrics)


@asynccontextmanager
async def serving(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics, **limits: Any
) -> AsyncIterator[Serving]:
    """The endpoint on a free port, its commands registered on the fake, until the block
    ends."""
    key = SigningKey.generate()
    readiness = Readiness(metrics)
    listeners = await open_http_listeners("127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound_port(listeners)}/interactions"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as client:
            endpoint = await nursery.start(
                partial(
                    run_endpoint,
                    commands,
                    listeners,
                    public_key_hex=key.verify_key.encode().hex(),
                    api_url=fake.api_url,
                    token="fake-token",
                    metrics=metrics,
                    readiness=readiness,
                    register=True,
                    limits=EndpointLimits(**limits),
                )
            )
            await fake.wait_commands_synced()
            yield Serving(endpoint, HttpDelivery(fake, url, key), client, readiness)
            nursery.cancel_scope.cancel()


def embed(message: Mapping[str, Any]) -> dict[str, Any]:
    [only] = message["embeds"]
    return dict(only)


async def test_signed_command_is_answered_in_the_response(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A signed /pay runs with typed options and is answered in the HTTP response with
    its message, no pings allowed, and no REST call made for it."""
    async with serving(fake, commands, metrics) as running:
        requests_before = len(fake.requests)
        payload = fake.slash_command("pay", {"user": 43, "amount": 30, "reason": "drinks"})
        delivered = await running.deliver(payload)
        assert running.readiness.snapshot().ready
    assert delivered.status == 200
    assert delivered.answer["type"] == 4
    data = delivered.answer["data"]
    assert data["allowed_mentions"] == {"parse": []}
    assert "flags" not in data and data["components"] == []
    assert embed(data) == {
        "title": "Paid",
        "description": "Sent 30 coins to <@43>.",
        "color": 0xD4AF37,
        "fields": [{"name": "Reason", "value": "drinks", "inline": False}],
    }
    assert (bank.balance(42), bank.balance(43)) == (70, 130)
    assert len(fake.requests) == requests_before
    assert sample(metrics, "croupier_discord_interactions_total", type="command") == 1


async def test_commands_are_registered_over_rest(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """Without the gateway the endpoint registers every command with its option types,
    after looking the application id up with the bot token."""
    async with serving(fake, commands, metrics):
        synced = {c["name"]: c for c in await fake.wait_commands_synced()}
        # The fake records a request once it has answered it, after storing the commands.
        requests = await fake.wait_for(
            lambda: found if len(found := fake.requests) >= 2 else None, "two requests"
        )
    assert set(synced) == {c.name for c in commands.commands}
    pay = {o["name"]: o for o in synced["pay"]["options"]}
    assert (pay["user"]["type"], pay["amount"]["type"], pay["amount"]["min_value"]) == (6, 4, 1)
    assert synced["mint"]["default_member_permissions"] == str(1 << 5)
    assert synced["pay"]["contexts"] == [0]
    assert [r.method for r in requests[:2]] == ["GET", "PUT"]
    assert fake.unknown_routes == []


@pytest.mark.parametrize(
    "forgery",
    ["unsigned", "other key", "tampered body", "old signature, new timestamp", "bad hex"],
)
async def test_badly_signed_delivery_is_refused_and_nothing_runs(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics, forgery: str
) -> None:
    """A delivery whose signature does not verify against the public key gets 401 and
    reaches no handler."""
    async with serving(fake, commands, metrics) as running:
        payload = fake.slash_command("pay", {"user": 43, "amount": 30})
        body = json.dumps(payload).encode()
        headers = signed_headers(running.delivery.key, body, "1700000000")
        if forgery == "unsigned":
            headers = {"Content-Type": "application/json"}
        elif forgery == "other key":
            headers = signed_headers(SigningKey.generate(), body)
        elif forgery == "tampered body":
            body = body.replace(b'"value": 30', b'"value": 3000')
        elif forgery == "old signature, new timestamp":
            headers["X-Signature-Timestamp"] = "1700000001"
        else:
            headers["X-Signature-Ed25519"] = "zz" * 64
        delivered = await running.deliver(payload, headers=headers, body=body)
    assert delivered.status == 401
    assert delivered.answer == {"code": "bad_signature", "message": "invalid request signature"}
    assert bank.seen == [] and bank.balance(42) == 100


async def test_ping_gets_pong(fake: FakeDiscord, commands: CommandSet, metrics: Metrics) -> None:
    """Discord's endpoint check, a signed PING, is answered PONG."""
    async with serving(fake, commands, metrics) as running:
        delivered = await running.deliver({"id": "1", "type": 1, "application_id": "2"})
    assert (delivered.status, delivered.answer) == (200, {"type": 1})


async def test_slow_command_is_deferred_then_followed_up(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A command slower than the defer budget is answered type 5 in time; its public
    reply then edits the placeholder, an ephemeral one replaces it with a private
    follow-up, both by REST with the interaction's token."""
    async with serving(fake, commands, metrics, defer_after_seconds=0.05) as running:
        public = fake.slash_command("slow")
        secret = fake.slash_command("slow", {"secret": True})
        deferrals = [await running.deliver(public), await running.deliver(secret)]
        assert [d.answer for d in deferrals] == [{"type": 5}, {"type": 5}]
        bank.slow_release.set()
        public_id, secret_id = int(public["id"]), int(secret["id"])
        edited = await fake.wait_for(
            lambda: m if (m := fake.original_message(public_id)) and m["embeds"] else None,
            "edit of the placeholder",
        )
        [followup] = await fake.wait_for(lambda: fake.followups(secret_id) or None, "follow-up")
        await fake.wait_for(
            lambda: True if fake.original_message(secret_id) is None else None, "deletion"
        )
        patch = await fake.wait_for(
            lambda: [r for r in fake.requests if r.method == "PATCH"] or None, "the PATCH"
        )
    assert embed(edited)["title"] == "Done" and edited["flags"] == 0
    assert embed(followup)["title"] == "Done" and followup["flags"] == _EPHEMERAL
    assert [r.body["allowed_mentions"] for r in patch] == [{"parse": []}]
    assert fake.unknown_routes == []


async def test_button_press_updates_its_message(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A press answers type 7 with the new message for its owner; another member's
    ephemeral refusal is a new message only they see, and the game message stays."""
    async with serving(fake, commands, metrics) as running:
        game = await running.deliver(fake.slash_command("game"))
        buttons = game.answer["data"]["components"][0]["components"]
        assert buttons[0]["custom_id"] == "game:42:hit" and buttons[0]["type"] == 2
        message = fake.original_message(game.interaction_id)
        assert message is not None
        owner = await running.deliver(fake.button_press("game:42:hit", message=message))
        intruder = await running.deliver(
            fake.button_press("game:42:stand", message=message, user_id=43)
        )
    assert owner.answer["type"] == 7
    assert embed(owner.answer["data"])["description"] == "You chose hit."
    assert embed(fake.message(message["id"]))["description"] == "You chose hit."
    assert intruder.answer["type"] == 4
    assert intruder.answer["data"]["flags"] == _EPHEMERAL
    assert embed(intruder.answer["data"])["title"] == "Not your game"
    assert sample(metrics, "croupier_discord_interactions_total", type="button") == 2


async def test_slow_button_press_is_deferred_then_edits_its_message(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A slow press is answered type 6, then its reply edits the message by REST."""
    async with serving(fake, commands, metrics, defer_after_seconds=0.05) as running:
        game = await running.deliver(fake.slash_command("game"))
        message = fake.original_message(game.interaction_id)
        assert message is not None
        deferral = await running.deliver(fake.button_press("game:42:slow", message=message))
        assert deferral.answer == {"type": 6}
        bank.slow_release.set()
        edited = await fake.wait_for(
            lambda: m if "slow" in embed(m := fake.message(message["id"]))["description"] else None,
            "edit of the game message",
        )
    assert embed(edited)["description"] == "You chose slow."


async def test_redelivered_interaction_gets_the_first_answer(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """The same interaction delivered twice, the second while the first still runs,
    runs once and both deliveries get the first answer."""
    async with serving(fake, commands, metrics) as running:
        pay = fake.slash_command("pay", {"user": 43, "amount": 10})
        answers: list[Delivered] = []
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(lambda: _append(answers, running.deliver(pay)))
        again = await running.deliver(pay)
    assert [a.answer for a in answers] == [again.answer, again.answer]
    assert embed(again.answer["data"])["title"] == "Paid"
    assert bank.seen == [int(pay["id"])]
    assert bank.balance(42) == 90


async def _append(into: list[Delivered], delivery: Any) -> None:
    into.append(await delivery)


async def test_oversized_body_is_refused(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A body over the bound is refused 413 before its signature is even checked, with
    or without a Content-Length header."""
    async with serving(fake, commands, metrics, body_bytes_max=4096) as running:
        payload = fake.slash_command("pay", {"user": 43, "amount": 10, "reason": "x" * 20})
        payload["padding"] = "x" * 5000
        declared = await running.deliver(payload)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 1000

        streamed = await running.client.post(
            running.delivery.url, content=chunks(), headers={"X-Signature-Timestamp": "1"}
        )
    assert declared.status == 413 and streamed.status_code == 413
    assert bank.seen == []


async def test_unknown_command_and_button_get_ephemeral_answers(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """A command or a button the server does not know is answered, privately."""
    async with serving(fake, commands, metrics) as running:
        command = fake.slash_command("pay", {"user": 43, "amount": 10})
        command["data"]["name"] = "retired"
        unknown = await running.deliver(command)
        game = await running.deliver(fake.slash_command("game"))
        message = fake.original_message(game.interaction_id)
        assert message is not None
        button = await running.deliver(fake.button_press("lottery:1", message=message))
    for delivered in (unknown, button):
        assert delivered.answer["type"] == 4
        assert delivered.answer["data"]["flags"] == _EPHEMERAL
        assert embed(delivered.answer["data"])["title"] == "That did not work"


async def test_member_permissions_gate_admin_commands(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """Manage Server or Administrator in the member's permissions opens admin commands;
    without them the command is refused and runs nothing."""
    async with serving(fake, commands, metrics) as running:
        refused = await running.deliver(fake.slash_command("mint", {"amount": 5}))
        manager = await running.deliver(
            fake.slash_command("mint", {"amount": 5}, user_id=44, permissions=1 << 5)
        )
        admin = await running.deliver(
            fake.slash_command("mint", {"amount": 5}, user_id=45, permissions=1 << 3)
        )
    assert refused.answer["data"]["flags"] == _EPHEMERAL
    assert (bank.balance(42), bank.balance(44), bank.balance(45)) == (100, 105, 105)
    assert embed(manager.answer["data"])["title"] == embed(admin.answer["data"])["title"]


async def test_bot_recipient_is_resolved_from_the_payload(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A user option is typed from the resolved users Discord sends: paying a bot is
    refused by the command."""
    async with serving(fake, commands, metrics) as running:
        delivered = await running.deliver(
            fake.slash_command("pay", {"user": 77, "amount": 10}, bots=[77])
        )
    assert delivered.answer["data"]["flags"] == _EPHEMERAL
    assert bank.balance(42) == 100


async def test_malformed_interaction_is_answered_not_run(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """A signed payload with an id that is not a snowflake is refused 400; a member id
    out of range gets an ephemeral invalid-input answer; neither runs anything."""
    async with serving(fake, commands, metrics) as running:
        bad_id = fake.slash_command("balance")
        bad_id["id"] = "-5"
        refused = await running.deliver(bad_id)
        bad_user = fake.slash_command("balance")
        bad_user["member"]["user"]["id"] = str(2**64)
        answered = await running.deliver(bad_user)
    assert refused.status == 400 and refused.answer["code"] == "invalid_input"
    assert answered.answer["data"]["flags"] == _EPHEMERAL
    assert "member.user.id" in embed(answered.answer["data"])["description"]
    assert bank.seen == []


async def test_overload_is_answered_busy_before_anything_runs(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """Past ``in_flight_max`` running interactions a delivery is answered "busy" at once
    and its command does not run."""
    async with (
        serving(fake, commands, metrics, in_flight_max=1) as running,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(running.deliver, fake.slash_command("slow"))
        await bank.slow_started.wait()
        busy = await running.deliver(fake.slash_command("pay", {"user": 43, "amount": 10}))
        bank.slow_release.set()
    assert busy.answer["data"]["flags"] == _EPHEMERAL
    assert embed(busy.answer["data"])["description"].startswith("Croupier is very busy")
    assert bank.balance(42) == 100
    assert sample(metrics, "croupier_discord_interactions_total", type="busy") == 1


async def test_reply_grants_roles_through_rest(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """Role ids in a reply are added to the invoking member with the bot token."""
    async with serving(fake, commands, metrics) as running:
        await running.deliver(fake.slash_command("vip", user_id=51))
        grants = await fake.wait_for(lambda: fake.role_grants or None, "role grant")
    assert grants == [(GUILD_ID, 51, VIP_ROLE_ID)]


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"CROUPIER_INTERACTIONS_ADDR": "127.0.0.1:8080"}, "DISCORD_PUBLIC_KEY"),
        (
            {"CROUPIER_INTERACTIONS_ADDR": "127.0.0.1:8080", "CROUPIER_DISCORD_PUBLIC_KEY": "ab"},
            "DISCORD_PUBLIC_KEY",
        ),
        ({"CROUPIER_INTERACTIONS_ADDR": "8080", "CROUPIER_DISCORD_PUBLIC_KEY": "0" * 64}, "ADDR"),
        ({"CROUPIER_DISCORD_GATEWAY": "false"}, "DISCORD_GATEWAY"),
    ],
)
def test_endpoint_configuration_is_checked(environ: dict[str, str], key: str) -> None:
    """The endpoint needs host:port and a 64-hex public key; the gateway can be turned
    off only with the endpoint on."""
    with pytest.raises(ConfigError, match=f"CROUPIER_[A-Z_]*{key}"):
        load_config(environ=environ)


def test_endpoint_configuration_is_read() -> None:
    """A valid endpoint configuration is read as given."""
    config = load_config(
        environ={
            "CROUPIER_INTERACTIONS_ADDR": "0.0.0.0:8443",
            "CROUPIER_DISCORD_PUBLIC_KEY": "Ab" * 32,
            "CROUPIER_DISCORD_GATEWAY": "false",
        }
    )
    assert config.interactions_host_port == ("0.0.0.0", 8443)
    assert not config.discord_gateway


async def test_other_paths_and_methods_are_not_served(
    fake: FakeDiscord, commands: CommandSet, metrics: Metrics
) -> None:
    """Only POST /interactions is served: GET there is 405, any other path 404."""
    async with serving(fake, commands, metrics) as running:
        url = running.delivery.url
        get = await running.client.get(url)
        other = await running.client.post(url.replace("/interactions", "/other"), content=b"{}")
    assert (get.status_code, other.status_code) == (405, 404)


async def test_command_queued_behind_running_ones_is_deferred_in_time(
    fake: FakeDiscord, commands: CommandSet, bank: ToyBank, metrics: Metrics
) -> None:
    """With every command slot taken, a new command waits its turn; when the defer budget
    passes first it is acknowledged with a deferral and answered by REST once it ran."""
    async with (
        serving(fake, commands, metrics, running_max=1, defer_after_seconds=0.05) as running,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(running.deliver, fake.slash_command("slow"))
        await bank.slow_started.wait()
        pay = fake.slash_command("pay", {"user": 43, "amount": 10})
        queued = await running.deliver(pay)
        assert queued.answer == {"type": 5} and bank.balance(42) == 100
        bank.slow_release.set()
        edited = await fake.wait_for(
            lambda: m if (m := fake.original_message(int(pay["id"]))) and m["embeds"] else None,
            "edit of the placeholder",
        )
    assert embed(edited)["title"] == "Paid"
    assert bank.balance(42) == 90


async def test_a_role_above_the_bot_is_not_used_up_through_the_endpoint(
    tmp_path: Path, metrics: Metrics
) -> None:
    """Through the HTTP endpoint too, /use of an item whose role Discord refuses (403)
    keeps the item and says why; an item whose role is granted is used."""
    from bot.commands import build_command_set
    from limits import RateLimit
    from tests.economy_fixtures import running_economy
    from tests.fake_discord import BOT_ROLE_POSITION

    above, below = 901, 902
    roles = {above: BOT_ROLE_POSITION + 5, below: BOT_ROLE_POSITION - 5}
    async with running_economy(tmp_path) as eco:
        commands = build_command_set(
            economy=eco.economy, metrics=eco.metrics, rate_limit=RateLimit(burst_commands=1000)
        )
        for name, role in (("Crown", above), ("Pass", below)):
            await eco.economy.create_item(GUILD_ID, name=name, price=5, role_id=role)
        with FakeDiscord(roles=roles) as fake:
            async with serving(fake, commands, eco.metrics) as running:
                for item in ("Crown", "Pass"):
                    await running.deliver(fake.slash_command("buy", {"item": item}))
                refused = await running.deliver(fake.slash_command("use", {"item": "Crown"}))
                used = await running.deliver(fake.slash_command("use", {"item": "Pass"}))
            grants = fake.role_grants
        owned = {line.item.name: line.count for line in eco.economy.inventory(GUILD_ID, 42)}
    assert refused.answer["data"]["flags"] == _EPHEMERAL
    assert "nothing was used up" in embed(refused.answer["data"])["description"]
    assert embed(used.answer["data"])["title"] == "Item used"
    assert owned == {"Crown": 1}
    assert grants == [(GUILD_ID, 42, below)]
