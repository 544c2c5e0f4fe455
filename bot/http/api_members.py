"""The HTTP API's member routes: a member's balance, changing it, the leaderboard, a
member's history and inventory.
"""

from __future__ import annotations

from typing import Any

from actors import LeaderboardRow
from actors.errors import (
    InvalidInput,
)
from bot.commands.listings import history_result
from bot.http.api_base import ApiBase, Call, only_fields, path_id, query_number
from bot.inputs import (
    whole_number,
)
from limits import integer_option_max, integer_option_min


class MemberRoutes(ApiBase):
    """``/guilds/{guild}/users`` and below."""

    async def _get_user(self, call: Call) -> tuple[int, dict[str, Any]]:
        user = path_id(call.path["user"], "user")
        view = await self.economy.balance(call.guild, user)
        rank = self.economy.rank(call.guild, user)
        return 200, {
            "guild": str(call.guild),
            "user": str(user),
            "balance": view.balance,
            "rank": rank,
        }

    async def _patch_user(self, call: Call) -> tuple[int, dict[str, Any]]:
        user = path_id(call.path["user"], "user")
        body = only_fields(call.body, required=("amount",), optional=("reason",))
        amount = whole_number(
            body["amount"], "amount", minimum=integer_option_min, maximum=integer_option_max
        )
        if amount == 0:
            raise InvalidInput("amount", "must not be 0: positive adds, negative removes")
        op = "add" if amount > 0 else "remove"
        return await self._adjust(call, user, op, abs(amount), self._reason(body))

    async def _put_user(self, call: Call) -> tuple[int, dict[str, Any]]:
        user = path_id(call.path["user"], "user")
        body = only_fields(call.body, required=("balance",), optional=("reason",))
        balance = whole_number(body["balance"], "balance", minimum=0, maximum=integer_option_max)
        return await self._adjust(call, user, "set", balance, self._reason(body))

    async def _adjust(
        self, call: Call, user: int, op: Any, amount: int, reason: str
    ) -> tuple[int, dict[str, Any]]:
        got = await self.economy.adjust(
            call.guild, call.token.created_by, user, op, amount, call.key, reason=reason
        )
        await self._audit(
            call,
            f"money.{op}",
            f"user:{user}",
            {"balance": got.balance - got.delta},
            {"balance": got.balance},
            reason,
        )
        return 200, {
            "guild": str(call.guild),
            "user": str(user),
            "balance": got.balance,
            "delta": got.delta,
        }

    async def _leaderboard(self, call: Call) -> tuple[int, dict[str, Any]]:
        limits = self.economy.limits
        size, pages_max = limits.leaderboard_page_entries_max, limits.leaderboard_pages_max
        limit = query_number(call.query, "limit", 25, 1, self.limits.page_entries_max)
        offset = query_number(call.query, "offset", 0, 0, pages_max * size - 1)
        rows: list[LeaderboardRow] = []
        page = offset // size + 1
        # One row past the limit says whether there is more.
        while len(rows) <= limit and page <= pages_max:
            board = self.economy.leaderboard(call.guild, page)
            rows += [row for row in board.rows if row.rank > offset]
            if not board.has_next:
                break
            page += 1
        return 200, {
            "guild": str(call.guild),
            "offset": offset,
            "limit": limit,
            "users": [
                {"rank": row.rank, "user": str(row.user), "balance": row.balance}
                for row in rows[:limit]
            ],
            "has_more": len(rows) > limit,
        }

    async def _history(self, call: Call) -> tuple[int, dict[str, Any]]:
        user = path_id(call.path["user"], "user")
        page = query_number(call.query, "page", 1, 1, integer_option_max)
        got = self.economy.history(call.guild, user, page)
        return 200, {
            "guild": str(call.guild),
            "user": str(user),
            "page": got.page,
            "pages": got.pages,
            "entries": [history_result(entry) for entry in got.entries],
        }

    async def _inventory(self, call: Call) -> tuple[int, dict[str, Any]]:
        user = path_id(call.path["user"], "user")
        lines = self.economy.inventory(call.guild, user)
        return 200, {
            "guild": str(call.guild),
            "user": str(user),
            "items": [
                {
                    "item_id": line.item.item_id,
                    "name": line.item.name,
                    "count": line.count,
                    "retired": line.item.retired,
                }
                for line in lines
            ],
        }
