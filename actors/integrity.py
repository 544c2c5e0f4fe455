"""The integrity check: proves the money rules over the whole store.

It reads one consistent LMDB snapshot and checks, per scope, that every coin is accounted
for (users + system accounts + game escrow + transfers in flight sum to zero), that no user
balance is negative, that every transfer in flight points at a real debit, that the
leaderboard index matches the balances exactly, and that shop and inventory records agree.
that game escrow is held exactly by live games, and that every live game has its deadline
timer and every timer a live owner, and that every provably fair seed pair hashes to its
commitment with its bets on nonces 0, 1, 2, ... It is synchronous and meant to run in a
worker thread.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from actors import keys
from actors.accounts import SYSTEM_ACCOUNTS, Account
from actors.games import GAME, GAME_TIMER_KIND, LIVE, GameRecord, fairness, rules
from actors.games.rules import blackjack as bj
from actors.parked import check_parked, parked_db, parked_key
from actors.records import APPLIED_BOUNCED, HISTORY, OUTBOX, SHOP_ITEM, WALLET
from actors.scheduler import TIMER_KINDS as SCHEDULER_TIMER_KINDS
from actors.scheduler.owners import timer_owner_problem
from actors.timer_records import TIMER
from limits import integrity_scan_records_per_cancel_check, integrity_violations_kept_max
from storage import RecordDecodeError, Store, unpackb

T = TypeVar("T")


@dataclass(frozen=True)
class Violation:
    check: str
    detail: str


@dataclass
class IntegrityReport:
    """What one run found. ``counts`` holds how many violations each check saw (all of
    them, even past the ``integrity_violations_kept_max`` kept for the report's text)."""

    started_at: float
    duration_seconds: float = 0.0
    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)
    # Records waiting for an operator, one line each (the first ``integrity_violations_kept_max``):
    # not violations, but nothing set aside should go unseen by ``croupier check``.
    parked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def add(self, check: str, detail: str) -> None:
        self.counts[check] = self.counts.get(check, 0) + 1
        if len(self.violations) < integrity_violations_kept_max:
            self.violations.append(Violation(check, detail))

    def passed(self, check: str) -> None:
        self.counts.setdefault(check, 0)

    def text(self) -> str:
        lines = [f"integrity: {'OK' if self.ok else 'VIOLATIONS FOUND'}"]
        for check in sorted(self.counts):
            lines.append(f"  {check:<28} {'ok' if not self.counts[check] else self.counts[check]}")
        for name in sorted(self.figures):
            lines.append(f"  {name:<28} {self.figures[name]}")
        for violation in self.violations:
            lines.append(f"  ! {violation.check}: {violation.detail}")
        for line in self.parked:
            lines.append(f"  parked {line}")
        return "\n".join(lines)

    def list_parked(self, line: str) -> None:
        if len(self.parked) < integrity_violations_kept_max:
            self.parked.append(line)


# Every check the store is held to. A check that finds nothing still appears in the
# report, so a reader sees what was proved, not only what failed.
CHECKS = (
    "money_sums_to_zero",
    "no_negative_balance",
    "outbox_refers_to_transfer",
    "leaderboard_matches",
    "inventory_has_item",
    "stock_not_negative",
    "escrow_matches_games",
    "live_game_has_timer",
    "timer_has_live_owner",
    "parked_records_sound",
    "seed_pairs_committed",
    "seed_nonces_contiguous",
    "records_readable",
)


def check_store(store: Store, *, now: float | None = None) -> IntegrityReport:
    """Run every check over one read snapshot of ``store``.

    This is the whole check and has no optional parts: the server, ``croupier check``,
    ``croupier backup verify`` and the backup schedule all call exactly this, so a record
    kind added to the store is checked everywhere once it is added here.
    """
    report = IntegrityReport(started_at=time.time() if now is None else now)
    started = time.perf_counter()
    for name in CHECKS:
        report.passed(name)
    sums: dict[int, int] = defaultdict(int)
    with store.map_gate, store.read() as txn:
        balances = _check_wallets(txn, store, report, sums)
        _check_system(txn, store, report, sums)
        _check_outbox(txn, store, report, sums)
        _check_leaderboard(txn, store, report, balances)
        _check_shop(txn, store, report)
        _check_games(txn, store, report, sums)
        _check_timers(txn, store, report)
        _check_seed_pairs(txn, store, report)
        check_parked(txn, store, report, sums)
    for scope, total in sorted(sums.items()):
        if total != 0:
            report.add("money_sums_to_zero", f"scope {scope}: accounts sum to {total}, not 0")
    assert set(report.counts) == set(CHECKS), sorted(report.counts)
    report.duration_seconds = time.perf_counter() - started
    return report


