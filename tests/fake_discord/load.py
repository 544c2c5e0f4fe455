"""The Discord side of ``croupier bench discord``, run as a process of its own.

``python -m tests.fake_discord.load`` starts a fake Discord (REST and gateway on
127.0.0.1) and signs deliveries with a fresh Ed25519 key; it prints one JSON line with
the fake's API URL and the public key, then takes one JSON request per line on stdin and
answers each with one JSON line on stdout. Keeping it out of the server's process means
the server is measured without its load generator in the same interpreter.

Requests: ``{"op": "setup", "url": ...}`` (the endpoint's URL; waits for the commands
to be registered, then makes the admin settings the load needs), ``{"op": "burst",
"count": n, "members": m}`` (n interactions at once), ``{"op": "paced", "rate": r,
"seconds": s, "members": m}`` (r a second, open loop), ``{"op": "quit"}``.

The load is a mix from many members: balance, daily, pay, coinflip and blackjack, each
blackjack followed by a press of its "stand" button while the hand is live. An
interaction is acknowledged when the endpoint's HTTP answer is a callback (a message, an
update or a deferral); its latency runs from the moment it was due to be sent, so a
late load generator counts against the figures rather than hiding queueing. A deferred
interaction is lost unless its follow-up reaches the fake.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nacl.signing import SigningKey

from tests.fake_discord.http_delivery import signed_headers
from tests.fake_discord.server import FakeDiscord

ACK_DEADLINE_SECONDS = 3.0
# The follow-up of a deferred interaction must reach the fake within this after the load.
FOLLOW_UP_WAIT_SECONDS = 20.0
CLIENT_CONNECTIONS_MAX = 1_000
REQUEST_TIMEOUT_SECONDS = 15.0
ADMIN_ID = 1
HEARTBEAT_INTERVAL_MS = 41_250
# How the server's overload answer begins (bot.http.interactions).
BUSY_PREFIX = "Croupier is very busy"
MEMBER_ID_FIRST = 10_000
MIX = (
    "balance",
    "pay",
    "coinflip",
    "blackjack",
    "daily",
    "balance",
    "pay",
    "coinflip",
    "blackjack",
    "balance",
)
_DISCORD_EPOCH_MS = 1_420_070_400_000
_CALLBACK_TYPES = (4, 5, 6, 7)
_DEFERRED_TYPES = (5, 6)
_MANAGE_GUILD = 1 << 5


@dataclass
class Outcome:
    kind: str
    latency_seconds: float | None
    answer_type: int | None
    error: str = ""


@dataclass
class Phase:
    outcomes: list[Outcome] = field(default_factory=list)
    deferred_tokens: list[str] = field(default_factory=list)
    send_lag_seconds: list[float] = field(default_factory=list)
    cpu_started: float = 0.0
    # From the first interaction due to the last one sent.
    sending_seconds: float = 0.0


class Load:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.key = SigningKey.generate()
        self.url = ""
        self._sequence = itertools.count(1)
        self._template: dict[str, Any] = {}
        self._command_ids: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None

    # Payloads, built from one template so that building them costs little.

    def _snowflake(self) -> int:
        now_ms = int(time.time() * 1000) - _DISCORD_EPOCH_MS
        return (now_ms << 22) | (next(self._sequence) & 0x3FFFFF)

    def _interaction(self, kind: int, data: dict[str, Any], user_id: int) -> dict[str, Any]:
        interaction_id = self._snowflake()
        payload = dict(self._template)
        member = dict(payload["member"])
        member["user"] = {**member["user"], "id": str(user_id)}
        if user_id == ADMIN_ID:
            member["permissions"] = str(_MANAGE_GUILD)
        payload.update(
            id=str(interaction_id),
            token=f"token-{interaction_id}",
            type=kind,
            data=data,
            member=member,
        )
        return payload

    def command(self, name: str, user_id: int, **options: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self._command_ids[name], "name": name, "type": 1}
        listed = []
        for key, value in options.items():
            if key == "user":
                user = {**self._template["member"]["user"], "id": str(value)}
                data["resolved"] = {"users": {str(value): user}}
                listed.append({"name": key, "type": 6, "value": str(value)})
            else:
                kind = 4 if isinstance(value, int) else 3
                listed.append({"name": key, "type": kind, "value": value})
        if listed:
            data["options"] = listed
        return self._interaction(2, data, user_id)

    def press(self, custom_id: str, user_id: int, message: dict[str, Any]) -> dict[str, Any]:
        payload = self._interaction(3, {"custom_id": custom_id, "component_type": 2}, user_id)
        payload["message"] = message
        return payload

    def action(self, index: int, members: int) -> tuple[str, dict[str, Any]]:
        kind = MIX[index % len(MIX)]
        member = MEMBER_ID_FIRST + (index * 7919) % members
        if kind == "pay":
            target = MEMBER_ID_FIRST + (index * 7919 + 1) % members
            return kind, self.command("pay", member, user=target, amount=1)
        if kind == "coinflip":
            return kind, self.command("coinflip", member, stake=1, choice="heads")
        if kind == "blackjack":
            return kind, self.command("blackjack", member, stake=1)
        return kind, self.command(kind, member)

    # Delivering.

    async def deliver(self, payload: dict[str, Any], due: float, phase: Phase, kind: str) -> Any:
        assert self._session is not None
        body = json.dumps(payload).encode()
        phase.send_lag_seconds.append(time.perf_counter() - due)
        try:
            async with self._session.post(
                self.url, data=body, headers=signed_headers(self.key, body)
            ) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            phase.outcomes.append(Outcome(kind, None, None, type(exc).__name__))
            return None
        latency = time.perf_counter() - due
        answer_type = answer.get("type") if isinstance(answer, dict) else None
        if status != 200 or answer_type not in _CALLBACK_TYPES:
            phase.outcomes.append(Outcome(kind, None, None, f"http {status}"))
            return None
        if answer_type == 4 and _is_busy(answer):
            # Answered, but nothing was done: the server shed the load.
            phase.outcomes.append(Outcome(kind, None, answer_type, "busy"))
            return None
        phase.outcomes.append(Outcome(kind, latency, answer_type))
        # An answer is applied to the fake only where a later request needs it: a
        # deferral's follow-up edits it, a blackjack press updates the message of its
        # start. Applying every answer would make the fake's bookkeeping, in this
        # process, the bottleneck of the load rather than the server.
        if answer_type in _DEFERRED_TYPES or kind == "blackjack":
            self.fake.take_http_answer(payload, answer)
        if answer_type in _DEFERRED_TYPES:
            phase.deferred_tokens.append(payload["token"])
        return answer

    async def play(self, index: int, members: int, due: float, phase: Phase) -> None:
        kind, payload = self.action(index, members)
        answer = await self.deliver(payload, due, phase, kind)
        if kind != "blackjack" or answer is None or answer["type"] != 4:
            return
        stand = _stand_button(answer["data"])
        if stand is None:
            return
        message = self.fake.original_message(int(payload["id"]))
        assert message is not None
        user_id = int(payload["member"]["user"]["id"])
        press = self.press(stand, user_id, message)
        await self.deliver(press, time.perf_counter(), phase, "blackjack-stand")

    # Requests from the bench.

    async def _wait_synced(self) -> None:
        deadline = time.monotonic() + 60
        while not self.fake.commands():
            if time.monotonic() > deadline:
                raise RuntimeError("the server never registered its commands")
            await asyncio.sleep(0.05)
        synced = {c["name"]: c for c in self.fake.commands()}
        self._command_ids = {name: c["id"] for name, c in synced.items()}
        self._template = self.fake.slash_command("balance", user_id=ADMIN_ID)

    async def setup(self, url: str) -> dict[str, Any]:
        self.url = url
        await self._wait_synced()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS_MAX),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
        )
        phase = Phase()
        setting = self.command(
            "economy-config", ADMIN_ID, setting="game_cooldown_seconds", value="0"
        )
        answer = await self.deliver(setting, time.perf_counter(), phase, "setup")
        if answer is None or answer["data"].get("flags"):
            raise RuntimeError(f"the admin setting was refused: {answer}")
        return {"commands": len(self._command_ids)}

    async def burst(self, count: int, members: int) -> dict[str, Any]:
        phase = Phase()
        phase.cpu_started = _cpu_seconds()
        requests_before = len(self.fake.requests)
        due = time.perf_counter()
        await asyncio.gather(*(self.play(i, members, due, phase) for i in range(count)))
        return await self._report(phase, requests_before, time.perf_counter() - due)

    async def paced(self, rate: float, seconds: float, members: int, offset: int) -> dict[str, Any]:
        phase = Phase()
        phase.cpu_started = _cpu_seconds()
        requests_before = len(self.fake.requests)
        count = int(rate * seconds)
        started = time.perf_counter() + 0.05
        tasks = []
        for i in range(count):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.play(offset + i, members, due, phase)))
        phase.sending_seconds = time.perf_counter() - started
        await asyncio.gather(*tasks)
        return await self._report(phase, requests_before, time.perf_counter() - started)

    async def _report(self, phase: Phase, requests_before: int, seconds: float) -> dict[str, Any]:
        cpu_seconds = _cpu_seconds() - phase.cpu_started
        followed_up = await self._followed_up(phase.deferred_tokens)
        outcomes = phase.outcomes
        latencies = sorted(o.latency_seconds for o in outcomes if o.latency_seconds is not None)
        acked = sum(1 for latency in latencies if latency <= ACK_DEADLINE_SECONDS)
        lost = len(outcomes) - acked + len(phase.deferred_tokens) - followed_up
        lags = sorted(phase.send_lag_seconds)
        return {
            "interactions": len(outcomes),
            "acked_within_3s": acked,
            "lost": lost,
            "deferred": len(phase.deferred_tokens),
            "followed_up": followed_up,
            "seconds": seconds,
            "sending_seconds": phase.sending_seconds or seconds,
            "ack_p50_ms": _quantile(latencies, 0.5) * 1000,
            "ack_p99_ms": _quantile(latencies, 0.99) * 1000,
            "ack_max_ms": (latencies[-1] if latencies else 0.0) * 1000,
            "send_lag_p99_ms": _quantile(lags, 0.99) * 1000,
            # This process's own CPU per interaction: the load generator's cost.
            "client_cpu_ms_per_interaction": cpu_seconds * 1000 / max(1, len(outcomes)),
            "discord_requests": len(self.fake.requests) - requests_before,
            "kinds": dict(Counter(o.kind for o in outcomes)),
            "errors": dict(Counter(o.error for o in outcomes if o.error)),
        }

    async def _followed_up(self, tokens: list[str]) -> int:
        """How many deferred interactions saw their follow-up (an edit, a deletion or a
        follow-up message on their token), waiting a bounded time for them."""
        waiting = set(tokens)
        deadline = time.monotonic() + FOLLOW_UP_WAIT_SECONDS
        while waiting and time.monotonic() < deadline:
            for request in self.fake.requests:
                parts = request.path.split("/")
                if len(parts) > 3 and parts[1] == "webhooks":
                    waiting.discard(parts[3])
            if waiting:
                await asyncio.sleep(0.2)
        return len(tokens) - len(waiting)

    # The gateway: the same load pushed as INTERACTION_CREATE events; the fake times each
    # interaction from its sending to its accepted initial callback.

    async def gateway_setup(self) -> dict[str, Any]:
        """Called once the server reports ready, which it does only with the gateway
        connected and the commands synced."""
        if not any(i.accepted for i in self.fake.identifies):
            raise RuntimeError("the server is ready but never identified on the gateway")
        await self._wait_synced()
        setting = self.command(
            "economy-config", ADMIN_ID, setting="game_cooldown_seconds", value="0"
        )
        report = await self._gateway_setting(setting)
        if report["acked_within_3s"] != 1:
            raise RuntimeError(f"the admin setting was not answered: {report}")
        return {"commands": len(self._command_ids)}

    async def _gateway_setting(self, setting: dict[str, Any]) -> dict[str, Any]:
        phase = Phase(cpu_started=_cpu_seconds())
        requests_before = len(self.fake.requests)
        started = time.perf_counter()
        self.fake.send_interactions([setting])
        acknowledged = await self._gateway_acknowledged({int(setting["id"])}, started)
        elapsed = acknowledged.get(int(setting["id"]))
        phase.outcomes.append(Outcome("setup", elapsed, None, "" if elapsed else "unanswered"))
        return await self._report(phase, requests_before, time.perf_counter() - started)

    async def gateway_burst(self, count: int, members: int) -> dict[str, Any]:
        due = time.perf_counter()
        return await self._gateway_run([(due, i) for i in range(count)], members)

    async def gateway_paced(
        self, rate: float, seconds: float, members: int, offset: int
    ) -> dict[str, Any]:
        started = time.perf_counter() + 0.05
        planned = [(started + i / rate, offset + i) for i in range(int(rate * seconds))]
        return await self._gateway_run(planned, members)

    async def _gateway_run(self, planned: list[tuple[float, int]], members: int) -> dict[str, Any]:
        """Send ``planned`` (due time, action index) on time, each payload built as it is
        sent (the transport dates an interaction by its id, as Discord does); press
        "stand" on every live blackjack hand as its answer arrives, then report once
        every interaction has been acknowledged or is past the deadline."""
        phase = Phase(cpu_started=_cpu_seconds())
        requests_before = len(self.fake.requests)
        kinds: dict[int, str] = {}
        blackjack: dict[int, int] = {}
        started = time.perf_counter()
        seen_callbacks = len(self.fake.all_callbacks)
        next_index = 0
        last_sent = started
        while True:
            now = time.perf_counter()
            batch = []
            while next_index < len(planned) and planned[next_index][0] <= now:
                due, index = planned[next_index]
                kind, payload = self.action(index, members)
                phase.send_lag_seconds.append(now - due)
                kinds[int(payload["id"])] = kind
                if kind == "blackjack":
                    blackjack[int(payload["id"])] = int(payload["member"]["user"]["id"])
                batch.append(payload)
                next_index += 1
            callbacks = self.fake.all_callbacks[seen_callbacks:]
            seen_callbacks += len(callbacks)
            for callback in callbacks:
                user_id = blackjack.pop(callback.interaction_id, None)
                stand = _stand_button(callback.data) if callback.accepted else None
                if user_id is None or callback.type != 4 or stand is None:
                    continue
                message = self.fake.original_message(callback.interaction_id)
                assert message is not None
                press = self.press(stand, user_id, message)
                kinds[int(press["id"])] = "blackjack-stand"
                batch.append(press)
            if next_index == len(planned) and not phase.sending_seconds:
                phase.sending_seconds = time.perf_counter() - planned[0][0]
            if batch:
                try:
                    self.fake.send_interactions(batch)
                except AssertionError:
                    # No gateway session (the client is reconnecting): these never reach
                    # the server, and count as lost.
                    for payload in batch:
                        blackjack.pop(int(payload["id"]), None)
                last_sent = time.perf_counter()
            elif next_index == len(planned) and (
                not blackjack or now - last_sent > ACK_DEADLINE_SECONDS + 1
            ):
                break
            await asyncio.sleep(0.005)
        acknowledged = await self._gateway_acknowledged(set(kinds), last_sent)
        deferred = [c for c in self.fake.all_callbacks if c.accepted and c.type in _DEFERRED_TYPES]
        for interaction_id, kind in kinds.items():
            elapsed = acknowledged.get(interaction_id)
            phase.outcomes.append(Outcome(kind, elapsed, None, "" if elapsed else "unanswered"))
        phase.deferred_tokens = [
            f"token-{c.interaction_id}" for c in deferred if c.interaction_id in kinds
        ]
        return await self._report(phase, requests_before, time.perf_counter() - started)

    async def _gateway_acknowledged(
        self, interaction_ids: set[int], last_sent: float
    ) -> dict[int, float | None]:
        """The acknowledgement latency of each interaction, waiting until each has one
        or the deadline of the last one sent has passed."""
        while True:
            acknowledged = {
                i: elapsed
                for i, elapsed in self.fake.acknowledgements().items()
                if i in interaction_ids
            }
            waiting = [i for i in interaction_ids if acknowledged.get(i) is None]
            if not waiting or time.perf_counter() - last_sent > ACK_DEADLINE_SECONDS + 1:
                return acknowledged
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _stand_button(message: Mapping[str, Any]) -> str | None:
    """The custom id of a message's "stand" button, if it has one."""
    for row in message.get("components") or []:
        for button in row.get("components", []):
            if str(button.get("custom_id", "")).endswith(":stand"):
                return str(button["custom_id"])
    return None


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _is_busy(answer: dict[str, Any]) -> bool:
    embeds = answer.get("data", {}).get("embeds") or [{}]
    return str(embeds[0].get("description", "")).startswith(BUSY_PREFIX)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


