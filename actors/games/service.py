"""The games service: starts games, routes moves to game actors, verifies, recovers.

How a bet flows. A command calls ``Games.play`` (an instant game) or
``Games.start_blackjack``. The service checks the stake against the scope's bet limits
(the one check only the domain can make: the limits are per-scope settings), takes the
player's active seed pair (``actors/games/fairness.py``; its server seed was committed
before the bet), lets the pure rules resolve (or deal) the game with the pair's next
nonce, and builds the game's record. ``stake`` is the one stake commit: a ``Wager`` on the
player's wallet, which in ONE transaction debits the stake into the game's escrow and runs
the game's own write (the nonce consumed, its record, and for blackjack its live-index
entry and deadline timer; for an instant game, settled before the commit, the house's
side), so a game record exists, and its nonce is used, if and only if its stake moved. An
instant game pays the player in that same commit. A blackjack game lives on as a
``BlackjackGame`` actor (``actors/games/actor.py``): its moves, the raises of double and
split (through ``stake`` again), and its settlement commit, after which the payout
transfer is delivered from the outbox to the wallet.

Where each commit is written. The game's writes inside a stake commit are the one place
code of this package runs in another module's transaction: the wallet's ``Wager`` takes
them as a function, because the debit and the record must share the wallet's commit.
Every other commit is written where it runs: the settlement in ``BlackjackGame._settle``,
the refund in ``Games._write_refund`` (for the actor's refund and the escalation alike),
the parking in ``Recovery.unrecoverable``.

Restarts. Every game's state is in its record, so a young game resumes exactly where it
was on its next message. At boot, games older than the recovery window are refunded in
full (``refund``, the one refund commit), and so is a game whose actor passes its restart
intensity; a game that cannot even be refunded is parked (``actors/games/recovery.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from actors import keys
from actors.accounts import HOUSE, TransferId, system_add
from actors.context import EconomyContext
from actors.economy import Economy, check_user_id
from actors.errors import GameInProgress, InvalidInput, NotFound
from actors.failures import RuntimeFailure
from actors.games import counts, fairness, rules
from actors.games.actor import GAME_ACTOR, BlackjackGame, Expire, Move, Show
from actors.games.counts import INSTANT_KINDS
from actors.games.fairness import SeedNotRevealed, SeedPair, SeedPairChanged
from actors.games.records import (
    GAME,
    GAME_TIMER_KIND,
    LIVE,
    REFUNDED,
    SETTLED,
    GameRecord,
    settled_instant,
    to_player,
)
from actors.games.recovery import Recovery, RecoveryReport
from actors.games.rules import blackjack as bj
from actors.games.views import GameView, InstantResult, VerifyReport, verify_report, view_of
from actors.parked import error_text
from actors.records import OUTBOX
from actors.runtime import ActorKind, ActorSystem
from actors.timer_records import TimerRecord, delete_timer, put_timer
from actors.timers import TimerService
from actors.wallet import Wager, WagerResult
from limits import seed_pair_attempts_max
from metrics import Metrics
from storage import RecordDecodeError, Store, packb, unpackb

log = logging.getLogger("croupier.games")


@dataclass
class _BetLock:
    lock: trio.Lock = field(default_factory=trio.Lock)
    users: int = 0


@dataclass(frozen=True)
class _Dealt:
    """A game dealt from a seed pair, ready for its stake commit: the record, the coins
    staked and paid back in that commit, the game's own writes for a record, and the
    kind's cooldown."""

    record: GameRecord
    amount: int
    payout: int
    write: Callable[[GameRecord], Callable[[Any], None]]
    cooldown_seconds: float


