"""The casino's commands: blackjack with buttons, the instant games, rules and verification.

Each handler makes one call to the ``Games`` service with the interaction id as the
idempotency key, so a duplicated delivery plays nothing twice, and renders the game as an
embed in the scope's currency with its figures in ``Reply.result``. A blackjack message
carries its buttons' whole meaning in their custom ids, ``bj:<game_id>:<step>:<action>``:
a press needs no state in memory, so the buttons keep working after a restart, and the
step makes a double click land on a stale step, which the engine answers with the current
game instead of a second move.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from actors.economy import Economy
from actors.errors import GameInProgress, InvalidInput, NotFound
from actors.games import Games, GameView, InstantResult, VerifyReport, rules
from actors.games.rules import blackjack as bj
from actors.games.rules import coinflip, dice, roulette, slots
from actors.games.rules.fair import client_seed_chars_max, server_seed_chars
from actors.records import ScopeSettings
from bot.commands.render import money, signed_money, timestamp
from bot.model import (
    Button,
    ButtonPress,
    ButtonRoute,
    ButtonStyle,
    Command,
    Field,
    Invocation,
    Option,
    OptionKind,
    Reply,
)

BLACKJACK_PREFIX = "bj"
# A blackjack verification lists every action of the round; a round has at most a few
# dozen, so this bound only stops abuse.
_actions_chars_max = 400
_game_id_chars_max = 64

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
_CUSTOM_ID = re.compile(r"bj:([0-9a-f]{1,64}):([0-9]{1,9}):([a-z]{1,16})")
_NONCE = re.compile(r"[0-9]{1,19}")
_ACTION_SEPARATORS = re.compile(r"[\s,]+")


def games_commands(
    games: Games, economy: Economy
) -> tuple[tuple[Command, ...], tuple[ButtonRoute, ...]]:
    """The casino's commands and its one button route, for ``build_command_set``."""
    casino = _Casino(games, economy)
    return casino.commands(), (ButtonRoute(BLACKJACK_PREFIX, casino.press_blackjack),)


def blackjack_custom_id(game_id: str, step: int, action: str) -> str:
    """The custom id of a blackjack button: everything its press needs."""
    return f"{BLACKJACK_PREFIX}:{game_id}:{step}:{action}"


def _stake_option() -> Option:
    return Option(
        "stake", OptionKind.INTEGER, "Coins to bet", min_value=1, max_value=rules.stake_coins_max
    )


def _seed_option() -> Option:
    return Option(
        "seed",
        OptionKind.STRING,
        "Your client seed for the provably fair draw (default: random)",
        required=False,
        max_length=client_seed_chars_max,
    )


