"""Accounts and transfer ids: the two names every money record carries, spelt here only.

An account is a member's wallet (``user:<id>``), a game's escrow (``game:<id>``) or a
system account (``treasury``, ``house``, ``shop``: a plain name). A transfer id is
``<kind>:<what it is about>``; its kind says what made it (a payment, a reward, a game's
settlement ...). Records store both as text, so that records written before these types
existed read the same; code builds them with the constructors below and reads them back
with ``parse``, never by slicing strings.

System accounts are plain counters adjusted inside the same write transaction as the
user side of a transfer. They belong to no actor: every adjustment is a read-and-add
inside the single writer's transaction, which the writer serializes, and the counters may
go negative, so no check is needed that could race.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from actors import keys
from storage import packb, unpackb

AccountKind = Literal["user", "game", "system"]

TREASURY = "treasury"
HOUSE = "house"
SHOP = "shop"
SYSTEM_ACCOUNTS = (TREASURY, HOUSE, SHOP)


@dataclass(frozen=True)
class Account:
    """One account. ``str()`` is its one spelling, ``Account.parse`` reads it back."""

    kind: AccountKind
    ident: str

    @classmethod
    def user(cls, user: int) -> Account:
        return cls("user", str(user))

    @classmethod
    def game(cls, game_id: str) -> Account:
        assert game_id, game_id
        return cls("game", game_id)

    @classmethod
    def parse(cls, text: str) -> Account:
        """The account a stored name spells; a name with no known kind is a system one."""
        kind, colon, ident = text.partition(":")
        if colon and kind == "user":
            return cls("user", ident)
        if colon and kind == "game":
            return cls("game", ident)
        return cls("system", text)

    @property
    def member(self) -> int | None:
        """The member's user id, or None for any other account or a malformed one (names
        are read from stored records, so never trusted)."""
        ident = self.ident
        if self.kind != "user" or not (0 < len(ident) <= 20 and ident.isascii()):
            return None
        if not ident.isdigit():
            return None
        user = int(ident)
        return user if 1 <= user <= keys.u64_max else None

    def __str__(self) -> str:
        return self.ident if self.kind == "system" else f"{self.kind}:{self.ident}"


def user_account(user: int) -> str:
    """The stored name of a member's account."""
    return str(Account.user(user))


def game_account(game_id: str) -> str:
    """The stored name of a game's escrow account."""
    return str(Account.game(game_id))


def member_of(account: str) -> int | None:
    """The user id of a member's stored account name, or None (see ``Account.member``)."""
    return Account.parse(account).member


# What made a transfer. A wallet's own requests are keyed by scope, user and request key;
# a game's transfers by game id.
TransferKind = Literal[
    "open", "daily", "work", "pay", "admin", "reset", "buy", "sell", "wager", "settle", "refund"
]
REQUEST_KINDS = ("daily", "work", "pay", "admin", "reset", "buy", "sell")
_KINDS = frozenset(("open", "wager", "settle", "refund", *REQUEST_KINDS))


@dataclass(frozen=True)
class TransferId:
    """A transfer's id. ``str()`` is its one spelling (also its outbox key), ``parse``
    reads it back; ``kind`` is None for text that no code of this version writes."""

    kind: TransferKind | None
    ident: str

    @classmethod
    def of_request(cls, kind: TransferKind, scope: int, user: int, key: str) -> TransferId:
        """The transfer a wallet's request with idempotency key ``key`` makes."""
        assert kind in REQUEST_KINDS, kind
        return cls(kind, f"{scope}:{user}:{key}")

    @classmethod
    def opening(cls, scope: int, user: int) -> TransferId:
        """A wallet's opening balance, paid by the treasury once."""
        return cls("open", f"{scope}:{user}")

    @classmethod
    def wager(cls, game_id: str, key: str) -> TransferId:
        return cls("wager", f"{game_id}:{key}")

    @classmethod
    def settlement(cls, game_id: str, round_number: int) -> TransferId:
        return cls("settle", f"{game_id}:{round_number}")

    @classmethod
    def game_refund(cls, game_id: str) -> TransferId:
        return cls("refund", game_id)

    @classmethod
    def parse(cls, text: str) -> TransferId:
        kind, colon, ident = text.partition(":")
        if colon and kind in _KINDS:
            return cls(kind, ident)  # type: ignore[arg-type]
        return cls(None, text)

    def returned(self) -> TransferId:
        """The transfer that brings a bounced payment back to its sender."""
        return TransferId(self.kind, f"{self.ident}/refund")

    def parked_refund(self) -> TransferId:
        """The history entry of a parked transfer's coins coming back to their sender."""
        return TransferId(self.kind, f"{self.ident}/parked-refund")

    def parked_stake_refund(self) -> TransferId:
        """The history entry of a parked game's stake coming back to its player."""
        return TransferId(self.kind, f"{self.ident}/parked")

    def __str__(self) -> str:
        return self.ident if self.kind is None else f"{self.kind}:{self.ident}"


def system_add(txn: Any, db: Any, scope: int, account: str, delta: int) -> int:
    """Add ``delta`` to a system account inside ``txn``; return the new balance."""
    assert account in SYSTEM_ACCOUNTS, account
    key = keys.system_key(scope, account)
    raw = txn.get(key, db=db)
    balance = (unpackb(raw) if raw is not None else 0) + delta
    assert isinstance(balance, int)
    txn.put(key, packb(balance), db=db)
    return balance
