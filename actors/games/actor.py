"""The blackjack actor: one live game, the only code that writes its record after the
stake commit created it.

A bet's path through this module: ``Games.start_blackjack`` has already moved the stake
from the wallet into the game's escrow in the same commit that wrote the record, its
live-index entry and its deadline timer. Each ``Move`` is then applied by the pure rules
and persisted before the player sees it: a plain move is one write of the record and its
timer; a double or split raises the stake through ``Games.stake``, so the wallet's debit
and the record's new escrow share one commit. When the rules say the round is over (or
its deadline passes), ``_settle`` writes, in one commit, the settled record, the house's
side and the payout's outbox record; the payout transfer is then delivered to the wallet.
A refund (recovery, or the service asked) goes through ``Games.refund``, the one refund
commit shared with the escalation of a crashing game.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors import keys
from actors.accounts import HOUSE, TransferId, system_add
from actors.errors import GameOver, NotFound, NotYourGame
from actors.failures import RuntimeFailure
from actors.games.records import GAME, GAME_TIMER_KIND, LIVE, SETTLED, GameRecord, to_player
from actors.games.rules import blackjack as bj
from actors.games.views import GameView, view_of
from actors.records import OUTBOX
from actors.runtime import Actor
from actors.timer_records import TimerRecord, delete_timer, put_timer

if TYPE_CHECKING:
    from actors.games.service import Games

# The actor kind of live games in the actor system.
GAME_ACTOR = "game"


@dataclass(frozen=True)
class Move:
    """A player's action, drawn at ``step``; ``key`` is the click's idempotency key."""

    user: int
    action: str
    step: int
    key: str


@dataclass(frozen=True)
class Show:
    user: int | None = None


@dataclass(frozen=True)
class Expire:
    """The game's deadline timer fired."""


@dataclass(frozen=True)
class Refund:
    reason: str


class BlackjackGame(Actor):
    """One live blackjack game. The only code that writes its records after creation."""

    def __init__(self, games: Games, game_id: str) -> None:
        self.games = games
        self.store = games.store
        self.game_id = game_id
        self.record: GameRecord | None = None

    async def activate(self) -> None:
        self.record = self.games.load(self.game_id)
        record = self.record
        if record is not None and record.phase == LIVE:
            assert record.escrow > 0, record
            if bj.is_settled(bj.BlackjackState.from_record(record.state)):
                # A crash came between the last move's commit and the settlement's.
                await self._settle()

    async def handle(self, message: Any) -> Any:
        record = self.record
        if record is None:
            raise NotFound("game", self.game_id)
        if isinstance(message, Show):
            return view_of(record)
        if isinstance(message, Move):
            return await self._move(record, message)
        if isinstance(message, Expire):
            return await self._expire(record)
        if isinstance(message, Refund):
            return await self._refund(record, message.reason)
        raise AssertionError(f"game got an unknown message {message!r}")

    async def _move(self, record: GameRecord, move: Move) -> GameView:
        if move.user != record.user:
            raise NotYourGame(self.game_id)
        if record.phase != LIVE:
            raise GameOver(self.game_id)
        if move.step != record.step:
            return view_of(record, note="that button was already used; here is the game now")
        action = bj.parse_action(move.action)
        state = bj.BlackjackState.from_record(record.state)
        extra = bj.extra_stake(state, action)
        after = bj.apply(state, action)
        updated = dataclasses.replace(
            record,
            state=after.to_record(),
            escrow=record.escrow + extra,
            staked=record.staked + extra,
            deadline=self.games.now() + self.games.idle_seconds,
        )
        write = self._move_write(record, updated)
        if extra:
            try:
                await self.games.stake(updated, move.key, extra, 0, write)
            except RuntimeFailure:
                # Unknown whether the raise committed: take the durable truth.
                self.record = self.games.load(self.game_id)
                raise
        else:
            await self.store.write(write)
        self.record = updated
        self.games.deadlines_moved()
        if bj.is_settled(after):
            await self._settle()
        assert self.record is not None
        return view_of(self.record)

    def _move_write(self, before: GameRecord, after: GameRecord) -> Callable[[Any], None]:
        """The write of a move: replace the record ``before`` (asserted to be the stored
        one) by ``after`` and move its deadline timer. It runs in the store's writer, or
        inside the wallet's stake commit when the move raises the stake."""
        expected, value, store = GAME.encode(before), GAME.encode(after), self.store
        key = keys.game_key(self.game_id)
        timer = TimerRecord(GAME_TIMER_KIND, self.game_id, after.deadline)

        def write(txn: Any) -> None:
            assert txn.get(key, db=store.db("games")) == expected, self.game_id
            txn.put(key, value, db=store.db("games"))
            delete_timer(txn, store, self.game_id, before.deadline)
            put_timer(txn, store, self.game_id, timer)

        return write

    async def _expire(self, record: GameRecord) -> GameView:
        if record.phase != LIVE or self.games.now() < record.deadline:
            return view_of(record)
        state = bj.BlackjackState.from_record(record.state)
        while not bj.is_settled(state):
            state = bj.apply(state, bj.timeout_action(state))
        updated = dataclasses.replace(record, state=state.to_record())
        await self.store.write(self._move_write(record, updated))
        self.record = updated
        await self._settle()
        assert self.record is not None
        return view_of(self.record)

    async def _settle(self) -> None:
        """The settlement commit: the settled record, the house's side and the payout's
        outbox record in one write; then the payout transfer is delivered."""
        record = self.record
        assert record is not None and record.phase == LIVE
        settlement = bj.settle(bj.BlackjackState.from_record(record.state))
        settled = dataclasses.replace(
            record, phase=SETTLED, escrow=0, outcome=settlement.to_record()
        )
        payout = to_player(
            record,
            TransferId.settlement(self.game_id, record.round),
            settlement.payout,
            f"blackjack payout ({settlement.result})",
            self.games.now(),
        )
        expected, value, store = GAME.encode(record), GAME.encode(settled), self.store
        key = keys.game_key(self.game_id)

        def write(txn: Any) -> None:
            assert txn.get(key, db=store.db("games")) == expected, self.game_id
            txn.put(key, value, db=store.db("games"))
            txn.delete(
                keys.live_game_key(record.scope, record.user, record.kind),
                db=store.db("live_games"),
            )
            delete_timer(txn, store, self.game_id, record.deadline)
            system_add(txn, store.db("system"), record.scope, HOUSE, record.escrow - payout.amount)
            if payout.amount:
                txn.put(payout.transfer_id.encode(), OUTBOX.encode(payout), db=store.db("outbox"))

        await self.store.write(write)
        self.record = settled
        self.games.count_settled(settled, settlement.result, settlement.payout)
        if payout.amount:
            await self.games.deliver(payout.transfer_id)

    async def _refund(self, record: GameRecord, reason: str) -> bool:
        """Refund the whole escrow if the game is still live; True if it was."""
        if record.phase != LIVE:
            return False
        self.record = await self.games.refund(record, reason)
        return True