class Games:
    """Starts games, routes moves to game actors, verifies, recovers at boot."""

    def __init__(
        self,
        context: EconomyContext,
        actors: ActorSystem,
        economy: Economy,
        timers: TimerService,
        metrics: Metrics,
        *,
        idle_seconds: float,
        recovery_seconds: float,
    ) -> None:
        self.context = context
        self.store: Store = context.store
        self.actors = actors
        self.economy = economy
        self.timers = timers
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        self.recovery_seconds = recovery_seconds
        self._bet_locks: dict[tuple[int, int], _BetLock] = {}
        self.recovery = Recovery(context, actors, metrics, recovery_seconds)
        actors.register(
            ActorKind(GAME_ACTOR, lambda game_id: BlackjackGame(self, game_id), self._escalated)
        )
        timers.register(GAME_TIMER_KIND, self._on_timer)
        for (kind, bet), rtp in rules.theoretical_rtp().items():
            metrics.games_theoretical_rtp.labels(kind, bet).set(rtp)

    # --- reads -------------------------------------------------------------------------

    def now(self) -> float:
        return self.context.now()

    def _raw(self, game_id: str) -> bytes | None:
        if not game_id or len(game_id) > 64:
            return None
        with self.store.read() as txn:
            raw: bytes | None = txn.get(keys.game_key(game_id), db=self.store.db("games"))
        return raw

    def load(self, game_id: str) -> GameRecord | None:
        raw = self._raw(game_id)
        return GAME.decode(raw) if raw is not None else None

    def live(self, guild_id: int, games_max: int = 100) -> list[GameRecord]:
        """The guild's games in play (hands of blackjack waiting for a move), at most
        ``games_max``, read from the live-games index without waking their actors."""
        prefix = keys.u64(self.economy.scope(guild_id))
        found: list[GameRecord] = []
        with self.store.read() as txn:
            for _, value in keys.prefixed(txn, self.store.db("live_games"), prefix):
                if len(found) == games_max:
                    break
                game_id, _ = unpackb(value)
                raw = txn.get(keys.game_key(str(game_id)), db=self.store.db("games"))
                assert raw is not None, ("live game without its record", game_id)
                found.append(GAME.decode(raw))
        return found

    async def show(self, game_id: str, user: int | None = None) -> GameView:
        record = self.load(game_id)
        if record is None:
            raise NotFound("game", game_id)
        if record.phase == LIVE and record.kind == "blackjack":
            view: GameView = await self.actors.ask(GAME_ACTOR, game_id, Show(user))
            return view
        return view_of(record, revealed=self.revealed(record))

    def revealed(self, record: GameRecord) -> bool:
        """Whether ``record``'s server seed may be shown: its seed pair has been rotated
        (a game dealt before seed pairs existed shows its seed once it is over)."""
        seq = record.extra.get("pair")
        if seq is None:
            return record.phase != LIVE
        with self.store.read() as txn:
            return fairness.is_revealed(txn, self.store, record.scope, record.user, int(seq))

    def verify(self, game_id: str) -> VerifyReport:
        """Recompute a finished game from its revealed seeds and compare."""
        record = self.load(game_id)
        if record is None:
            raise NotFound("game", game_id)
        if record.phase != SETTLED:
            raise InvalidInput("game", "only a settled game can be verified; finish it first")
        if not self.revealed(record):
            raise SeedNotRevealed(game_id)
        return verify_report(record)

    # --- seed pairs --------------------------------------------------------------------

    async def seed_pair(self, guild_id: int, user: int) -> SeedPair:
        """The player's active seed pair, opened now if they have none yet."""
        scope = self.economy.scope(guild_id)
        check_user_id(user, "user")
        pair: SeedPair = await self.store.write(
            fairness.look_write(self.store, scope, user, self.context.now())
        )
        return pair

    async def rotate_seeds(
        self, guild_id: int, user: int, client_seed: str, key: str
    ) -> tuple[SeedPair, SeedPair]:
        """Set the player's client seed: reveal the active pair and open a new one with a
        fresh committed server seed; returns (revealed, new). Refused with
        ``GameInProgress`` while a blackjack round dealt from the active pair is live."""
        scope = self.economy.scope(guild_id)
        self.economy.check_key(key)
        check_user_id(user, "user")
        write = fairness.rotate_write(self.store, scope, user, client_seed, key, self.context.now())
        revealed, opened = await self.store.write(write)
        return revealed, opened

    # --- starting games: seeds, then the stake commit ----------------------------------

    def _check_stake(self, scope: int, stake: object) -> int:
        """The domain's one check of a stake: the scope's bet limits, which only it knows.
        The boundary parsed a whole number; the rules check ``limits.stake_coins_max``
        where they resolve the game, before any money moves."""
        assert isinstance(stake, int) and not isinstance(stake, bool), stake
        settings = self.context.settings(scope)
        if not settings.bet_min <= stake <= settings.bet_max:
            raise InvalidInput(
                "stake", f"bets here are from {settings.bet_min} to {settings.bet_max}"
            )
        return stake

    def _pair_for_bet(self, scope: int, user: int) -> tuple[SeedPair, bool]:
        """The seed pair the next bet of ``user`` is dealt with: the active pair, or a
        first pair (True) that the bet's own commit opens."""
        with self.store.read() as txn:
            pair = fairness.active_pair(txn, self.store, scope, user)
        if pair is not None:
            return pair, False
        return fairness.new_pair(scope, user, 0, self.context.now()), True

    async def _bet(
        self, scope: int, user: int, key: str, deal: Callable[[SeedPair], _Dealt]
    ) -> tuple[GameRecord, WagerResult]:
        """Deal a game with the player's seed pair and commit its stake, consuming the
        pair's nonce in that same commit. If the pair moved on between the read and the
        commit (a concurrent bet, a rotation), nothing committed and the game is dealt
        again with the pair as it now is. A redelivered bet never deals: the wallet
        answers its key with the stored result first."""
        async with self._betting(scope, user):
            return await self._bet_once_placed(scope, user, key, deal)

    @contextlib.asynccontextmanager
    async def _betting(self, scope: int, user: int) -> AsyncIterator[None]:
        """Hold the player's bet lock: their bets read the seed pair and commit one at a
        time, so concurrent bets do not all deal from the same nonce and retry. The lock
        lives only while someone holds or waits for it, so memory tracks active bettors."""
        held = self._bet_locks.setdefault((scope, user), _BetLock())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if held.users == 0:
                del self._bet_locks[scope, user]

    async def _bet_once_placed(
        self, scope: int, user: int, key: str, deal: Callable[[SeedPair], _Dealt]
    ) -> tuple[GameRecord, WagerResult]:
        store = self.store
        for _ in range(seed_pair_attempts_max):
            pair, created = self._pair_for_bet(scope, user)
            dealt = deal(pair)
            record = dataclasses.replace(
                dealt.record,
                server_seed=pair.server_seed,
                client_seed=pair.client_seed,
                nonce=pair.nonce,
                extra={**dealt.record.extra, "pair": pair.seq},
            )
            own_write = dealt.write(record)

            def game_write(txn: Any) -> None:
                fairness.bet_write(txn, store, pair, created, record.game_id)  # noqa: B023
                own_write(txn)  # noqa: B023

            try:
                result = await self.stake(
                    record, key, dealt.amount, dealt.payout, game_write, dealt.cooldown_seconds
                )
            except SeedPairChanged:
                continue
            return record, result
        raise SeedPairChanged()

    async def stake(
        self,
        record: GameRecord,
        key: str,
        amount: int,
        payout: int,
        game_write: Callable[[Any], None],
        cooldown_seconds: float = 0.0,
    ) -> WagerResult:
        """The stake commit: ``amount`` coins move from the player's wallet into the
        escrow of ``record``'s game (and ``payout`` back) in one transaction with
        ``game_write``, the game's own writes."""
        wager = Wager(
            key, record.game_id, record.kind, amount, payout, game_write, cooldown_seconds
        )
        result: WagerResult = await self.economy.wallet(record.scope, record.user).ask(wager)
        return result

    async def play(
        self,
        guild_id: int,
        user: int,
        kind: str,
        params: dict[str, Any],
        key: str,
    ) -> InstantResult:
        """Play an instant game: stake, outcome, payout and house side in one commit.

        The rules check ``params`` while they resolve the game, so a bad bet is refused
        before any money moves."""
        # Callers name the kind in code (a command per game), never from user input.
        assert kind in INSTANT_KINDS, kind
        scope = self.economy.scope(guild_id)
        self.economy.check_key(key)
        check_user_id(user, "user")
        stake = self._check_stake(scope, params.get("stake"))
        cooldown = self.context.settings(scope).cooldown_seconds(kind)
        store, now = self.store, self.context.now()

        def deal(pair: SeedPair) -> _Dealt:
            settlement = rules.play(kind, pair.server_seed, pair.client_seed, pair.nonce, params)
            seeds = (pair.server_seed, pair.client_seed, pair.nonce)
            record = settled_instant(
                secrets.token_hex(6), kind, scope, user, seeds, params, settlement.to_record(), now
            )
            house_delta = stake - settlement.payout

            def write(record: GameRecord) -> Callable[[Any], None]:
                value = GAME.encode(record)

                def game_write(txn: Any) -> None:
                    txn.put(keys.game_key(record.game_id), value, db=store.db("games"))
                    system_add(txn, store.db("system"), scope, HOUSE, house_delta)

                return game_write

            return _Dealt(record, stake, settlement.payout, write, cooldown)

        record, result = await self._bet(scope, user, key, deal)
        if result.game_id == record.game_id:
            assert record.outcome is not None
            self.count_settled(record, record.outcome["outcome"], result.payout)
            return InstantResult(view_of(record), result.balance)
        # A repeated key: the wallet answered with the game this key played before.
        stored = self.load(result.game_id)
        assert stored is not None, result
        return InstantResult(view_of(stored), result.balance)

    async def start_blackjack(self, guild_id: int, user: int, stake: int, key: str) -> GameView:
        """Deal a blackjack game: its stake, record, live index and deadline timer in one
        commit; its moves then go to its actor. The whole shoe comes from one nonce."""
        scope = self.economy.scope(guild_id)
        self.economy.check_key(key)
        check_user_id(user, "user")
        stake = self._check_stake(scope, stake)
        cooldown = self.context.settings(scope).cooldown_seconds("blackjack")
        now = self.context.now()

        def deal(pair: SeedPair) -> _Dealt:
            state = bj.deal(pair.server_seed, pair.client_seed, pair.nonce, stake)
            record = GameRecord(
                game_id=secrets.token_hex(6),
                kind="blackjack",
                scope=scope,
                user=user,
                escrow=stake,
                phase=LIVE,
                created_at=now,
                deadline=now + self.idle_seconds,
                server_seed=pair.server_seed,
                client_seed=pair.client_seed,
                nonce=pair.nonce,
                state=state.to_record(),
                staked=stake,
            )
            return _Dealt(record, stake, 0, self._opening_write, cooldown)

        record, result = await self._bet(scope, user, key, deal)
        if result.game_id == record.game_id:
            self.metrics.games_started.labels("blackjack").inc()
            self.timers.kick()
        return await self.show(result.game_id, user)

    def _opening_write(self, record: GameRecord) -> Callable[[Any], None]:
        """A new blackjack game's own writes inside its stake commit: the record, the
        live-index entry (one live game per player) and the deadline timer."""
        value, store, game_id = GAME.encode(record), self.store, record.game_id
        live_key = keys.live_game_key(record.scope, record.user, "blackjack")
        live_value = packb([game_id, record.created_at])
        timer = TimerRecord(GAME_TIMER_KIND, game_id, record.deadline)

        def game_write(txn: Any) -> None:
            existing = txn.get(live_key, db=store.db("live_games"))
            if existing is not None:
                raise GameInProgress("blackjack", str(unpackb(existing)[0]))
            txn.put(keys.game_key(game_id), value, db=store.db("games"))
            txn.put(live_key, live_value, db=store.db("live_games"))
            put_timer(txn, store, game_id, timer)

        return game_write

    async def move(self, game_id: str, user: int, action: str, step: int, key: str) -> GameView:
        self.economy.check_key(key)
        check_user_id(user, "user")
        # Only a known game gets an actor; its actor loads the record itself.
        if self._raw(game_id) is None:
            raise NotFound("game", game_id)
        view: GameView = await self.actors.ask(GAME_ACTOR, game_id, Move(user, action, step, key))
        return view

    def deadlines_moved(self) -> None:
        """A game's deadline timer was written: the timer service re-reads its next due."""
        self.timers.kick()

    # --- refunds, delivery, counting ---------------------------------------------------

    async def _write_refund(self, record: GameRecord, reason: str) -> GameRecord:
        """The refund commit: the refunded record, the live index and timer gone, and the
        refund's outbox record, in one write. Returns the refunded record."""
        refunded = dataclasses.replace(record, phase=REFUNDED, escrow=0)
        refunded.extra = {**record.extra, "refund_reason": reason}
        expected, value = GAME.encode(record), GAME.encode(refunded)
        outbox = to_player(
            record,
            TransferId.game_refund(record.game_id),
            record.escrow,
            f"{record.kind} refund ({reason})",
            self.context.now(),
        )
        store = self.store

        def write(txn: Any) -> None:
            game_key = keys.game_key(record.game_id)
            assert txn.get(game_key, db=store.db("games")) == expected, record.game_id
            txn.put(game_key, value, db=store.db("games"))
            live = keys.live_game_key(record.scope, record.user, record.kind)
            txn.delete(live, db=store.db("live_games"))
            delete_timer(txn, store, record.game_id, record.deadline)
            txn.put(outbox.transfer_id.encode(), OUTBOX.encode(outbox), db=store.db("outbox"))

        await self.store.write(write)
        return refunded

    async def refund(self, record: GameRecord, reason: str) -> GameRecord:
        """Refund a live game's whole escrow to its player; returns the refunded record.
        Only the game's actor calls this (and the escalation, once that actor stopped)."""
        refunded = await self._write_refund(record, reason)
        counts.refunded(self.metrics, record, reason)
        await self.deliver(str(TransferId.game_refund(record.game_id)))
        return refunded

    async def deliver(self, transfer_id: str) -> None:
        """Deliver a game's payout or refund from the outbox to the player's wallet."""
        try:
            await self.economy.deliver(transfer_id)
        except RuntimeFailure:
            # The outbox record stays; the periodic sweep delivers it.
            log.warning("delivery of %s deferred: wallet busy", transfer_id)

    def count_settled(self, record: GameRecord, result: str, payout: int) -> None:
        counts.settled(self.metrics, record, result, payout)

    # --- recovery, timers, escalation --------------------------------------------------

    async def recover(self) -> RecoveryReport:
        """At boot: refund the live games older than the recovery window, park those that
        cannot be handled (see ``actors/games/recovery.py``)."""
        return await self.recovery.recover()

    async def _on_timer(self, timer: TimerRecord) -> None:
        await self.actors.ask(GAME_ACTOR, timer.target, Expire())

    async def _escalated(self, game_id: str, crash: BaseException) -> None:
        """The game's actor crashed past its restart intensity: refund it in full, or
        park it when even that cannot be done (its record cannot be read)."""
        try:
            record = self.load(game_id)
        except RecordDecodeError as exc:
            await self.recovery.unrecoverable(game_id, None, error_text(exc))
            return
        if record is None or record.phase != LIVE:
            return
        log.error("refunding game %s after repeated crashes: %r", game_id, crash)
        try:
            await self._write_refund(record, "escalated")
        except Exception as exc:
            await self.recovery.unrecoverable(game_id, None, error_text(exc))
            return
        counts.refunded(self.metrics, record, "escalated")
        await self.deliver(str(TransferId.game_refund(game_id)))
