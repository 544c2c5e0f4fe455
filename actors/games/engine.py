"""Games: instant games settled in one commit, blackjack as an actor per live game.

Money flow. Starting a game is a ``Wager`` on the player's wallet: the stake leaves the
wallet and the game's record (holding it in escrow), its live-game index entry and its
deadline timer are written in the same commit. An instant game (coinflip, dice, slots,
roulette) is resolved before that commit, so the same transaction also pays the player and
books the house's side; its record is written already settled. A blackjack game lives on
as an actor: each move is persisted before the player sees it; double and split raise the
stake through another ``Wager``; settlement moves the escrow to the house and the payout
into an outbox record (keyed by game and round) that the wallet applies once.

Restarts. Every game's state is in its record, so a young game resumes exactly where it
was on its next message. At boot, games older than the recovery window are refunded in
full, and so is a game whose actor passes its restart intensity.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from actors import keys
from actors.accounts import HOUSE, TransferId, game_account, system_add, user_account
from actors.context import EconomyContext
from actors.economy import Economy, check_user_id
from actors.errors import GameInProgress, GameOver, InvalidInput, NotFound, NotYourGame
from actors.games import rules
from actors.games.records import (
    GAME,
    GAME_TIMER_KIND,
    LIVE,
    REFUNDED,
    SETTLED,
    GameRecord,
)
from actors.games.rules import blackjack as bj
from actors.parked import PARKED, ParkedRecord, error_text, parked_key
from actors.records import OUTBOX, OutboxRecord
from actors.runtime import Actor, ActorCrashed, ActorKind, ActorSystem, RuntimeFailure
from actors.timers import TIMER, TimerRecord, TimerService, delete_timer, put_timer
from actors.wallet import Wager, WagerResult
from metrics import Metrics, log_event
from storage import RecordDecodeError, Store, packb, unpackb

log = logging.getLogger("croupier.games")

GAME_ACTOR = "game"
TIMER_KIND = GAME_TIMER_KIND
INSTANT_KINDS = ("coinflip", "dice", "slots", "roulette")


# --- messages and views ----------------------------------------------------------------


@dataclass(frozen=True)
class Move:
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


@dataclass(frozen=True)
class GameView:
    """What a player may see of a game. The server seed is empty until it is over."""

    game_id: str
    kind: str
    user: int
    phase: str
    step: int
    staked: int
    hands: tuple[tuple[tuple[int, ...], int], ...]
    active: int
    dealer: tuple[int, ...]
    legal: tuple[str, ...]
    outcome: dict[str, Any] | None
    seed_hash: str
    server_seed: str
    client_seed: str
    nonce: int
    deadline: float
    note: str = ""


@dataclass(frozen=True)
class InstantResult:
    view: GameView
    balance: int


@dataclass(frozen=True)
class VerifyReport:
    game_id: str
    kind: str
    matches: bool
    server_seed: str
    seed_hash: str
    client_seed: str
    nonce: int
    params: dict[str, Any]
    recomputed: dict[str, Any]
    stored: dict[str, Any] | None


@dataclass(frozen=True)
class RecoveryReport:
    resumed: int
    refunded: int
    # Games parked so far by this process (at recovery or after repeated crashes).
    parked: int = 0


def _readable_game(raw: bytes | None) -> GameRecord | None:
    """The game record, if there is one that decodes with ids and escrow in range."""
    if raw is None:
        return None
    try:
        record = GAME.decode(raw)
    except RecordDecodeError:
        return None
    fields = (record.scope, record.user, record.escrow)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in fields):
        return None
    if not (0 <= record.scope < 2**64 and 0 < record.user < 2**64 and record.escrow >= 0):
        return None
    return record


def _timers_of(txn: Any, store: Store, game_id: str) -> list[bytes]:
    """Keys of the game timers aimed at ``game_id`` (a scan: only parking needs it)."""
    found = []
    for key, value in txn.cursor(db=store.db("timers")):
        try:
            timer = TIMER.decode(value)
        except RecordDecodeError:
            continue
        if timer.kind == TIMER_KIND and timer.target == game_id:
            found.append(bytes(key))
    return found


def _index_entries_of(txn: Any, store: Store, game_id: str) -> list[bytes]:
    """Keys of the live index entries naming ``game_id`` (a scan: only parking needs it)."""
    found = []
    for key, value in txn.cursor(db=store.db("live_games")):
        try:
            named = unpackb(value)[0]
        except (RecordDecodeError, TypeError, IndexError, KeyError):
            continue
        if named == game_id:
            found.append(bytes(key))
    return found


def view_of(record: GameRecord, note: str = "") -> GameView:
    over = record.phase != LIVE
    if record.kind == "blackjack":
        state = bj.BlackjackState.from_record(record.state)
        hands = tuple((hand.cards, hand.bet) for hand in state.hands)
        dealer = state.dealer if over else bj.dealer_visible(state)
        legal = () if over else tuple(sorted(str(a) for a in bj.legal_actions(state)))
        active = state.active
    else:
        hands, dealer, legal, active = (), (), (), 0
    return GameView(
        game_id=record.game_id,
        kind=record.kind,
        user=record.user,
        phase=record.phase,
        step=record.step,
        staked=record.staked,
        hands=hands,
        active=active,
        dealer=dealer,
        legal=legal,
        outcome=record.outcome,
        seed_hash=rules.seed_hash(record.server_seed),
        server_seed=record.server_seed if over else "",
        client_seed=record.client_seed,
        nonce=record.nonce,
        deadline=record.deadline,
        note=note,
    )


# --- the service -----------------------------------------------------------------------


class Games:
    """Starts games, routes moves to game actors, verifies, recovers at boot."""

    def __init__(
        self,
        env: EconomyContext,
        actors: ActorSystem,
        economy: Economy,
        timers: TimerService,
        metrics: Metrics,
        *,
        idle_seconds: float,
        recovery_seconds: float,
    ) -> None:
        self.env = env
        self.store: Store = env.store
        self.actors = actors
        self.economy = economy
        self.timers = timers
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        self.recovery_seconds = recovery_seconds
        self.parked = 0
        actors.register(
            ActorKind(GAME_ACTOR, lambda game_id: BlackjackGame(self, game_id), self._escalated)
        )
        timers.register(TIMER_KIND, self._on_timer)
        for kind, rtp in rules.theoretical_rtp().items():
            metrics.games_theoretical_rtp.labels(kind).set(rtp)

    # --- reads -------------------------------------------------------------------------

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

    # --- starting games ----------------------------------------------------------------

    def _check_stake(self, scope: int, stake: object) -> int:
        settings = self.env.settings(scope)
        if not isinstance(stake, int) or isinstance(stake, bool):
            raise InvalidInput("stake", "must be a whole number of coins")
        if not settings.bet_min <= stake <= settings.bet_max:
            raise InvalidInput(
                "stake", f"bets here are from {settings.bet_min} to {settings.bet_max}"
            )
        return stake

    def _seeds(self, key: str, client_seed: str | None) -> tuple[str, str, int]:
        server_seed = rules.new_server_seed()
        client_seed = client_seed if client_seed else secrets.token_hex(8)
        # The interaction id is unique per game, which is all a nonce must be here.
        nonce = int(key) % 2**63 if key.isdigit() else secrets.randbelow(2**63)
        rules.check_seeds(server_seed, client_seed, nonce)
        return server_seed, client_seed, nonce

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
        """Play an instant game: stake, outcome, payout and house side in one commit."""
        if kind not in INSTANT_KINDS:
            raise InvalidInput("game", f"choose one of {', '.join(INSTANT_KINDS)}")
        scope = self.economy.scope(guild_id)
        self.economy.check_key(key)
        check_user_id(user, "user")
        stake = self._check_stake(scope, params.get("stake"))
        rules.check_params(kind, params)
        server_seed, client_seed, nonce = self._seeds(key, client_seed)
        outcome = rules.play(kind, server_seed, client_seed, nonce, params)
        now = self.env.now()
        game_id = secrets.token_hex(6)
        record = GameRecord(
            game_id=game_id,
            kind=kind,
            scope=scope,
            user=user,
            escrow=0,
            phase=SETTLED,
            created_at=now,
            deadline=now,
            server_seed=server_seed,
            client_seed=client_seed,
            nonce=nonce,
            state=dict(params),
            outcome=outcome.to_record(),
            staked=stake,
        )
        value, store = GAME.encode(record), self.store
        house_delta = stake - outcome.payout

        def game_write(txn: Any) -> None:
            txn.put(keys.game_key(game_id), value, db=store.db("games"))
            system_add(txn, store.db("system"), scope, HOUSE, house_delta)

        cooldown = self.env.settings(scope).cooldown_seconds(kind)
        wager = Wager(key, game_id, kind, stake, outcome.payout, game_write, cooldown)
        result: WagerResult = await self.economy.wallet(scope, user).ask(wager)
        if result.game_id == game_id:
            self._count_settled(record, outcome.outcome, outcome.payout)
        stored = self.load(result.game_id)
        assert stored is not None, result
        return InstantResult(view_of(stored), result.balance)

    async def start_blackjack(
        self, guild_id: int, user: int, stake: int, key: str, *, client_seed: str | None = None
    ) -> GameView:
        scope = self.economy.scope(guild_id)
        self.economy.check_key(key)
        check_user_id(user, "user")
        stake = self._check_stake(scope, stake)
        rules.check_stake(stake)
        server_seed, client_seed, nonce = self._seeds(key, client_seed)
        state = bj.deal(server_seed, client_seed, nonce, stake)
        now = self.env.now()
        game_id = secrets.token_hex(6)
        record = GameRecord(
            game_id=game_id,
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
        value, store = GAME.encode(record), self.store
        live_key = keys.live_game_key(scope, user, "blackjack")
        live_value = packb([game_id, now])

        def game_write(txn: Any) -> None:
            existing = txn.get(live_key, db=store.db("live_games"))
            if existing is not None:
                raise GameInProgress("blackjack", str(unpackb(existing)[0]))
            txn.put(keys.game_key(game_id), value, db=store.db("games"))
            txn.put(live_key, live_value, db=store.db("live_games"))
            put_timer(txn, store, game_id, TimerRecord(TIMER_KIND, game_id, record.deadline))

        cooldown = self.env.settings(scope).cooldown_seconds("blackjack")
        wager = Wager(key, game_id, "blackjack", stake, 0, game_write, cooldown)
        result: WagerResult = await self.economy.wallet(scope, user).ask(wager)
        if result.game_id == game_id:
            self.metrics.games_started.labels("blackjack").inc()
            self.timers.kick()
        return await self.show(result.game_id, user)

    async def move(self, game_id: str, user: int, action: str, step: int, key: str) -> GameView:
        self.economy.check_key(key)
        check_user_id(user, "user")
        # Only a known game gets an actor; its actor loads the record itself.
        if self._raw(game_id) is None:
            raise NotFound("game", game_id)
        view: GameView = await self.actors.ask(GAME_ACTOR, game_id, Move(user, action, step, key))
        return view

    # --- verify ------------------------------------------------------------------------

    def verify(self, game_id: str) -> VerifyReport:
        """Recompute a finished game from its revealed seeds and compare."""
        record = self.load(game_id)
        if record is None:
            raise NotFound("game", game_id)
        if record.phase != SETTLED:
            raise InvalidInput("game", "only a settled game can be verified; finish it first")
        params = self._params(record)
        recomputed = rules.verify(
            record.kind, record.server_seed, record.client_seed, record.nonce, params
        )
        return VerifyReport(
            game_id=game_id,
            kind=record.kind,
            matches=recomputed == record.outcome,
            server_seed=record.server_seed,
            seed_hash=rules.seed_hash(record.server_seed),
            client_seed=record.client_seed,
            nonce=record.nonce,
            params=params,
            recomputed=recomputed,
            stored=record.outcome,
        )

    @staticmethod
    def _params(record: GameRecord) -> dict[str, Any]:
        if record.kind == "blackjack":
            state = bj.BlackjackState.from_record(record.state)
            return {"stake": state.stake, "actions": [str(a) for a in state.actions]}
        return dict(record.state)

    # --- recovery, timers, escalation --------------------------------------------------

    async def recover(self) -> RecoveryReport:
        """At boot: refund every live game older than the recovery window. Younger ones
        are left in the store and resume on their next message or deadline. A game that
        cannot be handled (an unreadable index entry or record, a refund that raises) is
        parked instead, so no game stops boot."""
        cutoff = self.env.now() - self.recovery_seconds
        old: list[tuple[bytes, str]] = []
        unreadable: list[tuple[bytes, str]] = []
        resumed = 0
        with self.store.read() as txn:
            for key, value in txn.cursor(db=self.store.db("live_games")):
                try:
                    game_id, created_at = unpackb(value)
                    is_old = float(created_at) < cutoff
                except (RecordDecodeError, TypeError, ValueError) as exc:
                    unreadable.append((bytes(key), error_text(exc)))
                    continue
                if is_old:
                    old.append((bytes(key), str(game_id)))
                else:
                    resumed += 1
        limiter = trio.CapacityLimiter(64)
        refunded = 0

        async def refund(live_key: bytes, game_id: str) -> None:
            nonlocal refunded
            async with limiter:
                try:
                    if await self.actors.ask(GAME_ACTOR, game_id, Refund("expired")):
                        refunded += 1
                except ActorCrashed as exc:
                    await self._unrecoverable(game_id, live_key, error_text(exc))
                except RuntimeFailure:
                    # Not the game's fault: it stays live, and its overdue deadline timer
                    # ends it (or the next boot refunds it).
                    log.warning("refund of game %s deferred: its actor is busy", game_id)
                except Exception as exc:
                    await self._unrecoverable(game_id, live_key, error_text(exc))

        for live_key, error in unreadable:
            await self._unrecoverable("", live_key, error)
        async with trio.open_nursery() as nursery:
            for live_key, game_id in old:
                nursery.start_soon(refund, live_key, game_id)
        if refunded:
            log.warning("refunded %d games older than the recovery window", refunded)
        log.info("game recovery: %d resumed lazily, %d refunded", resumed, refunded)
        return RecoveryReport(resumed, refunded, self.parked)

    async def _unrecoverable(self, game_id: str, live_key: bytes | None, error: str) -> None:
        """Park a game that cannot be handled, and count it; never raises. (Recovery and
        the escalation of its crashing actor may both get here: it is counted once, by
        whichever moves it.)"""
        log.error("game %s (index %r) cannot be handled: %s", game_id, live_key, error)
        try:
            moved = await self.store.write(self._park_write(game_id, live_key, error))
        except Exception:
            self.metrics.games_recovery_failures.inc()
            log.exception("parking game %s failed; it is tried again at the next boot", game_id)
            return
        if moved:
            self.metrics.games_recovery_failures.inc()
            self.parked += 1
            self.metrics.parked.labels("game").inc()
            self.actors.passivate(GAME_ACTOR, game_id)
            log_event(log, "game_parked", level=logging.ERROR, game=game_id, error=error)

    def _park_write(
        self, game_id: str, live_key: bytes | None, error: str
    ) -> Callable[[Any], bool]:
        """Move a live game's records (its record, index entry and deadline timer) into
        ``parked`` in one commit; the parked record holds the game's escrow."""
        store, now = self.store, self.env.now()
        db_games, db_live = store.db("games"), store.db("live_games")
        game_key = keys.game_key(game_id) if 0 < len(game_id) <= 64 else None

        def write(txn: Any) -> bool:
            raw = txn.get(game_key, db=db_games) if game_key is not None else None
            record = _readable_game(raw)
            if record is not None and record.phase != LIVE:
                # Settled or refunded meanwhile (an escalation refunds a crashing game).
                return False
            index = txn.get(live_key, db=db_live) if live_key is not None else None
            ident = game_id or (live_key or b"").hex()
            target = parked_key("game", ident)
            if txn.get(target, db=store.db("parked")) is not None:
                # Parked already by the other path (recovery or escalation): only a
                # leftover index entry may remain.
                if live_key is not None:
                    txn.delete(live_key, db=db_live)
                return False
            if raw is None and index is None:
                return False
            parked = ParkedRecord(
                kind="game",
                ident=ident,
                source_db="games" if raw is not None else "live_games",
                source_key=(game_key if raw is not None else live_key) or b"",
                value=bytes(raw if raw is not None else index or b""),
                error=error,
                attempts=1,
                parked_at=now,
            )
            if record is not None:
                parked.scope, parked.amount = record.scope, record.escrow
                parked.source, parked.target = game_account(game_id), user_account(record.user)
                own_index = keys.live_game_key(record.scope, record.user, record.kind)
                if txn.get(own_index, db=db_live) == index or live_key is None:
                    txn.delete(own_index, db=db_live)
                delete_timer(txn, store, game_id, record.deadline)
            elif game_id:
                # Its deadline and owner are unknown without the record: find its timers
                # and index entries by the game id they name.
                for timer_key in _timers_of(txn, store, game_id):
                    txn.delete(timer_key, db=store.db("timers"))
                for index_key in _index_entries_of(txn, store, game_id):
                    txn.delete(index_key, db=db_live)
            if live_key is not None:
                txn.delete(live_key, db=db_live)
            if raw is not None:
                txn.delete(game_key, db=db_games)
            txn.put(target, PARKED.encode(parked), db=store.db("parked"))
            return True

        return write

    async def _on_timer(self, timer: TimerRecord) -> None:
        await self.actors.ask(GAME_ACTOR, timer.target, Expire())

    async def _escalated(self, game_id: str, crash: BaseException) -> None:
        """The game's actor crashed past its restart intensity: refund it in full, or
        park it when even that cannot be done (its record cannot be read)."""
        try:
            record = self.load(game_id)
        except RecordDecodeError as exc:
            await self._unrecoverable(game_id, None, error_text(exc))
            return
        if record is None or record.phase != LIVE:
            return
        log.error("refunding game %s after repeated crashes: %r", game_id, crash)
        try:
            await self.store.write(self.refund_write(record, "escalated"))
        except Exception as exc:
            await self._unrecoverable(game_id, None, error_text(exc))
            return
        self._count_refund(record, "escalated")
        await self._deliver(str(TransferId.game_refund(game_id)))

    def refund_write(self, record: GameRecord, reason: str) -> Callable[[Any], GameRecord]:
        refunded = dataclasses.replace(record, phase=REFUNDED, escrow=0)
        refunded.extra = {**record.extra, "refund_reason": reason}
        expected = GAME.encode(record)
        now = self.env.now()
        outbox = OutboxRecord(
            transfer_id=str(TransferId.game_refund(record.game_id)),
            scope=record.scope,
            source=game_account(record.game_id),
            target=user_account(record.user),
            amount=record.escrow,
            reason=f"{record.kind} refund ({reason})",
            at=now,
            source_ref=record.round,
        )
        store = self.store

        def write(txn: Any) -> GameRecord:
            game_key = keys.game_key(record.game_id)
            assert txn.get(game_key, db=store.db("games")) == expected, record.game_id
            txn.put(game_key, GAME.encode(refunded), db=store.db("games"))
            live = keys.live_game_key(record.scope, record.user, record.kind)
            txn.delete(live, db=store.db("live_games"))
            delete_timer(txn, store, record.game_id, record.deadline)
            txn.put(outbox.transfer_id.encode(), OUTBOX.encode(outbox), db=store.db("outbox"))
            return refunded

        return write

    async def _deliver(self, transfer_id: str) -> None:
        try:
            await self.economy.deliver(transfer_id)
        except RuntimeFailure:
            # The outbox record stays; the periodic sweep delivers it.
            log.warning("delivery of %s deferred: wallet busy", transfer_id)

    def _count_settled(self, record: GameRecord, outcome: str, payout: int) -> None:
        m = self.metrics
        if record.kind in INSTANT_KINDS:
            m.games_started.labels(record.kind).inc()
        m.games_settled.labels(record.kind, outcome).inc()
        m.games_wagered.labels(record.kind).inc(record.staked)
        m.games_paid_out.labels(record.kind).inc(payout)

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