def _keys(txn: Any, store: Store, name: str) -> Iterator[bytes]:
    """Every key of sub-database ``name``, in order."""
    for key, _ in _scan(txn, store, name):
        yield key


def _records(
    txn: Any, store: Store, report: IntegrityReport, name: str, decode: Callable[[bytes], T]
) -> Iterator[tuple[bytes, T]]:
    """Every record of sub-database ``name`` with its key, decoded. A value that does not
    decode is damage: it is reported under ``records_readable`` and the scan goes on, so
    one bad record never hides the state of the others."""
    for key, value in _scan(txn, store, name):
        try:
            record = decode(value)
        except RecordDecodeError as exc:
            report.add("records_readable", f"{name} {key!r}: {exc}")
            continue
        yield key, record


def _scan(txn: Any, store: Store, name: str) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of sub-database ``name``, in key order.

    A full scan of a large store takes minutes, and a server asked to stop must not wait
    for it: run in a Trio worker thread, the scan ends with ``trio.Cancelled`` soon after
    its caller is cancelled (its read transaction is closed on the way out, before the
    store is). Run from plain code (the command line), it simply reads on.
    """
    try:
        trio.from_thread.check_cancelled()
        in_trio_thread = True
    except RuntimeError:
        in_trio_thread = False
    for count, (key, value) in enumerate(txn.cursor(db=store.db(name))):
        if in_trio_thread and count % integrity_scan_records_per_cancel_check == 0:
            trio.from_thread.check_cancelled()
        yield bytes(key), value


def _coins(value: bytes) -> int:
    """A system account's balance: a whole number."""
    coins = unpackb(value)
    if not isinstance(coins, int) or isinstance(coins, bool):
        raise RecordDecodeError(f"system balance is {type(coins).__name__}, not a number")
    return coins


def _live_entry(value: bytes) -> str:
    """The game id a live-index entry names."""
    entry = unpackb(value)
    if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
        raise RecordDecodeError("live index entry is not [game id, started at]")
    return entry[0]


def _game_or_none(raw: bytes | None) -> GameRecord | None:
    """A game looked up by id; None when missing or unreadable (its own scan reports
    it as unreadable, once)."""
    if raw is None:
        return None
    try:
        return GAME.decode(raw)
    except RecordDecodeError:
        return None


def _check_wallets(
    txn: Any, store: Store, report: IntegrityReport, sums: dict[int, int]
) -> dict[bytes, int]:
    balances: dict[bytes, int] = {}
    for key, record in _records(txn, store, report, "wallets", WALLET.decode):
        scope, user = keys.split_wallet_key(key)
        balances[key] = record.balance
        sums[scope] += record.balance
        if record.balance < 0:
            report.add("no_negative_balance", f"scope {scope} user {user}: {record.balance}")
    report.figures["wallets"] = len(balances)
    report.figures["user_coins"] = sum(balances.values())
    return balances


def _check_system(txn: Any, store: Store, report: IntegrityReport, sums: dict[int, int]) -> None:
    totals = dict.fromkeys(SYSTEM_ACCOUNTS, 0)
    for key, balance in _records(txn, store, report, "system", _coins):
        scope = keys.read_u64(key)
        name = key[8:].decode(errors="replace")
        sums[scope] += balance
        totals[name] = totals.get(name, 0) + balance
    for name, total in totals.items():
        report.figures[f"{name}_coins"] = total


def _check_outbox(txn: Any, store: Store, report: IntegrityReport, sums: dict[int, int]) -> None:
    in_flight = 0
    count = 0
    db_history, db_applied = store.db("history"), store.db("applied")
    for _, record in _records(txn, store, report, "outbox", OUTBOX.decode):
        count += 1
        in_flight += record.amount
        sums[record.scope] += record.amount
        if record.amount <= 0:
            report.add("outbox_refers_to_transfer", f"{record.transfer_id}: amount {record.amount}")
        source = Account.parse(record.source)
        sender = source.member
        if record.refund_of and sender is not None:
            marker = txn.get(
                keys.applied_key(record.scope, sender, record.refund_of.encode()), db=db_applied
            )
            if marker != APPLIED_BOUNCED:
                report.add(
                    "outbox_refers_to_transfer", f"{record.transfer_id}: no bounced original"
                )
        elif sender is not None:
            raw = txn.get(keys.history_key(record.scope, sender, record.source_ref), db=db_history)
            if raw is None or HISTORY.decode(raw).transfer_id != record.transfer_id:
                report.add("outbox_refers_to_transfer", f"{record.transfer_id}: no sender debit")
        elif source.kind == "game" and not record.refund_of:
            if txn.get(keys.game_key(source.ident), db=store.db("games")) is None:
                report.add(
                    "outbox_refers_to_transfer", f"{record.transfer_id}: no game {source.ident}"
                )
        else:
            report.add("outbox_refers_to_transfer", f"{record.transfer_id}: source {record.source}")
    report.figures["outbox_records"] = count
    report.figures["outbox_coins"] = in_flight


