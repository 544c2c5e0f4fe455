"""Economy against a reference model: random operations, restarts, passivation, bursts.

A hypothesis state machine drives a real economy (store, actors, wallets) and a plain-dict
model side by side. Hypothesis is synchronous, so the economy lives in ``trio.run`` on a
background thread and every rule calls into it with ``trio.from_thread``. After every step
the store must pass the integrity check and hold exactly the balances and cooldowns the
model holds.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from actors import Economy, IntegrityReport, ScopeSettings, check_store, keys
from actors.errors import (
    BalanceTooHigh,
    CroupierError,
    InsufficientFunds,
    InvalidAmount,
    KeyReused,
    OnCooldown,
    SelfTransfer,
)
from actors.records import WALLET
from actors.wallet import AdjustResult, PayResult, ResetResult, RewardResult
from tests.economy_fixtures import Running, WallClock, running_economy

T = TypeVar("T")

G = 1
ADMIN = 99
USERS = st.integers(1, 6)
# A small ceiling makes full wallets, bounced payments and refused rewards common.
MAX_BALANCE = 2_000
DEFAULTS = ScopeSettings()
START = DEFAULTS.starting_balance
DAILY = DEFAULTS.daily_amount
WORK_MIN, WORK_MAX = DEFAULTS.work_min, DEFAULTS.work_max
# Amounts are mostly small, sometimes invalid or too large, often near the ceiling.
AMOUNTS = st.one_of(
    st.integers(1, 150),
    st.integers(-1, MAX_BALANCE + 100),
    st.integers(MAX_BALANCE - 300, MAX_BALANCE + 10),
)


# --- operations ------------------------------------------------------------------------


@dataclass(frozen=True)
class PayOp:
    user: int
    to: int
    amount: int
    key: str = ""


@dataclass(frozen=True)
class RewardOp:
    user: int
    kind: Literal["daily", "work"]
    key: str = ""


@dataclass(frozen=True)
class AdjustOp:
    user: int
    op: Literal["add", "remove", "set"]
    amount: int
    key: str = ""


@dataclass(frozen=True)
class ResetOp:
    user: int
    key: str = ""


Op = PayOp | RewardOp | AdjustOp | ResetOp


async def perform(economy: Economy, op: Op) -> object:
    """Run one operation; its result, or the typed error it was refused with."""
    try:
        if isinstance(op, PayOp):
            return await economy.pay(G, op.user, op.to, op.amount, op.key, reason=op.key)
        if isinstance(op, RewardOp):
            return await economy.reward(G, op.user, op.kind, op.key)
        if isinstance(op, AdjustOp):
            return await economy.adjust(G, ADMIN, op.user, op.op, op.amount, op.key, reason="m")
        return await economy.reset(G, ADMIN, op.user, op.key, reason="m")
    except CroupierError as exc:
        return exc


async def perform_all(economy: Economy, ops: list[Op]) -> list[object]:
    """Run operations all at once; results in the order of ``ops``."""
    results: list[object] = [None] * len(ops)

    async def one(index: int, op: Op) -> None:
        results[index] = await perform(economy, op)

    async with trio.open_nursery() as nursery:
        for index, op in enumerate(ops):
            nursery.start_soon(one, index, op)
    return results


# --- the economy on a background trio thread -------------------------------------------


class EconomyHost:
    """An economy served by ``trio.run`` in a thread and driven from the caller's thread."""

    def __init__(self, data_dir: Path, clock: WallClock) -> None:
        self._data_dir = data_dir
        self._clock = clock
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._commands: trio.MemorySendChannel[tuple[str, trio.Event | None]] | None = None
        self.running: Running | None = None
        self.delivered_at_start = 0
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._started.wait(timeout=30)
        if self._failure is not None:
            raise self._failure
        assert self._token is not None, "the economy thread did not start"

    @property
    def economy(self) -> Economy:
        assert self.running is not None
        return self.running.economy

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def restart(self) -> None:
        """Close actors and store, reopen on the same directory and deliver what is due."""
        self.run(self._command, "restart")

    def close(self) -> None:
        assert self._commands is not None
        self.run(self._commands.send, ("stop", None))
        self._thread.join(timeout=30)
        if self._failure is not None:
            raise self._failure

    async def _command(self, name: str) -> None:
        assert self._commands is not None
        done = trio.Event()
        await self._commands.send((name, done))
        await done.wait()

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._failure = exc
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        send, receive = trio.open_memory_channel[tuple[str, trio.Event | None]](0)
        self._commands = send
        done: trio.Event | None = None
        while True:
            async with running_economy(self._data_dir, clock=self._clock) as running:
                self.delivered_at_start = await running.economy.deliver_pending()
                self.running = running
                if done is None:
                    self._started.set()
                else:
                    done.set()
                command, done = await receive.receive()
            if command == "stop":
                return


