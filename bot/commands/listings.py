"""Paged listings: ``/leaderboard`` and ``/history``, with their Previous/Next buttons.

A button's custom id holds everything a press needs (``lb:<page>``,
``hist:<user>:<page>``), so the buttons keep working after a restart with no state in
memory; a history's buttons answer only the member whose history it is.
"""

from __future__ import annotations

from typing import Any

from actors import HistoryEntry, ScopeSettings
from bot.commands.common import EconomyGroup, button_numbers, check_owner, page_option
from bot.commands.render import clip, mention, money, pager, signed_money, timestamp
from bot.model import ButtonPress, ButtonRoute, Command, Invocation, Reply
from limits import history_reason_chars_max


class ListingCommands(EconomyGroup):
    """``/leaderboard`` and ``/history``, and the buttons that page them."""

    def commands(self) -> tuple[Command, ...]:
        return (
            Command(
                "leaderboard",
                "The richest members",
                (page_option(self.economy.limits.leaderboard_pages_max),),
                self._leaderboard,
            ),
            Command("history", "Your recent transfers", (page_option(),), self._history),
        )

    def buttons(self) -> tuple[ButtonRoute, ...]:
        return (
            ButtonRoute("lb", self._press_leaderboard),
            ButtonRoute("hist", self._press_history),
        )

    async def _leaderboard(self, inv: Invocation) -> Reply:
        return self._leaderboard_page(inv.guild_id, inv.options.get("page", 1))

    async def _press_leaderboard(self, press: ButtonPress) -> Reply:
        (page,) = button_numbers(press, 1)
        return self._leaderboard_page(press.guild_id, page)

    def _leaderboard_page(self, guild_id: int, page: int) -> Reply:
        board = self.economy.leaderboard(guild_id, page)
        settings = self._settings(guild_id)
        lines = [
            f"**{row.rank}.** {mention(row.user)} — {money(settings, row.balance)}"
            for row in board.rows
        ]
        return Reply(
            title="Leaderboard",
            description="\n".join(lines) or "Nobody is on this page.",
            footer=f"Page {board.page}",
            buttons=pager("lb", board.page, has_next=board.has_next),
            result={
                "page": board.page,
                "has_next": board.has_next,
                "rows": [
                    {"rank": r.rank, "user": r.user, "balance": r.balance} for r in board.rows
                ],
            },
        )

    async def _history(self, inv: Invocation) -> Reply:
        return self._history_page(inv.guild_id, inv.user_id, inv.options.get("page", 1))

    async def _press_history(self, press: ButtonPress) -> Reply:
        owner, page = button_numbers(press, 2)
        check_owner(press, owner)
        return self._history_page(press.guild_id, owner, page)

    def _history_page(self, guild_id: int, user: int, page: int) -> Reply:
        got = self.economy.history(guild_id, user, page)
        settings = self._settings(guild_id)
        lines = [_history_line(settings, entry) for entry in got.entries]
        return Reply(
            title="History",
            description="\n".join(lines) or "No transfers yet.",
            footer=f"Newest first · page {got.page} of {got.pages}",
            buttons=pager(f"hist:{user}", got.page, has_next=got.page < got.pages),
            result={
                "user": user,
                "page": got.page,
                "pages": got.pages,
                "entries": [history_result(entry) for entry in got.entries],
            },
        )


def _history_line(settings: ScopeSettings, entry: HistoryEntry) -> str:
    party = entry.counterparty
    kind, _, ident = party.partition(":")
    who = mention(int(ident)) if kind == "user" and ident.isdigit() else party.replace(":", " ")
    reason = clip(entry.reason, history_reason_chars_max)
    return f"{timestamp(entry.at, 'd')} **{signed_money(settings, entry.amount)}** {who}" + (
        f" — {reason}" if reason else ""
    )


def history_result(entry: HistoryEntry) -> dict[str, Any]:
    """A history entry as plain values: the command's result and the API's answer."""
    return {
        "transfer_id": entry.transfer_id,
        "amount": entry.amount,
        "counterparty": entry.counterparty,
        "reason": entry.reason,
        "at": entry.at,
        "balance": entry.balance,
    }
