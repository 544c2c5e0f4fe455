"""How the casino's commands render a game: embeds in the scope's currency, buttons, and
each reply's figures as plain JSON values in ``Reply.result``.

Pure functions of a game's view (or verification report) and the scope's settings; the
handlers in ``bot/commands/games.py`` fetch those and call these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from actors import ScopeSettings
from actors.games import GameView, VerifyReport
from actors.games.rules import blackjack as bj
from bot.commands.render import money, signed_money, timestamp
from bot.model import Button, ButtonStyle, Field, Reply

BLACKJACK_PREFIX = "bj"

_WIN_COLOR = 0x2ECC71
_LOSS_COLOR = 0xE74C3C
_PUSH_COLOR = 0x95A5A6
_LIVE_COLOR = 0xD4AF37
_OUTCOME_COLORS = {"win": _WIN_COLOR, "loss": _LOSS_COLOR, "push": _PUSH_COLOR}
_OUTCOME_TITLES = {"win": "you win", "loss": "you lose", "push": "push"}
_HAND_RESULTS = {
    "natural": "blackjack",
    "win": "wins",
    "push": "pushes",
    "loss": "loses",
    "bust": "busts",
}
_BUTTONS = (
    (bj.Action.HIT, "Hit", ButtonStyle.PRIMARY),
    (bj.Action.STAND, "Stand", ButtonStyle.SUCCESS),
    (bj.Action.DOUBLE, "Double", ButtonStyle.SECONDARY),
    (bj.Action.SPLIT, "Split", ButtonStyle.SECONDARY),
)


def blackjack_custom_id(game_id: str, step: int, action: str) -> str:
    """The custom id of a blackjack button: everything its press needs."""
    return f"{BLACKJACK_PREFIX}:{game_id}:{step}:{action}"


def blackjack_reply(
    settings: ScopeSettings, view: GameView, balance: int, *, note: str = ""
) -> Reply:
    """A blackjack game, live (with its buttons) or finished, and the player's balance."""
    result = {**view_result(view), "balance": balance}
    if note:
        result["note"] = note
    lead = f"*{note}*\n\n" if note else ""
    if view.phase == "live":
        return Reply(
            title="Blackjack",
            description=lead + _live_table(view),
            fields=(
                Field("Stake", money(settings, view.staked)),
                Field("Stands for you", timestamp(view.deadline, "R")),
                Field("Balance", money(settings, balance)),
                *_fairness_fields(view),
            ),
            buttons=_blackjack_buttons(view),
            color=_LIVE_COLOR,
            footer=f"Game {view.game_id}",
            result=result,
        )
    return finished_reply(settings, view, balance, lead + _settled_table(settings, view), result)


def seeds_reply(
    kind: str, seed_hash: str, nonce: int, params: dict[str, Any], outcome: dict[str, Any]
) -> Reply:
    """A game recomputed from seeds the player gave: its stored-form outcome record."""
    return Reply(
        title=f"{kind.capitalize()} recomputed",
        description=(
            f"{outcome['text']}\n\nCompare this and the seed hash with the game's message: "
            "equal values mean the game was dealt from these seeds."
        ),
        fields=(
            Field("Seed hash", f"`{seed_hash}`", inline=False),
            Field("Nonce", str(nonce)),
            Field("Params", f"`{compact(params)}`", inline=False),
        ),
        color=_OUTCOME_COLORS[outcome["outcome"]],
        result={"kind": kind, "seed_hash": seed_hash, "params": params, **outcome},
    )


def view_result(view: GameView) -> dict[str, Any]:
    """A game's figures as plain JSON values for ``Reply.result``."""
    result: dict[str, Any] = {
        "game_id": view.game_id,
        "kind": view.kind,
        "phase": view.phase,
        "step": view.step,
        "staked": view.staked,
        "legal": list(view.legal),
        "seed_hash": view.seed_hash,
        "server_seed": view.server_seed,
        "client_seed": view.client_seed,
        "nonce": view.nonce,
    }
    if view.kind == "blackjack":
        result["hands"] = [
            {
                "cards": [bj.card_label(c) for c in cards],
                "total": bj.hand_value(cards)[0],
                "bet": bet,
            }
            for cards, bet in view.hands
        ]
        result["active"] = view.active
        result["dealer"] = [bj.card_label(c) for c in view.dealer]
        result["deadline"] = view.deadline
    if view.outcome is not None:
        payout = int(view.outcome["payout"])
        result |= {
            "outcome": view.outcome["outcome"],
            "payout": payout,
            "net": payout - view.staked,
            "detail": view.outcome["detail"],
        }
    return result