class _Casino:
    """Handlers over one ``Games`` service; the economy gives each scope's currency."""

    def __init__(self, games: Games, economy: Economy) -> None:
        self.games = games
        self.economy = economy

    def commands(self) -> tuple[Command, ...]:
        return (*self._play_commands(), *self._info_commands())

    def _play_commands(self) -> tuple[Command, ...]:
        stake, seed = _stake_option(), _seed_option()
        return (
            Command("blackjack", "Play a hand of blackjack", (stake, seed), self._blackjack),
            Command(
                "coinflip",
                "Call heads or tails; a right call pays 1:1",
                (
                    stake,
                    Option("choice", OptionKind.STRING, "Your call", choices=coinflip.SIDES),
                    seed,
                ),
                self._coinflip,
            ),
            Command(
                "dice",
                "Guess a die (pays 5:1) or bet two dice total over or under 7 (pays 1:1)",
                (
                    stake,
                    Option("bet", OptionKind.STRING, "What you bet on", choices=dice.BETS),
                    Option(
                        "number",
                        OptionKind.INTEGER,
                        "The face you guess, for a number bet",
                        required=False,
                        min_value=1,
                        max_value=dice.FACES,
                    ),
                    seed,
                ),
                self._dice,
            ),
            Command("slots", "Spin the slot machine", (stake, seed), self._slots),
            Command(
                "roulette",
                "Bet on one spin of a European roulette wheel",
                (
                    stake,
                    Option(
                        "bet",
                        OptionKind.STRING,
                        "What you bet on",
                        choices=tuple(roulette.PAYOUT_MULTIPLES),
                    ),
                    Option(
                        "number",
                        OptionKind.INTEGER,
                        "The pocket of a straight bet, or which dozen or column (1-3)",
                        required=False,
                        min_value=0,
                        max_value=roulette.POCKETS - 1,
                    ),
                    seed,
                ),
                self._roulette,
            ),
        )

    def _info_commands(self) -> tuple[Command, ...]:
        return (
            Command("blackjack-rules", "The blackjack table's rules", (), self._blackjack_rules),
            Command("slots-table", "The slot machine's pay table", (), self._slots_table),
            Command(
                "verify",
                "Recompute a finished game from its revealed seeds",
                (
                    Option(
                        "game",
                        OptionKind.STRING,
                        "The game id",
                        max_length=_game_id_chars_max,
                    ),
                ),
                self._verify,
            ),
            Command(
                "verify-seeds",
                "Recompute a game from seeds you give, without trusting stored records",
                _verify_seeds_options(),
                self._verify_seeds,
            ),
        )

    # --- blackjack ---------------------------------------------------------------------

    async def _blackjack(self, inv: Invocation) -> Reply:
        try:
            view = await self.games.start_blackjack(
                inv.guild_id,
                inv.user_id,
                inv.options["stake"],
                str(inv.interaction_id),
                client_seed=inv.options.get("seed"),
            )
        except GameInProgress as running:
            # The message of the running game may be lost in the channel; showing it again
            # with working buttons is what the player needs, and no new stake was taken.
            view = await self.games.show(running.game_id, inv.user_id)
            note = "You already have a game running, so no new stake was taken; here it is."
            return await self._blackjack_reply(inv.guild_id, view, note=note)
        return await self._blackjack_reply(inv.guild_id, view)

    async def press_blackjack(self, press: ButtonPress) -> Reply:
        matched = _CUSTOM_ID.fullmatch(press.custom_id)
        if matched is None:
            raise NotFound("button", press.custom_id)
        game_id, step, action = matched.groups()
        view = await self.games.move(
            game_id, press.user_id, action, int(step), key=str(press.interaction_id)
        )
        return await self._blackjack_reply(press.guild_id, view, note=view.note)

    async def _blackjack_reply(self, guild_id: int, view: GameView, *, note: str = "") -> Reply:
        settings = self.economy.settings(guild_id)
        balance = (await self.economy.balance(guild_id, view.user)).balance
        result = {**_view_result(view), "balance": balance}
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
        return _finished_reply(
            settings, view, balance, lead + _settled_table(settings, view), result
        )

    async def _blackjack_rules(self, inv: Invocation) -> Reply:
        return Reply(
            title="Blackjack rules",
            description=bj.rules_text(),
            footer=f"Return to player with basic strategy: {bj.THEORETICAL_RTP:.2%}",
            result={"rules": bj.rules_text().splitlines(), "rtp": bj.THEORETICAL_RTP},
        )

    # --- instant games -----------------------------------------------------------------

    async def _coinflip(self, inv: Invocation) -> Reply:
        return await self._play(inv, "coinflip", {"choice": inv.options["choice"]})

    async def _dice(self, inv: Invocation) -> Reply:
        return await self._play(inv, "dice", _bet_params(inv.options))

    async def _slots(self, inv: Invocation) -> Reply:
        return await self._play(inv, "slots", {})

    async def _roulette(self, inv: Invocation) -> Reply:
        return await self._play(inv, "roulette", _bet_params(inv.options))

    async def _play(self, inv: Invocation, kind: str, params: dict[str, Any]) -> Reply:
        played: InstantResult = await self.games.play(
            inv.guild_id,
            inv.user_id,
            kind,
            {**params, "stake": inv.options["stake"]},
            str(inv.interaction_id),
            client_seed=inv.options.get("seed"),
        )
        view = played.view
        assert view.outcome is not None, view
        settings = self.economy.settings(inv.guild_id)
        result = {**_view_result(view), "balance": played.balance}
        return _finished_reply(settings, view, played.balance, view.outcome["text"], result)

    async def _slots_table(self, inv: Invocation) -> Reply:
        return Reply(
            title="Slots pay table",
            description=slots.paytable_text(),
            result={"rtp": float(slots.rtp())},
        )

    # --- verification ------------------------------------------------------------------

    async def _verify(self, inv: Invocation) -> Reply:
        report = self.games.verify(inv.options["game"])
        return _verify_reply(report)

    async def _verify_seeds(self, inv: Invocation) -> Reply:
        options = inv.options
        nonce_text: str = options["nonce"]
        if not _NONCE.fullmatch(nonce_text):
            raise InvalidInput("nonce", "use the whole number the game showed")
        kind: str = options["kind"]
        params = _verify_params(options)
        seeds = (options["server_seed"], options["client_seed"], int(nonce_text))
        outcome = rules.verify(kind, *seeds, params)
        seed_hash = rules.seed_hash(options["server_seed"])
        return Reply(
            title=f"{kind.capitalize()} recomputed",
            description=(
                f"{outcome['text']}\n\nCompare this and the seed hash with the game's message: "
                "equal values mean the game was dealt from these seeds."
            ),
            fields=(
                Field("Seed hash", f"`{seed_hash}`", inline=False),
                Field("Nonce", str(seeds[2])),
                Field("Params", f"`{_compact(params)}`", inline=False),
            ),
            color=_OUTCOME_COLORS[outcome["outcome"]],
            result={"kind": kind, "seed_hash": seed_hash, "params": params, **outcome},
        )