def _check_leaderboard(
    txn: Any, store: Store, report: IntegrityReport, balances: dict[bytes, int]
) -> None:
    seen = 0
    for key in _keys(txn, store, "leaderboard"):
        seen += 1
        scope, balance, user = keys.split_leaderboard_key(key)
        actual = balances.get(keys.wallet_key(scope, user))
        if actual != balance:
            report.add(
                "leaderboard_matches",
                f"scope {scope} user {user}: index says {balance}, wallet says {actual}",
            )
    if seen != len(balances):
        report.add("leaderboard_matches", f"{seen} index entries for {len(balances)} wallets")


def _check_shop(txn: Any, store: Store, report: IntegrityReport) -> None:
    db_shop = store.db("shop")
    items = 0
    for _, item in _records(txn, store, report, "shop", SHOP_ITEM.decode):
        items += 1
        if item.stock is not None and item.stock < 0:
            report.add("stock_not_negative", f"item {item.item_id} {item.name!r}: {item.stock}")
    entries = 0
    for key in _keys(txn, store, "inventory"):
        entries += 1
        scope, user = keys.split_wallet_key(key[:16])
        item_id = keys.read_u64(key, 16)
        if txn.get(keys.item_key(scope, item_id), db=db_shop) is None:
            report.add("inventory_has_item", f"scope {scope} user {user}: item {item_id} missing")
    report.figures["shop_items"] = items
    report.figures["inventory_entries"] = entries


def _check_games(txn: Any, store: Store, report: IntegrityReport, sums: dict[int, int]) -> None:
    """Escrow is held exactly by live games, and the live index matches them."""
    live = 0
    escrow = 0
    db_live, db_timers, db_parked = store.db("live_games"), store.db("timers"), parked_db(store)
    db_bets = store.db(fairness.BETS_DB)
    for _, record in _records(txn, store, report, "games", GAME.decode):
        sums[record.scope] += record.escrow
        _check_game_nonce(txn, record, report, db_bets)
        escrow += record.escrow
        if record.phase == LIVE:
            live += 1
            _check_live_game(txn, record, report, db_live)
            timer = keys.timer_key(record.deadline, record.game_id)
            # A parked timer is still the game's, set aside for an operator (and counted
            # among the parked records), not a lost one.
            parked = db_parked is not None and (
                txn.get(parked_key("timer", timer.hex()), db=db_parked) is not None
            )
            if txn.get(timer, db=db_timers) is None and not parked:
                report.add(
                    "live_game_has_timer",
                    f"live game {record.game_id} has no timer for its deadline {record.deadline}",
                )
        elif record.escrow != 0:
            report.add(
                "escrow_matches_games",
                f"{record.phase} game {record.game_id} holds {record.escrow}",
            )
    db_games = store.db("games")
    for key, game_id in _records(txn, store, report, "live_games", _live_entry):
        game = _game_or_none(txn.get(keys.game_key(game_id), db=db_games))
        if game is None or game.phase != LIVE:
            report.add("escrow_matches_games", f"live index {key!r} -> {game_id} not live")
    report.figures["games_live"] = live
    report.figures["escrow_coins"] = escrow


def _check_live_game(txn: Any, record: GameRecord, report: IntegrityReport, db_live: Any) -> None:
    if record.escrow <= 0:
        report.add("escrow_matches_games", f"live game {record.game_id} holds no escrow")
    if record.kind != "blackjack":
        report.add("escrow_matches_games", f"live game {record.game_id} is a {record.kind}")
        return
    bets = sum(hand.bet for hand in bj.BlackjackState.from_record(record.state).hands)
    if bets != record.escrow:
        report.add(
            "escrow_matches_games",
            f"live game {record.game_id} holds {record.escrow} for bets of {bets}",
        )
    index = txn.get(keys.live_game_key(record.scope, record.user, record.kind), db=db_live)
    try:
        indexed = _live_entry(index) if index is not None else None
    except RecordDecodeError:
        indexed = None
    if indexed != record.game_id:
        report.add("escrow_matches_games", f"live game {record.game_id} not indexed")


