"""The dashboard's read-only pages: members, a member's history, the audit log, games
in play, and the guild's health (integrity, backups, parked and retrying work).
"""

from __future__ import annotations

import trio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from actors import list_parked
from actors.accounts import member_of
from actors.errors import InvalidInput
from bot.commands.render import money, signed_money
from bot.http.dashboard_base import DashboardBase, Refused, guild_path, page_number
from bot.inputs import (
    snowflake,
)
from limits import dashboard_audit_page_entries
from metrics.health import INTEGRITY
from storage.backup import newest_verified


class ViewPages(DashboardBase):
    """The pages that show a guild's economy and change nothing."""

    async def _members(self, request: Request) -> Response:
        guard = await self._guard(request)
        looked_up = request.query_params.get("user")
        error = None
        if looked_up is not None:
            try:
                user = snowflake(looked_up.strip(), "user")
            except InvalidInput as exc:
                error = exc
            else:
                return RedirectResponse(f"{guild_path(guard)}/members/{user}", status_code=303)
        page = page_number(request, self.economy.limits.leaderboard_pages_max)
        board = self.economy.leaderboard(guard.guild.id, page)
        settings = self.economy.settings(guard.guild.id)
        return self._render(
            request,
            "members.html",
            guard.session,
            guard=guard,
            section="members",
            board=board,
            price=lambda amount: money(settings, amount),
            error=error,
            status=400 if error else 200,
        )

    async def _member(self, request: Request) -> Response:
        guard = await self._guard(request)
        try:
            user = snowflake(request.path_params["user"], "user")
        except InvalidInput:
            raise Refused(404, "That is not a Discord user id.") from None
        guild_id = guard.guild.id
        settings = self.economy.settings(guild_id)
        wallet = self.economy.find_wallet(guild_id, user)
        history = self.economy.history(guild_id, user, page_number(request, 10**6))
        return self._render(
            request,
            "member.html",
            guard.session,
            guard=guard,
            section="members",
            user=user,
            wallet=wallet,
            history=history,
            inventory=self.economy.inventory(guild_id, user) if wallet else [],
            price=lambda amount: money(settings, amount),
            signed=lambda amount: signed_money(settings, amount),
            member_of=member_of,
        )

    async def _audit_page(self, request: Request) -> Response:
        guard = await self._guard(request)
        before = request.query_params.get("before") or None
        try:
            page = self.audit.page(
                guard.guild.id, before=before, limit=dashboard_audit_page_entries
            )
        except InvalidInput:
            raise Refused(400, "That page link is not one this dashboard made.") from None
        return self._render(
            request, "audit.html", guard.session, guard=guard, section="audit", page=page
        )

    async def _games(self, request: Request) -> Response:
        guard = await self._guard(request)
        settings = self.economy.settings(guard.guild.id)
        return self._render(
            request,
            "games.html",
            guard.session,
            guard=guard,
            section="games",
            games=self.games.live(guard.guild.id),
            price=lambda amount: money(settings, amount),
        )

    async def _health(self, request: Request) -> Response:
        guard = await self._guard(request)
        scope = self.economy.scope(guard.guild.id)
        snapshot = self.readiness.snapshot()
        integrity = next((c for c in snapshot.conditions if c.name == INTEGRITY), None)
        backup = await trio.to_thread.run_sync(newest_verified, self.backups_path)
        parked = [p for p in self.economy.parked_transfers() if p.scope == scope]
        settings = self.economy.settings(guard.guild.id)
        return self._render(
            request,
            "health.html",
            guard.session,
            guard=guard,
            section="health",
            snapshot=snapshot,
            integrity=integrity,
            backup=backup,
            parked=parked,
            retrying=len(self.economy.failing_transfers()),
            timers_overdue=self.timers.overdue(self._overdue_grace),
            # Games and timers parked on any server: they carry no per-server figures.
            parked_other={
                kind: len(list_parked(self.economy.store, kind)) for kind in ("game", "timer")
            },
            price=lambda amount: money(settings, amount),
        )
