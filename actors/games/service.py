"""The games service: starts games, routes moves to game actors, verifies, recovers.

How a bet flows. A command calls ``Games.play`` (an instant game) or
``Games.start_blackjack``. The service checks the stake against the scope's bet limits
(the one check only the domain can make: the limits are per-scope settings), chooses the
game's seeds in ``_seeds``, lets the pure rules resolve (or deal) the game, and builds the
game's record. ``stake`` is the one stake commit: a ``Wager`` on the player's wallet,
which in ONE transaction debits the stake into the game's escrow and runs the game's own
write (its record, and for blackjack its live-index entry and deadline timer; for an
instant game, settled before the commit, the house's side), so a game record exists if
and only if its stake moved. An instant game pays the player in that same commit. A
blackjack game lives on as a ``BlackjackGame`` actor (``actors/games/actor.py``): its
moves, the raises of double and split (through ``stake`` again), and its settlement
commit, after which the payout transfer is delivered from the outbox to the wallet.

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

import dataclasses
import logging
import secrets
from collections.abc import Callable
from typing import Any

from actors import keys
from actors.accounts import HOUSE, TransferId, system_add
from actors.context import EconomyContext
from actors.economy import Economy, check_user_id
from actors.errors import GameInProgress, InvalidInput, NotFound
from actors.failures import RuntimeFailure
from actors.games import rules
from actors.games.actor import GAME_ACTOR, BlackjackGame, Expire, Move, Show
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
from actors.timers import TimerRecord, TimerService, delete_timer, put_timer
from actors.wallet import Wager, WagerResult
from metrics import Metrics, log_event
from storage import RecordDecodeError, Store, packb, unpackb

log = logging.getLogger("croupier.games")

INSTANT_KINDS = ("coinflip", "dice", "slots", "roulette")


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
            cursor = txn.cursor(db=self.store.db("live_games"))
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not bytes(key).startswith(prefix) or len(found) == games_max:
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
        return view_of(record)

    def verify(self, game_id: str) -> VerifyReport:
        """Recompute a finished game from its revealed seeds and compare."""
        record = self.load(game_id)
        if record is None:
            raise NotFound("game", game_id)
        if record.phase != SETTLED:
            raise InvalidInput("game", "only a settled game can be verified; finish it first")
        return verify_report(record)

    # --- starting games: seeds, then the stake commit ----------------------------------

    def _check_stake(self, scope: int, stake: object) -> int:
        """The domain's one check of a stake: the scope's bet limits, which only the domain
        knows. The boundary has parsed it as a whole number already; the rules check their
        own bound (``limits.stake_coins_max``) where they resolve the game, before any
        money moves."""
        assert isinstance(stake, int) and not isinstance(stake, bool), stake
        settings = self.context.settings(scope)
        if not settings.bet_min <= stake <= settings.bet_max:
            raise InvalidInput(
                "stake", f"bets here are from {settings.bet_min} to {settings.bet_max}"
            )
        return stake

    def _seeds(self, key: str, client_seed: str | None) -> tuple[str, str, int]:
        """The one place a bet's seeds are chosen: a fresh server seed, the player's client
        seed (or a random one), and a nonce."""
        server_seed = rules.new_server_seed()
        client_seed = client_seed if client_seed else secrets.token_hex(8)
        # The interaction id is unique per game, which is all a nonce must be here.
        nonce = int(key) % 2**63 if key.isdigit() else secrets.randbelow(2**63)
        # A client seed the player gave is checked by the rules' random stream, which
        # refuses a malformed one before the stake commit.
        return server_seed, client_seed, nonce

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
        *,
        client_seed: str | None = None,
    ) -> InstantResult:
        """Play an instant game: stake, outcome, payout and house side in one commit.

        The rules check ``params`` (and the client seed) while they resolve the game, so a
        bad bet is refused before any money moves."""
        # Callers name the kind in code (a command per game), never from user input.
        assert kind in INSTANT_KINDS, kind
        scope = self.economy.scope(guild_id)
        self.economy.check_key(key)
        check_user_id(user, "user")
        stake = self._check_stake(scope, params.get("stake"))
        server_seed, client_seed, nonce = self._seeds(key, client_seed)
        settlement = rules.play(kind, server_seed, client_seed, nonce, params)
        now = self.context.now()
        seeds = (server_seed, client_seed, nonce)
        record = settled_instant(
            secrets.token_hex(6), kind, scope, user, seeds, params, settlement.to_record(), now
        )
        value, store = GAME.encode(record), self.store
        house_delta = stake - settlement.payout

        def game_write(txn: Any) -> None:
            txn.put(keys.game_key(record.game_id), value, db=store.db("games"))
            system_add(txn, store.db("system"), scope, HOUSE, house_delta)

        cooldown = self.context.settings(scope).cooldown_seconds(kind)
        result = await self.stake(record, key, stake, settlement.payout, game_write, cooldown)
        if result.game_id == record.game_id:
            self.count_settled(record, settlement.result, settlement.payout)
            return InstantResult(view_of(record), result.balance)
        # A repeated key: the wallet answered with the game this key played before.
        stored = self.load(result.game_id)
        assert stored is not None, result
        return InstantResult(view_of(stored), result.balance)

    async def start_blackjack(
        self, guild_id: int, user: int, stake: int, key: str, *, client_seed: str | None = None
    ) -> GameView:
        """Deal a blackjack game: its stake, record, live index and deadline timer in one
        commit; its moves then go to its actor."""
        scope = self.economy.scope(guild_id)
        self.economy.check_key(key)
        check_user_id(user, "user")
        stake = self._check_stake(scope, stake)
        server_seed, client_seed, nonce = self._seeds(key, client_seed)
        state = bj.deal(server_seed, client_seed, nonce, stake)
        now = self.context.now()
        record = GameRecord(
            game_id=secrets.token_hex(6),
            kind="blackjack",
            scope=scope,
            user=user,
            escrow=stake,
            phase=LIVE,
            created_at=now,
            deadline=now + self.idle_seconds,
            server_seed=server_seed,
            client_seed=client_seed,
            nonce=nonce,
            state=state.to_record(),
            staked=stake,
        )
        game_write = self._opening_write(record)
        cooldown = self.context.settings(scope).cooldown_seconds("blackjack")
        result = await self.stake(record, key, stake, 0, game_write, cooldown)
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
        self._count_refund(record, reason)
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
        m = self.metrics
        if record.kind in INSTANT_KINDS:
            m.games_started.labels(record.kind).inc()
        m.games_settled.labels(record.kind, result).inc()
        bet = rules.bet_kind(record.kind, record.state)
        m.games_wagered.labels(record.kind, bet).inc(record.staked)
        m.games_paid_out.labels(record.kind, bet).inc(payout)

    def _count_refund(self, record: GameRecord, reason: str) -> None:
        self.metrics.games_refunded.labels(record.kind, reason).inc()
        log_event(
            log,
            "game_refunded",
            level=logging.WARNING,
            game=record.game_id,
            kind=record.kind,
            reason=reason,
            coins=record.escrow,
        )

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
        self._count_refund(record, "escalated")
        await self.deliver(str(TransferId.game_refund(game_id)))
