"""Per-guild tokens of the HTTP API, stored only as hashes.

A member with Manage Server creates a token for one guild and one scope (``read``: the
GET routes; ``write``: every route). The token is 32 random bytes, shown once: what is
kept is its SHA-256, which is enough because a token is high-entropy (no dictionary can
find it, so no slow password hash is needed), and the lookup by hash compares no secret
byte by byte. A token's id (the first hex digits of its hash) names it in lists, in the
audit log and in ``/api-token-revoke``; revoking deletes it, so a revoked token and a
made-up one are refused alike.

Records live in ``api_tokens`` (hash -> record) with a per-guild index
``api_tokens_by_guild`` ((guild, token id) -> hash), both written in one commit.
Creating is idempotent by the request's key: a repeat finds the token it made, but its
secret is gone, so the repeat says so instead of showing it again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from actors import keys
from actors.errors import InvalidInput, NotFound
from limits import api_token_chars_max, api_token_name_chars_max, api_tokens_per_guild_max
from storage import RecordCodec, Store

TOKEN_PREFIX = "crp_"
token_random_bytes = 32
token_id_chars = 12
SCOPES = ("read", "write")

_TOKEN_TEXT = re.compile(r"crp_[A-Za-z0-9_-]{43}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")


@dataclass(frozen=True)
class ApiToken:
    """What is known of a token: never the token itself."""

    token_id: str
    guild: int
    name: str
    scope: Literal["read", "write"]
    created_by: int
    created_at: float
    created_by_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


@dataclass(frozen=True)
class CreatedToken:
    """A new token and its secret (``secret`` is empty when this answers a repeat of the
    request that created it: the secret was shown once and is not kept)."""

    token: ApiToken
    secret: str


_TOKEN = RecordCodec(ApiToken, kind="api_token", version=1)


def token_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _index_key(guild: int, token_id: str) -> bytes:
    return keys.u64(guild) + token_id.encode()


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= api_token_name_chars_max or not _NAME.fullmatch(name):
        raise InvalidInput(
            "name",
            f"1 to {api_token_name_chars_max} letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return name


class ApiTokens:
    """Create, list, revoke and check API tokens, over one store."""

    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    async def create(
        self, guild: int, *, name: str, scope: str, created_by: int, key: str
    ) -> CreatedToken:
        """A new token of ``guild``; names are unique per guild, and a guild holds at most
        ``api_tokens_per_guild_max``."""
        assert 1 <= guild <= keys.u64_max and 1 <= created_by <= keys.u64_max
        assert key, key
        name = check_name(name)
        if scope not in SCOPES:
            raise InvalidInput("scope", "must be read or write")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(token_random_bytes)
        digest = token_hash(secret)
        record = ApiToken(
            digest.hex()[:token_id_chars],
            guild,
            name,
            "write" if scope == "write" else "read",
            created_by,
            self._now(),
            key,
        )
        tokens, by_guild = self._store.db("api_tokens"), self._store.db("api_tokens_by_guild")

        def write(txn: Any) -> CreatedToken:
            existing = _list(txn, tokens, by_guild, guild)
            for earlier in existing:
                if earlier.created_by_key == key:
                    return CreatedToken(earlier, "")
            if any(t.name.casefold() == name.casefold() for t in existing):
                raise InvalidInput("name", f"a token named {name!r} exists; pick another name")
            if len(existing) >= api_tokens_per_guild_max:
                raise InvalidInput(
                    "name", f"a server holds at most {api_tokens_per_guild_max} tokens; revoke one"
                )
            txn.put(digest, _TOKEN.encode(record), db=tokens)
            txn.put(_index_key(guild, record.token_id), digest, db=by_guild)
            return CreatedToken(record, secret)

        return await self._store.write(write)

    def of_guild(self, guild: int) -> list[ApiToken]:
        """The guild's tokens, in the order of their ids."""
        with self._store.read() as txn:
            return _list(
                txn, self._store.db("api_tokens"), self._store.db("api_tokens_by_guild"), guild
            )

    async def revoke(self, guild: int, which: str) -> ApiToken:
        """Delete the guild's token named ``which`` (its id or its name)."""
        wanted = which.strip()
        tokens, by_guild = self._store.db("api_tokens"), self._store.db("api_tokens_by_guild")

        def write(txn: Any) -> ApiToken:
            for token in _list(txn, tokens, by_guild, guild):
                if wanted in (token.token_id, token.name) or token.name.casefold() == (
                    wanted.casefold()
                ):
                    index = _index_key(guild, token.token_id)
                    digest = txn.get(index, db=by_guild)
                    txn.delete(bytes(digest), db=tokens)
                    txn.delete(index, db=by_guild)
                    return token
            raise NotFound("API token", wanted)

        return await self._store.write(write)

    def authenticate(self, presented: str) -> ApiToken | None:
        """The token ``presented`` is, or None for one that was never made or is revoked."""
        if len(presented) > api_token_chars_max or not _TOKEN_TEXT.fullmatch(presented):
            return None
        with self._store.read() as txn:
            raw = txn.get(token_hash(presented), db=self._store.db("api_tokens"))
        return None if raw is None else _TOKEN.decode(raw)


def _list(txn: Any, tokens: Any, by_guild: Any, guild: int) -> list[ApiToken]:
    prefix = keys.u64(guild)
    found = []
    for key, digest in keys.prefixed(txn, by_guild, prefix):
        raw = txn.get(bytes(digest), db=tokens)
        assert raw is not None, ("token index without its token", key)
        found.append(_TOKEN.decode(raw))
    return found
