"""Typed errors that users see.

Every operating error a user can cause (bad input, not enough money, a cooldown) is one of
these, carrying the fields its message needs. ``code`` is a stable machine-readable name
(used by ``console --json`` and tests); ``str(error)`` is written for the user: what was
wrong and what to do. Bugs are assertions, not these.
"""

from __future__ import annotations


class CroupierError(Exception):
    """Base of every user-facing error."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(CroupierError):
    """An option's value is not acceptable; ``field`` names the option."""

    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidAmount(InvalidInput):
    code = "invalid_amount"

    def __init__(self, amount: object, *, field: str = "amount", maximum: int | None = None):
        bound = f" and at most {maximum}" if maximum is not None else ""
        super().__init__(
            field, f"{amount!r} is not a valid amount; use a whole number above 0{bound}"
        )
        self.amount = amount
        self.maximum = maximum


class InsufficientFunds(CroupierError):
    code = "insufficient_funds"

    def __init__(self, balance: int, amount: int) -> None:
        super().__init__(
            f"you have {balance} but this needs {amount}; earn more with /daily or /work"
        )
        self.balance = balance
        self.amount = amount


class BalanceTooHigh(CroupierError):
    code = "balance_too_high"

    def __init__(self, balance: int, amount: int, max_balance: int) -> None:
        super().__init__(
            f"that would take the balance from {balance} past the maximum of {max_balance}"
        )
        self.balance = balance
        self.amount = amount
        self.max_balance = max_balance


class OnCooldown(CroupierError):
    code = "on_cooldown"

    def __init__(self, action: str, ready_at: float, now: float) -> None:
        wait = max(1, int(ready_at - now + 0.999))
        super().__init__(f"{action} is on cooldown; try again in {_duration(wait)}")
        self.action = action
        self.ready_at = ready_at
        self.wait_seconds = wait


class SelfTransfer(CroupierError):
    code = "self_transfer"

    def __init__(self) -> None:
        super().__init__("you cannot pay yourself; pick another member")


class BotRecipient(CroupierError):
    code = "bot_recipient"

    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} is a bot and cannot hold money; pick a member")
        self.user_id = user_id


class NotPermitted(CroupierError):
    code = "not_permitted"

    def __init__(self, what: str, permission: str = "Manage Server") -> None:
        super().__init__(f"{what} needs the {permission} permission")
        self.what = what
        self.permission = permission


class NotFound(CroupierError):
    code = "not_found"

    def __init__(self, what: str, key: object) -> None:
        shown = repr(key) if not isinstance(key, str) or len(key) <= 60 else repr(key[:60] + "…")
        super().__init__(f"no {what} {shown}; check the name and try again")
        self.what = what
        self.key = key


class RateLimited(CroupierError):
    code = "rate_limited"

    def __init__(self, wait_seconds: float) -> None:
        wait = max(1, int(wait_seconds + 0.999))
        super().__init__(f"you are going too fast; try again in {wait} s")
        self.wait_seconds = wait


class Busy(CroupierError):
    """The server could not get an answer in time; the outcome is unknown, so the user
    should repeat the same interaction (its idempotency key makes that safe)."""

    code = "busy"

    def __init__(self) -> None:
        super().__init__("the server is busy and did not confirm in time; try again")


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    if minutes:
        parts.append(f"{minutes} min")
    if secs and not hours:
        parts.append(f"{secs} s")
    return " ".join(parts) or "0 s"


class OutOfStock(CroupierError):
    code = "out_of_stock"

    def __init__(self, item: str, stock: int, wanted: int) -> None:
        super().__init__(f"only {stock} of {item!r} left and you asked for {wanted}")
        self.item = item
        self.stock = stock
        self.wanted = wanted


class ItemRetired(CroupierError):
    code = "item_retired"

    def __init__(self, item: str) -> None:
        super().__init__(f"{item!r} is no longer sold; see /shop for what is")
        self.item = item


class NotSellable(CroupierError):
    code = "not_sellable"

    def __init__(self, item: str) -> None:
        super().__init__(f"the shop does not buy back {item!r}")
        self.item = item


class NotEnoughItems(CroupierError):
    code = "not_enough_items"

    def __init__(self, item: str, owned: int, wanted: int) -> None:
        super().__init__(f"you have {owned} of {item!r} and need {wanted}; see /inventory")
        self.item = item
        self.owned = owned
        self.wanted = wanted


class RoleNotGrantable(CroupierError):
    """Discord refused to give a member a role: it sits at or above the bot's highest
    role, or the bot lacks Manage Roles. Nothing was used up."""

    code = "role_not_grantable"

    def __init__(self, role_id: int) -> None:
        super().__init__(
            f"Croupier cannot give you the <@&{role_id}> role (it sits above Croupier's own "
            "role); nothing was used up. Ask an admin to move Croupier's role above it."
        )
        self.role_id = role_id


class DuplicateItem(CroupierError):
    code = "duplicate_item"

    def __init__(self, name: str) -> None:
        super().__init__(f"an item named {name!r} is already for sale; pick another name")
        self.name = name


class KeyReused(CroupierError):
    """An idempotency key was sent again with a different operation."""

    code = "key_reused"

    def __init__(self, key: str, op: str) -> None:
        super().__init__(f"request id {key} was already used for {op}; send a new request")
        self.key = key
        self.op = op


class IdReused(CroupierError):
    """An interaction id came again with a different request (another command, options,
    user, guild or button); nothing is changed."""

    code = "id_reused"

    def __init__(self, interaction_id: int) -> None:
        super().__init__(
            f"interaction id {interaction_id} was already used for a different request; "
            "send this one with a new id"
        )
        self.interaction_id = interaction_id


class GuildOnly(CroupierError):
    code = "guild_only"

    def __init__(self) -> None:
        super().__init__("this economy is per server; use the command in a server")