def _live_table(view: GameView) -> str:
    """The player's hands, the one in play marked when there are two, and the up card."""
    if len(view.hands) == 1:
        lines = [f"**Your hand:** {bj.hand_label(view.hands[0][0])}"]
    else:
        lines = [
            f"{'▶ ' if number - 1 == view.active else ''}**Hand {number}:** {bj.hand_label(cards)}"
            for number, (cards, _) in enumerate(view.hands, start=1)
        ]
    lines.append(f"**Dealer shows:** {' '.join(bj.card_label(c) for c in view.dealer)}")
    return "\n".join(lines)


def _settled_table(settings: ScopeSettings, view: GameView) -> str:
    """Every hand's cards, result and payout, and the dealer's whole hand."""
    if view.outcome is None:
        return "This game was called off and its whole stake went back to your wallet."
    detail = view.outcome["detail"]
    hands = detail["hands"]
    lines = [f"**Dealer:** {bj.hand_label(detail['dealer'])}"]
    for number, hand in enumerate(hands, start=1):
        name = "Your hand" if len(hands) == 1 else f"Hand {number}"
        result = _HAND_RESULTS[hand["result"]]
        paid = money(settings, hand["payout"])
        lines.append(f"**{name}:** {bj.hand_label(hand['cards'])} — {result}, pays {paid}")
    return "\n".join(lines)


def _blackjack_buttons(view: GameView) -> tuple[Button, ...]:
    """All four actions in a fixed place, the illegal ones disabled, so the layout never
    jumps under the player's cursor."""
    return tuple(
        Button(
            blackjack_custom_id(view.game_id, view.step, action),
            label,
            style,
            disabled=action not in view.legal,
        )
        for action, label, style in _BUTTONS
    )


def finished_reply(
    settings: ScopeSettings,
    view: GameView,
    balance: int,
    description: str,
    result: dict[str, Any],
) -> Reply:
    """A settled (or refunded) game of any kind: figures, revealed seeds, how to verify."""
    outcome = view.outcome
    paid: tuple[Field, ...] = ()
    if outcome is None:
        title, color = "refunded", _PUSH_COLOR
    else:
        payout = int(outcome["payout"])
        title, color = _OUTCOME_TITLES[outcome["outcome"]], _OUTCOME_COLORS[outcome["outcome"]]
        paid = (
            Field("Paid out", money(settings, payout)),
            Field("Net", signed_money(settings, payout - view.staked)),
        )
    return Reply(
        title=f"{view.kind.capitalize()} — {title}",
        description=description,
        fields=(
            Field("Stake", money(settings, view.staked)),
            *paid,
            Field("Balance", money(settings, balance)),
            *_fairness_fields(view),
        ),
        color=color,
        footer=(
            f"Game {view.game_id} · "
            + ("" if view.server_seed else "once /fairness client_seed:... reveals its seed, ")
            + f"check it with /verify game:{view.game_id}"
        ),
        result=result,
    )


def _fairness_fields(view: GameView) -> tuple[Field, ...]:
    """The seed commitment, client seed and nonce, and the server seed once its pair is
    revealed (the player rotated to a new pair)."""
    fields = [Field("Seed hash", f"`{view.seed_hash}`", inline=False)]
    if view.server_seed:
        fields.append(Field("Server seed", f"`{view.server_seed}`", inline=False))
    fields += [Field("Client seed", f"`{view.client_seed}`"), Field("Nonce", str(view.nonce))]
    return tuple(fields)


def verify_reply(report: VerifyReport) -> Reply:
    verdict = (
        "✅ The recomputed outcome matches the stored one."
        if report.matches
        else "❌ The recomputed outcome does NOT match the stored one."
    )
    stored = report.stored["text"] if report.stored else "none"
    return Reply(
        title=f"Verify {report.kind} game {report.game_id}",
        description=(
            f"{verdict}\nCheck that the seed hash below is the one shown when the game "
            f"started.\n\n**Recomputed:** {report.recomputed['text']}\n**Stored:** {stored}"
        ),
        fields=(
            Field("Server seed", f"`{report.server_seed}`", inline=False),
            Field("Seed hash", f"`{report.seed_hash}`", inline=False),
            Field("Client seed", f"`{report.client_seed}`"),
            Field("Nonce", str(report.nonce)),
            Field("Params", f"`{compact(report.params)}`", inline=False),
        ),
        color=_WIN_COLOR if report.matches else _LOSS_COLOR,
        result={
            "game_id": report.game_id,
            "kind": report.kind,
            "matches": report.matches,
            "server_seed": report.server_seed,
            "seed_hash": report.seed_hash,
            "client_seed": report.client_seed,
            "nonce": report.nonce,
            "params": report.params,
            "recomputed": report.recomputed,
            "stored": report.stored,
        },
    )


def compact(params: Mapping[str, Any]) -> str:
    return json.dumps(params, separators=(",", ":"), sort_keys=True)
