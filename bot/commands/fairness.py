"""The provably fair seed pair commands: ``/fairness`` shows or rotates the player's pair.

Commit, then reveal: the active pair's server seed is secret and only its SHA-256 is
shown, before any bet is dealt with it; its client seed is random (picked by the server
and shown) until the player sets their own, which rotates the pair: the old server seed
is revealed, so every game dealt with it can be checked (``/verify``, or
``scripts/verify_fair.py`` without our code), and a new one is committed.
"""

from __future__ import annotations

from actors import Economy
from actors.games import Games
from actors.games.fairness import SeedPair
from bot.model import Command, Field, Invocation, Option, OptionKind, Reply
from limits import client_seed_chars_max

_PAIR_COLOR = 0x3498DB


def fairness_commands(games: Games, economy: Economy) -> tuple[Command, ...]:
    """``/fairness``, for ``games_commands`` to serve beside the games."""
    del economy  # The seed pair commands show no money.
    handlers = _FairnessCommands(games)
    return (
        Command(
            "fairness",
            "Your seed pair: the committed server seed hash, your client seed, the next nonce",
            (
                Option(
                    "client_seed",
                    OptionKind.STRING,
                    "Your own client seed (else a random one the server picks and shows); "
                    "reveals the old seed",
                    required=False,
                    max_length=client_seed_chars_max,
                ),
            ),
            handlers.fairness,
        ),
    )


class _FairnessCommands:
    def __init__(self, games: Games) -> None:
        self.games = games

    async def fairness(self, inv: Invocation) -> Reply:
        client_seed = inv.options.get("client_seed")
        if client_seed is None:
            pair = await self.games.seed_pair(inv.guild_id, inv.user_id)
            return Reply(
                title="Your seed pair",
                description=(
                    "Your next bets are dealt from this pair's secret server seed, committed "
                    "by the hash below before you bet, your client seed and the nonce, which "
                    "counts your bets from 0. The client seed is random, picked by the server "
                    "and shown here, until you set your own with `client_seed`; setting it "
                    "reveals this server seed so you can check every game it dealt, and "
                    "opens the next pair, whose server seed is already committed (its hash "
                    "is below) before you choose your seed."
                ),
                fields=_pair_fields(pair, "Server seed hash"),
                color=_PAIR_COLOR,
                result={"active": _pair_result(pair)},
            )
        revealed, opened = await self.games.rotate_seeds(
            inv.guild_id, inv.user_id, client_seed, str(inv.interaction_id)
        )
        return Reply(
            title="New seed pair",
            description=(
                f"Your old server seed is revealed: it hashes to the hash you were shown, and "
                f"its {revealed.nonce} bets (nonces 0 to {revealed.nonce - 1}) can now be "
                "verified with `/verify game:ID`. Your next bets use the new pair, nonce 0."
                if revealed.nonce
                else "Your old server seed is revealed (no bets were made with it). Your next "
                "bets use the new pair, nonce 0."
            ),
            fields=(
                Field("Revealed server seed", f"`{revealed.server_seed}`", inline=False),
                Field("Its hash", f"`{revealed.seed_hash}`", inline=False),
                Field("Its client seed", f"`{revealed.client_seed}`"),
                Field("Bets made with it", str(revealed.nonce)),
                *_pair_fields(opened, "New server seed hash"),
            ),
            color=_PAIR_COLOR,
            result={
                "revealed": {**_pair_result(revealed), "server_seed": revealed.server_seed},
                "active": _pair_result(opened),
            },
        )


def _pair_fields(pair: SeedPair, hash_title: str) -> tuple[Field, ...]:
    return (
        Field(hash_title, f"`{pair.seed_hash}`", inline=False),
        Field("Client seed", f"`{pair.client_seed}`"),
        Field("Next nonce", str(pair.nonce)),
        Field("Next pair's server seed hash", f"`{pair.next_seed_hash}`", inline=False),
    )


def _pair_result(pair: SeedPair) -> dict[str, object]:
    return {
        "seq": pair.seq,
        "seed_hash": pair.seed_hash,
        "client_seed": pair.client_seed,
        "next_nonce": pair.nonce,
        "next_seed_hash": pair.next_seed_hash,
        "scheme": pair.scheme,
    }
