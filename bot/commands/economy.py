"""The economy's commands, put together from their groups.

``wallet`` (balances, rewards, payments), ``listings`` (the leaderboard and history),
``shop`` (browsing, trading and using items), ``admin`` (settings, balances, resets,
parked transfers) and ``shop_admin`` (the shop's items) each hold a few commands over
the same ``Economy`` and audit log; ``EconomyCommands`` lists them all, members'
commands first, and routes their buttons. A new group is a module of its own, added
to ``_groups``.

Every handler reads its typed options, makes one call to the ``Economy`` API with the
interaction id as the idempotency key (so a duplicated delivery changes nothing twice),
and renders the outcome as an embed in the scope's currency, with the figures in
``Reply.result`` for scripts. Paged replies carry Previous/Next buttons whose custom id
holds everything a press needs, so they keep working after a restart with no state in
memory.
"""

from __future__ import annotations

from typing import Protocol

from actors import AuditLog, Economy
from bot.commands.admin import AdminCommands
from bot.commands.listings import ListingCommands
from bot.commands.shop import ShopCommands
from bot.commands.shop_admin import ShopAdminCommands
from bot.commands.wallet import WalletCommands
from bot.model import ButtonRoute, Command


class _Group(Protocol):
    def commands(self) -> tuple[Command, ...]: ...


class EconomyCommands:
    """The economy's commands and button routes, over one ``Economy``."""

    def __init__(self, economy: Economy, audit: AuditLog | None = None) -> None:
        self.economy = economy
        self.audit = audit or AuditLog(economy.store, economy.context.now)
        self.listings = ListingCommands(economy, self.audit)
        self.shop = ShopCommands(economy, self.audit)
        # Members' commands first, then the admins', which is the order /help lists.
        self._groups: tuple[_Group, ...] = (
            WalletCommands(economy, self.audit),
            self.listings,
            self.shop,
            AdminCommands(economy, self.audit),
            ShopAdminCommands(economy, self.audit),
        )

    def commands(self) -> tuple[Command, ...]:
        return tuple(command for group in self._groups for command in group.commands())

    def buttons(self) -> tuple[ButtonRoute, ...]:
        return self.listings.buttons() + self.shop.buttons()