def snapshot(store: Any) -> tuple[IntegrityReport, dict[int, tuple[int, float, float]]]:
    """The integrity report and every wallet of the guild, read from the store."""
    report = check_store(store)
    wallets: dict[int, tuple[int, float, float]] = {}
    with store.read() as txn:
        for key, value in txn.cursor(db=store.db("wallets")):
            scope, user = keys.split_wallet_key(key)
            assert scope == G, scope
            record = WALLET.decode(value)
            wallets[user] = (record.balance, record.daily_ready_at, record.work_ready_at)
    return report, wallets


# --- the model -------------------------------------------------------------------------


@dataclass
class Account:
    balance: int = START
    daily_ready_at: float = 0.0
    work_ready_at: float = 0.0


def same_outcome(first: object, second: object, sender_balance: int) -> bool:
    """Whether a repeated request answered like the first one.

    A returned payment reports the sender's balance as it is when the answer is given,
    so a repeat of it reports the current balance rather than the original one.
    """
    if isinstance(first, PayResult) and first.status == "returned":
        return second == dataclasses.replace(first, balance=sender_balance)
    return second == first


class Model:
    """What the economy should hold: balances and cooldowns of every opened wallet."""

    def __init__(self, clock: WallClock) -> None:
        self.clock = clock
        self.accounts: dict[int, Account] = {}

    def touch(self, user: int) -> Account:
        """The account, opened with the starting balance on first contact."""
        return self.accounts.setdefault(user, Account())

    def check(self, op: Op, got: object) -> None:
        """Check a result of a request that ran alone, and apply it."""
        if isinstance(op, PayOp):
            self._pay(op, got)
        elif isinstance(op, RewardOp):
            self._reward(op, got)
        elif isinstance(op, AdjustOp):
            self._adjust(op, got)
        else:
            account = self.touch(op.user)
            account.balance = START
            account.daily_ready_at = account.work_ready_at = 0.0
            assert got == ResetResult(START, 0), got

    def _pay(self, op: PayOp, got: object) -> None:
        if op.to == op.user:
            return expect(got, SelfTransfer)
        if op.amount < 1:
            return expect(got, InvalidAmount)
        sender = self.touch(op.user)
        if op.amount > MAX_BALANCE:
            return expect(got, InvalidAmount)
        if op.amount > sender.balance:
            expect(got, InsufficientFunds)
            assert isinstance(got, InsufficientFunds)
            assert (got.balance, got.amount) == (sender.balance, op.amount)
            return None
        receiver = self.touch(op.to)
        status: Literal["credited", "returned"] = "returned"
        if receiver.balance + op.amount <= MAX_BALANCE:
            status = "credited"
            sender.balance -= op.amount
            receiver.balance += op.amount
        assert isinstance(got, PayResult), got
        assert got == PayResult(got.transfer_id, op.to, op.amount, sender.balance, status), got
        return None

    def _reward(self, op: RewardOp, got: object) -> None:
        account = self.touch(op.user)
        now = self.clock.now
        ready_at = account.daily_ready_at if op.kind == "daily" else account.work_ready_at
        if now < ready_at:
            expect(got, OnCooldown)
            assert isinstance(got, OnCooldown) and got.ready_at == ready_at, got
            return
        if isinstance(got, BalanceTooHigh):
            # The work amount is random, so a refusal is right exactly when its amount
            # does not fit; a daily amount is fixed.
            assert got.balance == account.balance, got
            assert got.amount == DAILY if op.kind == "daily" else WORK_MIN <= got.amount <= WORK_MAX
            assert account.balance + got.amount > MAX_BALANCE, got
            return
        assert isinstance(got, RewardResult), got
        ready_at = self._rewarded(account, op.kind, got.amount)
        assert got == RewardResult(op.kind, got.amount, account.balance, ready_at), got

    def _rewarded(self, account: Account, kind: str, amount: int) -> float:
        """Apply a reward paid now; return when the next one is due."""
        now = self.clock.now
        account.balance += amount
        if kind == "daily":
            assert amount == DAILY, amount
            account.daily_ready_at = now + DEFAULTS.daily_cooldown_seconds
            return account.daily_ready_at
        assert WORK_MIN <= amount <= WORK_MAX, amount
        account.work_ready_at = now + DEFAULTS.work_cooldown_seconds
        return account.work_ready_at

    def _adjust(self, op: AdjustOp, got: object) -> None:
        if op.amount < (0 if op.op == "set" else 1):
            return expect(got, InvalidAmount)
        account = self.touch(op.user)
        if op.amount > MAX_BALANCE:
            return expect(got, InvalidAmount)
        if op.op == "add" and account.balance + op.amount > MAX_BALANCE:
            return expect(got, BalanceTooHigh)
        if op.op == "remove" and op.amount > account.balance:
            return expect(got, InsufficientFunds)
        delta = {"add": op.amount, "remove": -op.amount, "set": op.amount - account.balance}
        account.balance += delta[op.op]
        assert got == AdjustResult(op.op, delta[op.op], account.balance), got
        return None

    def absorb(self, op: Op, got: object) -> None:
        """Apply a result of a request that ran alongside others, in an unknown order.

        Whether it succeeded depended on the order, so only the kind of refusal is
        checked; what succeeded is applied, and since every success moves money by a
        fixed amount, the final balances do not depend on the order.
        """
        account = self.touch(op.user)
        if isinstance(got, CroupierError):
            allowed: tuple[type[CroupierError], ...] = {
                PayOp: (InsufficientFunds, InvalidAmount),
                RewardOp: (OnCooldown, BalanceTooHigh),
                AdjustOp: (BalanceTooHigh, InsufficientFunds, InvalidAmount),
            }[type(op)]
            assert type(got) in allowed, (op, got)
            return
        if isinstance(op, PayOp):
            assert isinstance(got, PayResult) and got.status in ("credited", "returned"), got
            receiver = self.touch(op.to)
            if got.status == "credited":
                account.balance -= op.amount
                receiver.balance += op.amount
        elif isinstance(op, RewardOp):
            assert isinstance(got, RewardResult) and got.kind == op.kind, got
            assert got.next_ready_at == self._rewarded(account, op.kind, got.amount), got
        else:
            assert isinstance(op, AdjustOp) and isinstance(got, AdjustResult), got
            assert got.delta == (op.amount if op.op == "add" else -op.amount), got
            account.balance += got.delta