# --- the blackjack actor ---------------------------------------------------------------


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
        now = self.games.env.now()
        updated = dataclasses.replace(
            record,
            state=after.to_record(),
            escrow=record.escrow + extra,
            staked=record.staked + extra,
            deadline=now + self.games.idle_seconds,
        )
        write = self._write_move(record, updated)
        if extra:
            wager = Wager(move.key, self.game_id, "blackjack", extra, 0, write)
            try:
                await self.games.economy.wallet(record.scope, record.user).ask(wager)
            except RuntimeFailure:
                # Unknown whether the raise committed: take the durable truth.
                self.record = self.games.load(self.game_id)
                raise
        else:
            await self.store.write(write)
        self.record = updated
        self.games.timers.kick()
        if bj.is_settled(after):
            await self._settle()
        assert self.record is not None
        return view_of(self.record)

    def _write_move(self, before: GameRecord, after: GameRecord) -> Callable[[Any], None]:
        expected, value, store = GAME.encode(before), GAME.encode(after), self.store
        key = keys.game_key(self.game_id)

        def write(txn: Any) -> None:
            assert txn.get(key, db=store.db("games")) == expected, self.game_id
            txn.put(key, value, db=store.db("games"))
            delete_timer(txn, store, self.game_id, before.deadline)
            put_timer(
                txn, store, self.game_id, TimerRecord(TIMER_KIND, self.game_id, after.deadline)
            )

        return write

    async def _expire(self, record: GameRecord) -> GameView:
        if record.phase != LIVE or self.games.env.now() < record.deadline:
            return view_of(record)
        state = bj.BlackjackState.from_record(record.state)
        while not bj.is_settled(state):
            state = bj.apply(state, bj.timeout_action(state))
        updated = dataclasses.replace(record, state=state.to_record())
        await self.store.write(self._write_move(record, updated))
        self.record = updated
        await self._settle()
        assert self.record is not None
        return view_of(self.record)

    async def _settle(self) -> None:
        record = self.record
        assert record is not None and record.phase == LIVE
        state = bj.BlackjackState.from_record(record.state)
        outcome = bj.settle(state)
        settled = dataclasses.replace(record, phase=SETTLED, escrow=0, outcome=outcome.to_record())
        transfer_id = str(TransferId.settlement(self.game_id, record.round))
        outbox = OutboxRecord(
            transfer_id=transfer_id,
            scope=record.scope,
            source=game_account(self.game_id),
            target=user_account(record.user),
            amount=outcome.payout,
            reason=f"blackjack payout ({outcome.outcome})",
            at=self.games.env.now(),
            source_ref=record.round,
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
            system_add(txn, store.db("system"), record.scope, HOUSE, record.escrow - outcome.payout)
            if outcome.payout:
                txn.put(transfer_id.encode(), OUTBOX.encode(outbox), db=store.db("outbox"))

        await self.store.write(write)
        self.record = settled
        self.games._count_settled(settled, outcome.outcome, outcome.payout)
        if outcome.payout:
            await self.games._deliver(transfer_id)

    async def _refund(self, record: GameRecord, reason: str) -> bool:
        """Refund the whole escrow if the game is still live; True if it was."""
        if record.phase != LIVE:
            return False
        self.record = await self.store.write(self.games.refund_write(record, reason))
        self.games._count_refund(record, reason)
        await self.games._deliver(str(TransferId.game_refund(self.game_id)))
        return True
