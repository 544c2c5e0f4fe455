"""How replies show money, people, times and pages; shared by the command modules."""

from __future__ import annotations

import math

from actors import ScopeSettings
from bot.model import Button


def money(settings: ScopeSettings, amount: int) -> str:
    """An amount in the scope's currency: ``🪙 1,250 coins``."""
    return f"{settings.currency_symbol} {amount:,} {settings.currency_name}"


def signed_money(settings: ScopeSettings, delta: int) -> str:
    """A change of balance with its sign: ``+🪙 30 coins`` or ``−🪙 30 coins``."""
    return f"{'+' if delta >= 0 else '−'}{money(settings, abs(delta))}"


def mention(user_id: int) -> str:
    return f"<@{user_id}>"


def role_mention(role_id: int) -> str:
    return f"<@&{role_id}>"


def timestamp(at: float, style: str = "R") -> str:
    """Discord time markup, which each reader sees in their own time zone; style ``R`` is
    relative ("in 3 hours"), ``f`` the date and time. Rounded up, so a "ready at" time
    is never shown as earlier than it is."""
    return f"<t:{math.ceil(at)}:{style}>"


def clip(text: str, chars_max: int) -> str:
    """``text`` cut to ``chars_max`` characters, marking the cut."""
    return text if len(text) <= chars_max else text[: chars_max - 1] + "…"


def pager(base: str, page: int, *, has_next: bool) -> tuple[Button, ...]:
    """Previous and Next buttons whose custom ids are ``<base>:<page>``: the page a press
    opens travels in the id, so the buttons need no state and survive a restart. A
    listing that fits on one page gets none."""
    if page <= 1 and not has_next:
        return ()
    return (
        Button(f"{base}:{page - 1}", "Previous", disabled=page <= 1),
        Button(f"{base}:{page + 1}", "Next", disabled=not has_next),
    )
