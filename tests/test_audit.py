"""The audit log: admin actions recorded once per request, paged newest first per guild."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import AuditLog
from actors.errors import InvalidInput
from bot import CommandSet, UserRef
from bot.commands import build_command_set
from limits import RateLimit, audit_page_entries_max
from tests.economy_fixtures import T0, Running, running_economy
from tests.support.invoke import ok, run

G, OTHER = 1, 2
ADMIN, BOB = 7, 43


@pytest.fixture
async def eco(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_economy(tmp_path) as running:
        yield running


@pytest.fixture
def log(eco: Running) -> AuditLog:
    return AuditLog(eco.store, eco.clock)


async def append(log: AuditLog, guild: int, request: str, **fields: Any) -> None:
    values: dict[str, Any] = {
        "actor": "user:7",
        "via": "api",
        "action": "money.add",
        "target": "user:43",
        "before": {"balance": 1},
        "after": {"balance": 2},
    }
    values.update(fields)
    await log.append(guild, request=request, **values)


async def test_an_entry_reads_back_with_every_field(log: AuditLog, eco: Running) -> None:
    """What append records (who, via, what, before, after, why, when) is what page shows."""
    await append(log, G, "r1", reason="prize")

    (entry,) = log.page(G).entries

    assert (entry.guild, entry.at, entry.actor, entry.via) == (G, T0, "user:7", "api")
    assert (entry.action, entry.target, entry.reason) == ("money.add", "user:43", "prize")
    assert (entry.before, entry.after, entry.request) == ({"balance": 1}, {"balance": 2}, "r1")


async def test_one_request_is_one_entry_however_often_it_is_appended(
    log: AuditLog, eco: Running
) -> None:
    """A repeated request, even concurrent and later, keeps its first entry only."""
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(append, log, G, "same")
    eco.clock.advance(60)
    await append(log, G, "same", after={"balance": 99})

    (entry,) = log.page(G).entries
    assert entry.after == {"balance": 2} and entry.at == T0
    # The same request key in another guild is another request.
    await append(log, OTHER, "same")
    assert len(log.page(OTHER).entries) == 1


async def test_pages_run_newest_first_per_guild_and_end(log: AuditLog, eco: Running) -> None:
    """Paging walks one guild's entries newest first, never another guild's, then stops."""
    for index in range(7):
        await append(log, G, f"g{index}", reason=str(index))
        await append(log, OTHER, f"o{index}")
        eco.clock.advance(1)
    await append(log, 2**64 - 1, "last-guild")

    seen: list[str] = []
    before = None
    while True:
        page = log.page(G, before=before, limit=3)
        seen += [entry.reason for entry in page.entries]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == [str(index) for index in reversed(range(7))]
    assert [e.request for e in log.page(2**64 - 1).entries] == ["last-guild"]
    assert log.page(3).entries == ()


async def test_bad_cursors_and_limits_are_refused_by_name(log: AuditLog) -> None:
    """A cursor that no page gave, or a limit out of range, is an InvalidInput naming it."""
    for before in ("zz" * 16, "abc", ""):
        with pytest.raises(InvalidInput) as refused:
            log.page(G, before=before)
        assert refused.value.field == "before"
    for limit in (0, audit_page_entries_max + 1):
        with pytest.raises(InvalidInput) as refused:
            log.page(G, limit=limit)
        assert refused.value.field == "limit"


async def test_admin_commands_write_their_changes_to_the_log(eco: Running) -> None:
    """Each admin command records who, what, before and after; a redelivery adds nothing."""
    commands: CommandSet = build_command_set(
        economy=eco.economy, metrics=eco.metrics, rate_limit=RateLimit(burst_commands=1_000)
    )

    async def admin(command: str, interaction: int, **options: Any) -> dict[str, Any]:
        return dict(
            ok(
                await run(
                    commands, command, by=ADMIN, admin=True, interaction=interaction, **options
                )
            )
        )

    start = ok(await run(commands, "balance", user=UserRef(BOB)))["balance"]
    await admin("money-add", 1, user=UserRef(BOB), amount=50, reason="prize")
    await admin("money-add", 1, user=UserRef(BOB), amount=50, reason="prize")
    await admin("money-remove", 2, user=UserRef(BOB), amount=20, reason="fine")
    await admin("money-set", 3, user=UserRef(BOB), amount=5, reason="set")
    await admin("reset-user", 4, user=UserRef(BOB), reason="clean")
    await admin("shop-add", 5, name="Badge", price=30)
    await admin("shop-edit", 6, item="Badge", price=40)
    await admin("shop-retire", 7, item="Badge")
    await admin("economy-config", 8, setting="daily_amount", value="300")

    entries = list(reversed(AuditLog(eco.store, eco.clock).page(G).entries))
    assert [(e.action, e.target, e.before, e.after) for e in entries[:5]] == [
        ("money.add", f"user:{BOB}", {"balance": start}, {"balance": start + 50}),
        ("money.remove", f"user:{BOB}", {"balance": start + 50}, {"balance": start + 30}),
        ("money.set", f"user:{BOB}", {"balance": start + 30}, {"balance": 5}),
        ("member.reset", f"user:{BOB}", {"balance": 5}, {"balance": start, "items_removed": 0}),
        ("item.create", "item:1", {}, entries[4].after),
    ]
    assert [e.reason for e in entries[:4]] == ["prize", "fine", "set", "clean"]
    edit, retire, config = entries[5:]
    assert (edit.action, edit.before["price"], edit.after["price"]) == ("item.edit", 30, 40)
    assert (retire.action, retire.before["retired"], retire.after["retired"]) == (
        "item.retire",
        False,
        True,
    )
    assert (config.action, config.before, config.after) == (
        "settings.update",
        {"daily_amount": 250},
        {"daily_amount": 300},
    )
    assert {(e.actor, e.via) for e in entries} == {(f"user:{ADMIN}", "command")}
    assert len(entries) == 8