def _check_timers(txn: Any, store: Store, report: IntegrityReport) -> None:
    """Every timer belongs to something that still needs it, at the time it needs it.

    Games and the scheduler own timers; a new owner adds its rule here, and until it does
    its timers are reported rather than silently trusted.
    """
    count = 0
    db_games = store.db("games")
    for key, timer in _records(txn, store, report, "timers", TIMER.decode):
        count += 1
        if timer.kind in SCHEDULER_TIMER_KINDS:
            problem = timer_owner_problem(txn, store, timer)
            if problem is not None:
                report.add("timer_has_live_owner", problem)
            continue
        if timer.kind != GAME_TIMER_KIND:
            report.add("timer_has_live_owner", f"timer {key!r}: unknown kind {timer.kind}")
            continue
        owner = _game_or_none(txn.get(keys.game_key(timer.target), db=db_games))
        if owner is None or owner.phase != LIVE:
            state = "missing or unreadable" if owner is None else owner.phase
            report.add("timer_has_live_owner", f"timer for game {timer.target}: game {state}")
        elif keys.timer_key(owner.deadline, owner.game_id) != key:
            report.add(
                "timer_has_live_owner",
                f"timer for game {timer.target} due {timer.due}, game due {owner.deadline}",
            )
    report.figures["timers"] = count


def _check_game_nonce(txn: Any, record: GameRecord, report: IntegrityReport, db_bets: Any) -> None:
    """A game dealt from a seed pair holds the bet entry of its nonce (a game dealt before
    seed pairs existed has none)."""
    seq = record.extra.get("pair")
    if seq is None:
        return
    entry = fairness.bet_key(record.scope, record.user, int(seq), record.nonce)
    if txn.get(entry, db=db_bets) != record.game_id.encode():
        report.add(
            "seed_nonces_contiguous",
            f"game {record.game_id} has no bet entry for nonce {record.nonce} of its seed pair",
        )


def _check_seed_pairs(txn: Any, store: Store, report: IntegrityReport) -> None:
    """Every seed pair hashes to its commitment, a player's pairs are numbered 0, 1, 2, ...,
    and the bets of each pair are exactly its nonces 0 to ``nonce - 1``, each naming a game
    dealt from that pair's seeds with that nonce. One pass over the pairs, with a range
    read of each pair's bets, so nothing grows with the history but the count."""
    db_bets, db_games = store.db(fairness.BETS_DB), store.db("games")
    previous: tuple[int, int, int, str] | None = None
    pairs = bets = 0
    for key, pair in _records(txn, store, report, fairness.PAIRS_DB, fairness.PAIR.decode):
        pairs += 1
        name = f"seed pair {pair.scope}/{pair.user}/{pair.seq}"
        if key != fairness.pair_key(pair.scope, pair.user, pair.seq):
            report.add("seed_pairs_committed", f"{name} is stored under {key.hex()}")
        if rules.seed_hash(pair.server_seed) != pair.seed_hash:
            report.add("seed_pairs_committed", f"{name}: its server seed misses its commitment")
        same_player = previous is not None and previous[:2] == (pair.scope, pair.user)
        if pair.seq != (previous[2] + 1 if previous is not None and same_player else 0):
            report.add("seed_pairs_committed", f"{name} does not follow pair {previous}")
        elif same_player and previous is not None and pair.seed_hash != previous[3]:
            report.add("seed_pairs_committed", f"{name}: not the seed its previous pair committed")
        if rules.seed_hash(pair.next_server_seed) != pair.next_seed_hash:
            report.add("seed_pairs_committed", f"{name}: its next seed misses its commitment")
        previous = (pair.scope, pair.user, pair.seq, pair.next_seed_hash)
        prefix = fairness.pair_key(pair.scope, pair.user, pair.seq)
        expected = 0
        cursor = txn.cursor(db=db_bets)
        found = cursor.set_range(prefix)
        while found and bytes(cursor.key()).startswith(prefix):
            nonce = fairness.split_bet_key(bytes(cursor.key()))[3]
            game_id = bytes(cursor.value()).decode()
            bets += 1
            if nonce != expected:
                report.add(
                    "seed_nonces_contiguous", f"{name}: nonce {nonce} follows {expected - 1}"
                )
            expected = nonce + 1
            game = _game_or_none(txn.get(keys.game_key(game_id), db=db_games))
            if game is not None and (
                (game.server_seed, game.client_seed, game.nonce, game.extra.get("pair"))
                != (pair.server_seed, pair.client_seed, nonce, pair.seq)
            ):
                report.add(
                    "seed_pairs_committed",
                    f"{name}: game {game_id} was not dealt from its nonce {nonce}",
                )
            found = cursor.next()
        if expected != pair.nonce:
            report.add("seed_nonces_contiguous", f"{name} counts {pair.nonce} bets, has {expected}")
    if bets != txn.stat(db_bets)["entries"]:
        report.add("seed_nonces_contiguous", "some seed bets name no seed pair")
    report.figures["seed_pairs"] = pairs