def expect(got: object, error: type[CroupierError]) -> None:
    assert type(got) is error, f"expected {error.__name__}, got {got!r}"


# --- the state machine -----------------------------------------------------------------

CONCURRENT_OPS = st.one_of(
    st.builds(PayOp, USERS, USERS, st.integers(1, 400)).filter(lambda op: op.user != op.to),
    st.builds(RewardOp, USERS, st.sampled_from(["daily", "work"])),
    st.builds(AdjustOp, USERS, st.sampled_from(["add", "remove"]), st.integers(1, MAX_BALANCE)),
)


def answer(result: object) -> object:
    """A result with the parts that depend on timing alone blanked out."""
    if isinstance(result, PayResult) and result.status == "returned":
        return dataclasses.replace(result, balance=0)
    return result


class EconomyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.data_dir = Path(tempfile.mkdtemp(prefix="croupier-model-"))
        self.clock = WallClock()
        self.model = Model(self.clock)
        self.keys_issued = 0
        self.done: list[tuple[Op, object]] = []
        self.host = EconomyHost(self.data_dir, self.clock)
        changes = {"max_balance": MAX_BALANCE, "bet_max": MAX_BALANCE}
        self.host.run(self.host.economy.update_settings, G, changes)

    def teardown(self) -> None:
        try:
            self.host.close()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def fresh(self, op: Op) -> Op:
        self.keys_issued += 1
        return dataclasses.replace(op, key=f"k{self.keys_issued}")

    def step(self, op: Op) -> None:
        op = self.fresh(op)
        got = self.host.run(perform, self.host.economy, op)
        self.model.check(op, got)
        if not isinstance(got, CroupierError):
            self.done.append((op, got))

    @rule(user=USERS, to=USERS, amount=AMOUNTS)
    def pay(self, user: int, to: int, amount: int) -> None:
        self.step(PayOp(user, to, amount))

    @rule(user=USERS, kind=st.sampled_from(["daily", "work"]))
    def reward(self, user: int, kind: Literal["daily", "work"]) -> None:
        self.step(RewardOp(user, kind))

    @rule(user=USERS, op=st.sampled_from(["add", "remove", "set"]), amount=AMOUNTS)
    def adjust(self, user: int, op: Literal["add", "remove", "set"], amount: int) -> None:
        self.step(AdjustOp(user, op, amount))

    @rule(user=USERS)
    def reset(self, user: int) -> None:
        self.step(ResetOp(user))

    @rule(seconds=st.one_of(st.sampled_from([3_600, 86_400]), st.integers(1, 90_000)))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.done)
    @rule(choice=st.integers(min_value=0))
    def repeat(self, choice: int) -> None:
        op, first = self.done[choice % len(self.done)]
        got = self.host.run(perform, self.host.economy, op)
        assert same_outcome(first, got, self.model.accounts[op.user].balance), (op, first, got)

    @precondition(lambda self: self.done)
    @rule(choice=st.integers(min_value=0))
    def reuse_key_for_another_operation(self, choice: int) -> None:
        op, _ = self.done[choice % len(self.done)]
        other: Op = (
            RewardOp(op.user, "daily", op.key)
            if isinstance(op, PayOp)
            else PayOp(op.user, op.user % 6 + 1, 1, op.key)
        )
        expect(self.host.run(perform, self.host.economy, other), KeyReused)

    @rule(user=USERS)
    def passivate(self, user: int) -> None:
        assert self.host.running is not None
        self.host.run_sync(self.host.running.actors.passivate, "wallet", (G, user))

    @rule()
    def restart(self) -> None:
        self.host.restart()
        assert self.host.delivered_at_start == 0

    @rule(
        ops=st.lists(CONCURRENT_OPS, min_size=2, max_size=8),
        repeats=st.lists(st.integers(0, 7), max_size=2),
    )
    def burst(self, ops: list[Op], repeats: list[int]) -> None:
        fresh = [self.fresh(op) for op in ops]
        batch = fresh + [fresh[index % len(fresh)] for index in repeats]
        results = self.host.run(perform_all, self.host.economy, batch)
        by_key: dict[str, list[object]] = {}
        for op, got in zip(batch, results, strict=True):
            by_key.setdefault(op.key, []).append(got)
        for op in fresh:
            answers = by_key[op.key]
            successes = [a for a in answers if not isinstance(a, CroupierError)]
            for failure in (a for a in answers if isinstance(a, CroupierError)):
                self.model.absorb(op, failure)
            if successes:
                # Copies of one request succeed together, with one answer, and count once.
                assert len({repr(answer(s)) for s in successes}) == 1, (op, successes)
                self.model.absorb(op, successes[0])
                self.done.append((op, successes[0]))

    @invariant()
    def store_matches_model(self) -> None:
        assert self.host.running is not None
        report, wallets = self.host.run_sync(snapshot, self.host.running.store)
        assert report.ok, report.text()
        assert report.figures["outbox_records"] == 0, report.text()
        expected = {
            user: (a.balance, a.daily_ready_at, a.work_ready_at)
            for user, a in self.model.accounts.items()
        }
        assert wallets == expected


def test_economy_matches_a_reference_model() -> None:
    """Random operations, repeats, restarts, passivations and concurrent bursts leave every
    balance and cooldown where a plain-dict model says, with the integrity check passing.
    CROUPIER_MODEL_EXAMPLES raises the number of runs for a deeper search (1,000 passed
    in about 80 s when the actor runtime was rewritten)."""
    run_state_machine_as_test(
        EconomyMachine,
        settings=settings(
            max_examples=int(os.environ.get("CROUPIER_MODEL_EXAMPLES", "60")),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
