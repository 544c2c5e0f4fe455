"""The casino's commands: blackjack with buttons, the instant games, rules and verification.

Each handler makes one call to the ``Games`` service with the interaction id as the
idempotency key, so a duplicated delivery plays nothing twice, and renders the game as an
embed in the scope's currency with its figures in ``Reply.result``. A blackjack message
carries its buttons' whole meaning in their custom ids, ``bj:<game_id>:<step>:<action>``:
a press needs no state in memory, so the buttons keep working after a restart, and the
step makes a double click land on a stale step, which the game answers with the current
game instead of a second move.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from actors import Economy
from actors.errors import GameInProgress, InvalidInput, NotFound
from actors.games import Games, GameView, InstantResult, rules
from actors.games.rules import blackjack as bj
from actors.games.rules import coinflip, dice, roulette, slots
from actors.games.rules.fair import server_seed_chars
from bot.commands.fairness import fairness_commands
from bot.commands.game_replies import (
    BLACKJACK_PREFIX,
    blackjack_reply,
    finished_reply,
    seeds_reply,
    verify_reply,
    view_result,
)
from bot.model import (
    ButtonPress,
    ButtonRoute,
    Command,
    Invocation,
    Option,
    OptionKind,
    Reply,
)
from limits import client_seed_chars_max, game_actions_chars_max, game_id_chars_max, stake_coins_max

_CUSTOM_ID = re.compile(r"bj:([0-9a-f]{1,64}):([0-9]{1,9}):([a-z]{1,16})")
_NONCE = re.compile(r"[0-9]{1,19}")
_ACTION_SEPARATORS = re.compile(r"[\s,]+")


def games_commands(
    games: Games, economy: Economy
) -> tuple[tuple[Command, ...], tuple[ButtonRoute, ...]]:
    """The casino's commands and its one button route, for ``build_command_set``."""
    handlers = _GameCommands(games, economy)
    commands = (*handlers.commands(), *fairness_commands(games, economy))
    return commands, (ButtonRoute(BLACKJACK_PREFIX, handlers.press_blackjack),)


def _stake_option() -> Option:
    return Option(
        "stake", OptionKind.INTEGER, "Coins to bet", min_value=1, max_value=stake_coins_max
    )


class _GameCommands:
    """The casino's command and button handlers over one ``Games`` service; the economy
    gives each scope's currency and the player's balance."""

    def __init__(self, games: Games, economy: Economy) -> None:
        self.games = games
        self.economy = economy

    def commands(self) -> tuple[Command, ...]:
        return (*self._play_commands(), *self._info_commands())

    def _play_commands(self) -> tuple[Command, ...]:
        stake = _stake_option()
        return (
            Command("blackjack", "Play a hand of blackjack", (stake,), self._blackjack),
            Command(
                "coinflip",
                "Call heads or tails; a right call pays 1:1",
                (
                    stake,
                    Option("choice", OptionKind.STRING, "Your call", choices=coinflip.SIDES),
                ),
                self._coinflip,
            ),
            Command(
                "dice",
                "Guess a die (pays 5:1) or two dice over/under 7 "
                "(pays 1:1; a total of 7 loses both)",
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
                ),
                self._dice,
            ),
            Command("slots", "Spin the slot machine", (stake,), self._slots),
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
                ),
                self._roulette,
            ),
        )

    def _info_commands(self) -> tuple[Command, ...]:
        return (
            Command("blackjack-rules", "The blackjack table's rules", (), self._blackjack_rules),
            Command(
                "slots-table", "The slot machine's reel strip and pay table", (), self._slots_table
            ),
            Command(
                "verify",
                "Recompute a finished game from its revealed seeds",
                (
                    Option(
                        "game",
                        OptionKind.STRING,
                        "The game id",
                        max_length=game_id_chars_max,
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
        return blackjack_reply(settings, view, balance, note=note)

    async def _blackjack_rules(self, inv: Invocation) -> Reply:
        return Reply(
            title="Blackjack rules",
            description=bj.rules_text(),
            footer=(
                f"Return to player with basic strategy: {bj.THEORETICAL_RTP:.2%} at an even "
                f"stake, {bj.rtp(1):.2%} at stake 1 (rounding up)"
            ),
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
        )
        view = played.view
        assert view.outcome is not None, view
        settings = self.economy.settings(inv.guild_id)
        result = {**view_result(view), "balance": played.balance}
        return finished_reply(settings, view, played.balance, view.outcome["text"], result)

    async def _slots_table(self, inv: Invocation) -> Reply:
        return Reply(
            title="Slots pay table",
            description=slots.paytable_text(),
            result={
                "reel": list(slots.REEL),
                "paytable": [
                    {"symbols": list(line), "pays": multiple} for line, multiple in slots.PAYTABLE
                ],
                "rtp": float(slots.rtp()),
            },
        )

    # --- verification ------------------------------------------------------------------

    async def _verify(self, inv: Invocation) -> Reply:
        report = self.games.verify(inv.options["game"])
        return verify_reply(report)

    async def _verify_seeds(self, inv: Invocation) -> Reply:
        options = inv.options
        nonce_text: str = options["nonce"]
        if not _NONCE.fullmatch(nonce_text):
            raise InvalidInput("nonce", "use the whole number the game showed")
        kind: str = options["kind"]
        params = _verify_params(options)
        seeds = (options["server_seed"], options["client_seed"], int(nonce_text))
        outcome = rules.verify(kind, *seeds, params)
        return seeds_reply(kind, rules.seed_hash(options["server_seed"]), seeds[2], params, outcome)


# --- options and params --------------------------------------------------------------


def _verify_seeds_options() -> tuple[Option, ...]:
    return (
        Option("kind", OptionKind.STRING, "The game's kind", choices=rules.KINDS),
        Option(
            "server_seed",
            OptionKind.STRING,
            "The server seed /fairness revealed when you set a new client seed",
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
            max_length=game_actions_chars_max,
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