# --- pure rendering --------------------------------------------------------------------


def _verify_seeds_options() -> tuple[Option, ...]:
    return (
        Option("kind", OptionKind.STRING, "The game's kind", choices=rules.KINDS),
        Option(
            "server_seed",
            OptionKind.STRING,
            "The server seed revealed when the game ended",
            max_length=server_seed_chars,
        ),
        Option(
            "client_seed",
            OptionKind.STRING,
            "The game's client seed",
            max_length=client_seed_chars_max,
        ),
        # Text, not an integer: nonces go up to 2**63, past Discord's integer options.
        Option("nonce", OptionKind.STRING, "The game's nonce", max_length=19),
        _stake_option(),
        Option(
            "choice",
            OptionKind.STRING,
            "Coinflip: the call",
            required=False,
            choices=coinflip.SIDES,
        ),
        Option(
            "bet",
            OptionKind.STRING,
            "Dice or roulette: the bet",
            required=False,
            choices=tuple(dict.fromkeys((*dice.BETS, *roulette.PAYOUT_MULTIPLES))),
        ),
        Option("number", OptionKind.INTEGER, "Dice or roulette: the number", required=False),
        Option(
            "actions",
            OptionKind.STRING,
            "Blackjack: the actions played, in order (hit, stand, double, split)",
            required=False,
            max_length=_actions_chars_max,
        ),
    )


def _bet_params(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``bet`` and, when given, ``number`` of a dice or roulette command."""
    params = {"bet": options["bet"]}
    if "number" in options:
        params["number"] = options["number"]
    return params


def _verify_params(options: Mapping[str, Any]) -> dict[str, Any]:
    """The rules' params from the options a verifier gave; the rules say what is missing."""
    params = {
        name: options[name] for name in ("stake", "choice", "bet", "number") if name in options
    }
    if "actions" in options:
        params["actions"] = [a for a in _ACTION_SEPARATORS.split(options["actions"]) if a]
    return params


def _view_result(view: GameView) -> dict[str, Any]:
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


def _finished_reply(
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
        footer=f"Game {view.game_id} · check it with /verify game:{view.game_id}",
        result=result,
    )


def _fairness_fields(view: GameView) -> tuple[Field, ...]:
    """The seed commitment, and once the game is over the revealed server seed."""
    fields = [Field("Seed hash", f"`{view.seed_hash}`", inline=False)]
    if view.server_seed:
        fields.append(Field("Server seed", f"`{view.server_seed}`", inline=False))
    fields += [Field("Client seed", f"`{view.client_seed}`"), Field("Nonce", str(view.nonce))]
    return tuple(fields)


def _verify_reply(report: VerifyReport) -> Reply:
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
            Field("Params", f"`{_compact(report.params)}`", inline=False),
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


def _compact(params: Mapping[str, Any]) -> str:
    return json.dumps(params, separators=(",", ":"), sort_keys=True)
