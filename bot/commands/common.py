"""What every group of the economy's commands shares.

A group (``wallet``, ``listings``, ``shop``, ``shop_admin``, ``admin``) holds the
``Economy`` it calls and the audit log its admin commands write to. The helpers here
read what an invocation or a button press carries (its idempotency key, a member,
pages, the numbers in a custom id) the same way in every group; ``audit_command`` is
how any admin command, the token commands' too, records its change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from actors import AuditLog, Economy, ScopeSettings
from actors.errors import BotRecipient, CroupierError, NotFound
from bot.commands.render import mention
from bot.model import ButtonPress, Invocation, Option, OptionKind, UserRef

_DIGITS = re.compile(r"[0-9]{1,20}")

T = TypeVar("T")


class NotYourButton(CroupierError):
    """A press on buttons under another member's private listing (history, inventory)."""

    code = "not_your_button"

    def __init__(self, owner: int) -> None:
        super().__init__(
            f"these buttons belong to {mention(owner)}; run the command to get your own"
        )
        self.owner = owner


class EconomyGroup:
    """A group of the economy's commands over one ``Economy`` and audit log."""

    def __init__(self, economy: Economy, audit: AuditLog) -> None:
        self.economy = economy
        self.audit = audit

    def _settings(self, guild_id: int) -> ScopeSettings:
        return self.economy.settings(guild_id)

    async def _audit(
        self,
        inv: Invocation,
        action: str,
        target: str,
        before: dict[str, Any],
        after: dict[str, Any],
        reason: str = "",
    ) -> None:
        await audit_command(self.audit, inv, action, target, before, after, reason)


async def audit_command(
    audit: AuditLog,
    inv: Invocation,
    action: str,
    target: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    reason: str = "",
) -> None:
    """Record an admin command's change in the audit log, once per interaction: the
    member who ran it is the actor, the interaction the request."""
    await audit.append(
        inv.guild_id,
        request=f"command:{inv.interaction_id}",
        actor=f"user:{inv.user_id}",
        via="command",
        action=action,
        target=target,
        before=before,
        after=after,
        reason=reason,
    )


def key_of(inv: Invocation) -> str:
    """The idempotency key of what an invocation asks: its interaction id."""
    return str(inv.interaction_id)


def wallet_holder(ref: UserRef) -> UserRef:
    """``ref``, refused if it is a bot: bots hold no wallets."""
    if ref.bot:
        raise BotRecipient(ref.id)
    return ref


def page_option(pages_max: int | None = None) -> Option:
    return Option(
        "page", OptionKind.INTEGER, "Page number", required=False, min_value=1, max_value=pages_max
    )


def item_option(name_chars_max: int) -> Option:
    return Option("item", OptionKind.STRING, "Item name or #id", max_length=name_chars_max)


def page_of(entries: Sequence[T], page: int, size: int) -> tuple[Sequence[T], int, int]:
    """One page of ``entries`` (a page past the end shows the last), its number and count."""
    pages = max(1, -(-len(entries) // size))
    page = min(max(1, page), pages)
    return entries[(page - 1) * size : page * size], page, pages


def button_numbers(press: ButtonPress, count: int) -> list[int]:
    """The ``count`` numbers after the prefix of a custom id such as ``hist:42:3``."""
    parts = press.custom_id.split(":")[1:]
    if len(parts) != count or not all(_DIGITS.fullmatch(part) for part in parts):
        raise NotFound("button", press.custom_id)
    return [int(part) for part in parts]


def check_owner(press: ButtonPress, owner: int) -> None:
    if press.user_id != owner:
        raise NotYourButton(owner)