async def main() -> None:
    # Discord's own heartbeat interval: the tests' fast one makes a loaded client give up
    # on a connection whose acknowledgement is a quarter of a second late.
    with FakeDiscord(heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS) as fake:
        load = Load(fake)
        _say({"api_url": fake.api_url, "public_key": load.key.verify_key.encode().hex()})
        loop = asyncio.get_running_loop()
        offset = 0
        try:
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                request = json.loads(line)
                op = request.pop("op")
                if op == "quit":
                    break
                if op == "setup":
                    _say(await load.setup(request["url"]))
                elif op == "gateway_setup":
                    _say(await load.gateway_setup())
                elif op == "gateway_burst":
                    _say(await load.gateway_burst(request["count"], request["members"]))
                elif op == "gateway_paced":
                    report = await load.gateway_paced(
                        request["rate"], request["seconds"], request["members"], offset
                    )
                    offset += report["interactions"]
                    _say(report)
                elif op == "burst":
                    _say(await load.burst(request["count"], request["members"]))
                elif op == "paced":
                    report = await load.paced(
                        request["rate"], request["seconds"], request["members"], offset
                    )
                    offset += report["interactions"]
                    _say(report)
                else:
                    raise ValueError(f"unknown request {op!r}")
        finally:
            await load.close()


def _say(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