class GameInProgress(CroupierError):
    code = "game_in_progress"

    def __init__(self, kind: str, game_id: str) -> None:
        super().__init__(f"you already have a {kind} game running ({game_id}); finish it first")
        self.kind = kind
        self.game_id = game_id


class NotYourGame(CroupierError):
    code = "not_your_game"

    def __init__(self, game_id: str) -> None:
        super().__init__(f"game {game_id} belongs to another player; start your own")
        self.game_id = game_id


class GameOver(CroupierError):
    code = "game_over"

    def __init__(self, game_id: str) -> None:
        super().__init__(f"game {game_id} is already settled; start a new one")
        self.game_id = game_id


class AlreadyRefunded(CroupierError):
    """A parked transfer's money went back to its sender before; it goes back once."""

    code = "already_refunded"

    def __init__(self, transfer_id: str, refunded_at: float) -> None:
        super().__init__(f"parked transfer {transfer_id} was already refunded; nothing to do")
        self.transfer_id = transfer_id
        self.refunded_at = refunded_at


class NotRefundable(CroupierError):
    """A parked record whose coins have no member to go back to: a game's payout (its
    coins are the player's winnings, not the game's to take back), or a record that
    could not be read."""

    code = "not_refundable"

    def __init__(self, transfer_id: str, owner: str) -> None:
        super().__init__(
            f"parked transfer {transfer_id} belongs to {owner}, not a member; only a "
            "payment between members or a parked game's stake can be refunded"
        )
        self.transfer_id = transfer_id
        self.owner = owner


class Undeliverable(CroupierError):
    """A transfer in flight that its target wallet cannot apply (an unreadable record, or
    one addressed elsewhere). Raised per message, so the rest of the wallet's batch goes
    on; the economy retries it with backoff and then parks it."""

    code = "undeliverable"

    def __init__(self, transfer_id: str, why: str) -> None:
        super().__init__(f"transfer {transfer_id} cannot be delivered: {why}")
        self.transfer_id = transfer_id
        self.why = why


class DurationUnreadable(InvalidInput):
    """A duration option is not written as amounts with units (``90m``, ``1w2d``)."""

    code = "duration_unreadable"

    def __init__(self, field: str, text: str) -> None:
        shown = text if len(text) <= 40 else text[:40] + "…"
        super().__init__(
            field,
            f"{shown!r} is not a duration; write a number and a unit, largest unit first, "
            "such as 90m, 2h, 7d or 1w2d (units: w, d, h, m, s)",
        )
        self.text = text


class DurationOutOfRange(InvalidInput):
    """A readable duration outside what the option allows."""

    code = "duration_out_of_range"

    def __init__(self, field: str, seconds: int, minimum: int, maximum: int) -> None:
        super().__init__(
            field,
            f"{format_span(seconds)} is out of range; use between {format_span(minimum)} "
            f"and {format_span(maximum)}",
        )
        self.seconds = seconds
        self.minimum = minimum
        self.maximum = maximum


class InvalidDate(InvalidInput):
    """A birthday that is not a month and day of the calendar."""

    code = "invalid_date"

    def __init__(self, field: str, text: str) -> None:
        shown = text if len(text) <= 20 else text[:20] + "…"
        super().__init__(
            field, f"{shown!r} is not a date; write month and day as MM-DD, such as 07-14"
        )
        self.text = text


class UnknownTimezone(InvalidInput):
    code = "unknown_timezone"

    def __init__(self, field: str, name: str) -> None:
        shown = name if len(name) <= 60 else name[:60] + "…"
        super().__init__(
            field,
            f"{shown!r} is not a time zone; use an IANA name such as Europe/Paris, "
            "America/New_York or UTC",
        )
        self.name = name


class TooManyReminders(CroupierError):
    code = "too_many_reminders"

    def __init__(self, count: int, maximum: int) -> None:
        super().__init__(
            f"you have {count} reminders and the limit is {maximum}; cancel one with "
            "/reminders-cancel first"
        )
        self.count = count
        self.maximum = maximum


class BanRefused(CroupierError):
    """Discord did not ban the member; nothing was recorded."""

    code = "ban_refused"

    def __init__(self, user_id: int, why: str) -> None:
        super().__init__(f"Discord refused to ban <@{user_id}>: {why}; nothing was recorded")
        self.user_id = user_id
        self.why = why


class UnbanRefused(CroupierError):
    code = "unban_refused"

    def __init__(self, user_id: int, why: str) -> None:
        super().__init__(f"Discord refused to unban <@{user_id}>: {why}")
        self.user_id = user_id
        self.why = why


class NotBanned(CroupierError):
    code = "not_banned"

    def __init__(self, user_id: int) -> None:
        super().__init__(f"<@{user_id}> is not banned here; nothing to lift")
        self.user_id = user_id


class RoleNotRemovable(CroupierError):
    code = "role_not_removable"

    def __init__(self, role_id: int, why: str) -> None:
        super().__init__(
            f"Croupier could not take the <@&{role_id}> role off: {why}; nothing was changed, "
            "try again"
        )
        self.role_id = role_id
        self.why = why


class DiscordRequired(CroupierError):
    """A command that acts in Discord (bans, roles, posts) run where there is none."""

    code = "discord_required"

    def __init__(self, command: str) -> None:
        super().__init__(
            f"{command} acts in Discord (bans, roles or messages), and this transport has "
            "no Discord connection; run it in Discord"
        )
        self.command = command


def format_span(seconds: int) -> str:
    """A whole number of seconds as users read it: ``1 w 2 d``, ``1 h 30 min``, ``45 s``."""
    assert seconds >= 0, seconds
    if seconds == 0:
        return "0 s"
    parts = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts)
