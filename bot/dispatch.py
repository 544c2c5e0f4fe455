"""The command dispatcher every transport calls.

A ``CommandSet`` holds the commands and button routes of the server and turns one
``Invocation`` or ``ButtonPress`` into one ``Reply``. Everything a transport must not do
twice lives here: option validation against the ``Option`` specs, the admin check, the
per-user rate limit, metrics, and the mapping of errors to replies. A handler therefore
only ever sees well-typed options from a permitted, unthrottled user, and a transport only
ever sees a ``Reply``: typed errors become ephemeral error replies, the runtime's
failures (an ask that timed out, a full mailbox, a stopped or crashed actor) become the
"busy" reply, and bugs become an "internal error" reply that is logged with its traceback.
``user_error`` is that mapping, for the transports that call the domain themselves.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from actors import AnswerLog, RuntimeFailure
from actors.answers import fingerprint_bytes
from actors.errors import (
    Busy,
    CroupierError,
    IdReused,
    InvalidInput,
    NotFound,
    NotPermitted,
    RateLimited,
)
from bot.inputs import (
    clean_text,
    is_snowflake,
    shown,
    whole_number,
)
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
    UserRef,
)
from limits import (
    RateLimit,
    command_description_chars_max,
    command_name_chars_max,
    command_options_max,
    integer_option_max,
    integer_option_min,
    text_chars_max_default,
)
from metrics import Metrics

logger = logging.getLogger(__name__)

ERROR_COLOR = 0xE74C3C

_NAME_PATTERN = re.compile(rf"^[-_a-z0-9]{{1,{command_name_chars_max}}}$")

# Metric label values must come from a bounded set, so names a user typed are never used
# as labels: an unknown command or button is counted under these.
_UNKNOWN_COMMAND_LABEL = "unknown"
_UNKNOWN_BUTTON_LABEL = "button:unknown"
# A failure in a transport around a command (reading the request, writing the reply).
_TRANSPORT_LABEL = "transport"
# Refusals that say "try again", not "no": they are not stored as an interaction's answer,
# so the retry they ask for can go through.
TRANSIENT_ERROR_CODES = frozenset({Busy.code, RateLimited.code, "internal"})

# What a command can be refused with: a typed user error, or a failure of the runtime,
# which a user is told as "busy" (see ``user_error``).
Refusal = CroupierError | RuntimeFailure
REFUSALS = (CroupierError, RuntimeFailure)


class TokenBuckets:
    """Per-user token buckets with bounded memory (an LRU of ``tracked_users_max``)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        # user id -> (tokens, time of the last refill); ordered from least to most recent.
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, user_id: int) -> float:
        """Take one token for ``user_id``; return 0 if granted, else the seconds to wait."""
        now = self._clock()
        limit = self._limit
        tokens, last = self._buckets.pop(user_id, (float(limit.burst_commands), now))
        tokens = min(float(limit.burst_commands), tokens + (now - last) * limit.refill_per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / limit.refill_per_second
        self._buckets[user_id] = (tokens, now)
        while len(self._buckets) > limit.tracked_users_max:
            self._buckets.popitem(last=False)
        return wait

    def remaining(self, user_id: int) -> float:
        """Tokens ``user_id`` has now (a full bucket for one not tracked)."""
        now = self._clock()
        limit = self._limit
        tokens, last = self._buckets.get(user_id, (float(limit.burst_commands), now))
        return min(float(limit.burst_commands), tokens + (now - last) * limit.refill_per_second)


class CommandSet:
    """Commands and button routes, served to every transport through ``invoke`` and
    ``press``.

    ``clock`` is the time source of the rate limit and of the duration metric; it defaults
    to ``trio.current_time`` so tests can drive it with trio's mock clock.
    """

    def __init__(
        self,
        commands: Iterable[Command],
        buttons: Iterable[ButtonRoute] = (),
        *,
        metrics: Metrics,
        rate_limit: RateLimit | None = None,
        clock: Callable[[], float] = trio.current_time,
        answers: AnswerLog | None = None,
    ) -> None:
        self._commands: dict[str, Command] = {}
        for command in commands:
            _check_command(command)
            if command.name in self._commands:
                raise ValueError(f"two commands are named {command.name!r}")
            self._commands[command.name] = command
        self._routes: dict[str, ButtonRoute] = {}
        for route in buttons:
            if not route.prefix or ":" in route.prefix:
                raise ValueError(f"button prefix {route.prefix!r} must be non-empty without ':'")
            if route.prefix in self._routes:
                raise ValueError(f"two button routes use the prefix {route.prefix!r}")
            self._routes[route.prefix] = route
        self._metrics = metrics
        self._clock = clock
        self._buckets = TokenBuckets(rate_limit or RateLimit(), clock)
        # Without a log (command sets over no store, in tests) every delivery runs.
        self.answers = answers
        # Interactions being answered now, so that a redelivery arriving meanwhile waits
        # for the first answer instead of running the request a second time.
        self._in_flight: dict[int, _InFlight] = {}

    @property
    def commands(self) -> tuple[Command, ...]:
        """Every command, in the order they were given."""
        return tuple(self._commands.values())

    def command(self, name: str) -> Command | None:
        return self._commands.get(name)

    def tracked_users(self) -> int:
        """How many users' rate-limit buckets are held in memory."""
        return len(self._buckets)

    async def invoke(self, inv: Invocation) -> Reply:
        """Run one command: checks, handler, metrics; always returns a reply."""
        command = self._commands.get(inv.command)
        label = command.name if command is not None else _UNKNOWN_COMMAND_LABEL

        async def run() -> Reply:
            if command is None:
                raise NotFound("command", inv.command)
            self._throttle(inv.user_id, label)
            if command.admin_only and not inv.can_manage_guild:
                raise NotPermitted(f"/{command.name}")
            if command.ban_members_only and not inv.can_ban_members:
                raise NotPermitted(f"/{command.name}", "Ban Members")
            options = validate_options(command, inv.options)
            return await command.handler(dataclasses.replace(inv, options=options))

        request = ("command", inv.command, inv.options, inv.user_id, inv.guild_id)
        if command is not None and command.secret_reply:
            return await self._serve(label, f"/{inv.command}", inv.interaction_id, run)
        return await self._answer_once(inv.interaction_id, request, label, f"/{inv.command}", run)

    async def press(self, p: ButtonPress) -> Reply:
        """Route one button press by the prefix of its custom id; always returns a reply."""
        prefix = p.custom_id.split(":", 1)[0]
        route = self._routes.get(prefix)
        label = f"button:{route.prefix}" if route is not None else _UNKNOWN_BUTTON_LABEL

        async def run() -> Reply:
            if route is None:
                raise NotFound("button", p.custom_id)
            self._throttle(p.user_id, label)
            return await route.handler(p)

        request = ("button", p.custom_id, None, p.user_id, p.guild_id)
        what = f"button {p.custom_id[:100]!r}"
        return await self._answer_once(p.interaction_id, request, label, what, run)

    async def _answer_once(
        self,
        interaction_id: int,
        request: tuple[str, str, object, int, int],
        label: str,
        what: str,
        run: Callable[[], Awaitable[Reply]],
    ) -> Reply:
        """Serve an interaction once: a repeat of its id gets the first answer (waiting
        for it if the first delivery is still running), and a different request under
        the same id is refused with ``id_reused``."""
        if self.answers is None:
            return await self._serve(label, what, interaction_id, run)
        fingerprint = request_fingerprint(request)
        running = self._in_flight.get(interaction_id)
        if running is not None:
            if running.fingerprint != fingerprint:
                return error_reply(IdReused(interaction_id))
            await running.done.wait()
            assert running.reply is not None
            return running.reply
        stored = self.answers.get(interaction_id)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                return error_reply(IdReused(interaction_id))
            self._metrics.commands.labels(command=label, outcome="replayed").inc()
            return reply_from_record(stored.answer)
        flight = self._in_flight[interaction_id] = _InFlight(fingerprint)
        try:
            flight.reply = await self._serve(label, what, interaction_id, run)
            flight.reply = await self._keep(interaction_id, fingerprint, flight.reply)
            return flight.reply
        finally:
            del self._in_flight[interaction_id]
            if flight.reply is None:
                # Cancelled before an answer: a waiting redelivery is told to retry.
                flight.reply = error_reply(Busy())
            flight.done.set()

    async def _keep(self, interaction_id: int, fingerprint: bytes, reply: Reply) -> Reply:
        """Store ``reply`` as the interaction's answer unless it is transient; return
        the answer that stays (another process may have stored one first)."""
        assert self.answers is not None
        if reply.error_code in TRANSIENT_ERROR_CODES:
            return reply
        try:
            kept = await self.answers.put(interaction_id, fingerprint, reply_record(reply))
        except Exception:
            # The answer was given but cannot be kept: a redelivery will run the request
            # again, which the domain's own idempotency keys make safe for money.
            logger.exception("storing the answer of interaction %d failed", interaction_id)
            return reply
        if kept.fingerprint != fingerprint:
            return error_reply(IdReused(interaction_id))
        return reply_from_record(kept.answer)

    def internal_failure(self, what: str) -> Reply:
        """Log the exception being handled (once, with its traceback), count it, and
        return the "internal error" reply: for a transport's own failure around a
        command, so that one bad input never ends the process."""
        logger.exception("%s failed", what)
        self._metrics.commands.labels(command=_TRANSPORT_LABEL, outcome="failed").inc()
        return internal_error_reply()

    def _throttle(self, user_id: int, label: str) -> None:
        wait = self._buckets.take(user_id)
        if wait > 0:
            self._metrics.ratelimit_rejections.labels(command=label).inc()
            raise RateLimited(wait)

    async def _serve(
        self, label: str, what: str, interaction_id: int, run: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        started = self._clock()
        try:
            reply = await run()
            outcome = "ok"
        except REFUSALS as err:
            reply = error_reply(err)
            outcome = "error"
        except Exception:
            # Only ``Exception``: trio.Cancelled and KeyboardInterrupt are BaseExceptions and
            # must keep unwinding.
            logger.exception("%s (interaction %d) failed", what, interaction_id)
            reply = internal_error_reply()
            outcome = "failed"
        self._metrics.commands.labels(command=label, outcome=outcome).inc()
        self._metrics.command_duration.labels(command=label).observe(self._clock() - started)
        return reply


@dataclass
class _InFlight:
    fingerprint: bytes
    done: trio.Event = dataclasses.field(default_factory=trio.Event)
    reply: Reply | None = None


def request_fingerprint(request: object) -> bytes:
    """A digest of what a request asks (kind, command or button, options, user, guild);
    two deliveries of one interaction have the same one."""
    text = json.dumps(_canonical(request), sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:fingerprint_bytes]


def _canonical(value: object) -> object:
    if isinstance(value, UserRef):
        return ["user", value.id, value.bot]
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, bool | float | str) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**64 else ["big", value.bit_length()]
    return ["value", shown(value)]


def reply_record(reply: Reply) -> dict[str, Any]:
    """A reply as plain values, to be stored (``reply_from_record`` reads it back)."""
    return {
        "title": reply.title,
        "description": reply.description,
        "fields": [[f.name, f.value, f.inline] for f in reply.fields],
        "buttons": [[b.custom_id, b.label, b.style.value, b.disabled] for b in reply.buttons],
        "ephemeral": reply.ephemeral,
        "color": reply.color,
        "footer": reply.footer,
        "error_code": reply.error_code,
        "result": plain_values(reply.result),
        "grant_role_ids": list(reply.grant_role_ids),
    }


def reply_from_record(record: Mapping[str, Any]) -> Reply:
    return Reply(
        title=record["title"],
        description=record["description"],
        fields=tuple(Field(name, value, inline) for name, value, inline in record["fields"]),
        buttons=tuple(
            Button(custom_id, label, ButtonStyle(style), disabled)
            for custom_id, label, style, disabled in record["buttons"]
        ),
        ephemeral=record["ephemeral"],
        color=record["color"],
        footer=record["footer"],
        error_code=record["error_code"],
        result=record["result"],
        grant_role_ids=tuple(record["grant_role_ids"]),
    )


def plain_values(value: object) -> Any:
    """``value`` as the plain values a JSON reply shows: records become maps, enums
    their values, anything else unknown its text. Stored answers and the console's
    replies both go through it, so a replayed answer reads like the first."""
    if isinstance(value, Mapping):
        return {str(key): plain_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_values(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain_values(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return plain_values(value.value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def user_error(refusal: Refusal) -> CroupierError:
    """The error a user is shown for a refusal. A runtime failure leaves the outcome
    unknown, so it is answered ``Busy``: repeat the same interaction, whose idempotency
    key makes that safe. This is the one place runtime failures meet users."""
    return Busy() if isinstance(refusal, RuntimeFailure) else refusal


def error_reply(refusal: Refusal) -> Reply:
    """The ephemeral reply that shows a refusal to the user who caused it."""
    err = user_error(refusal)
    return Reply(
        title="That did not work",
        description=err.message,
        ephemeral=True,
        color=ERROR_COLOR,
        error_code=err.code,
    )


def internal_error_reply() -> Reply:
    return Reply(
        title="Something went wrong",
        description="Croupier hit an internal error and logged it; please try again later.",
        ephemeral=True,
        color=ERROR_COLOR,
        error_code="internal",
    )


def validate_options(command: Command, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check typed option values against the command's specs and return them cleaned
    (text NFC-normalised); raise ``InvalidInput`` naming the first offending option.

    Every integer option is bounded (by its spec, else by what Discord can send), so no
    transport can hand the domain an unbounded figure."""
    specs = {option.name: option for option in command.options}
    for name in options:
        if name not in specs:
            known = ", ".join(specs) or "none"
            label = name if _NAME_PATTERN.match(name) else shown(name)
            raise InvalidInput(label, f"/{command.name} has no such option (options: {known})")
    cleaned: dict[str, Any] = {}
    for spec in command.options:
        if spec.name not in options:
            if spec.required:
                raise InvalidInput(spec.name, "is required")
            continue
        cleaned[spec.name] = _check_value(spec, options[spec.name])
    return cleaned


def _check_value(spec: Option, value: Any) -> Any:
    if spec.kind is OptionKind.INTEGER:
        minimum = integer_option_min if spec.min_value is None else spec.min_value
        maximum = integer_option_max if spec.max_value is None else spec.max_value
        value = whole_number(value, spec.name, minimum=minimum, maximum=maximum)
    elif spec.kind is OptionKind.STRING:
        chars_max = text_chars_max_default if spec.max_length is None else spec.max_length
        value = clean_text(value, spec.name, chars_max=chars_max)
    elif spec.kind is OptionKind.USER:
        if not isinstance(value, UserRef) or not is_snowflake(value.id):
            raise InvalidInput(spec.name, f"{shown(value)} is not a user; mention a member")
    elif spec.kind in (OptionKind.CHANNEL, OptionKind.ROLE):
        if isinstance(value, bool) or not isinstance(value, int) or not is_snowflake(value):
            what = "channel" if spec.kind is OptionKind.CHANNEL else "role"
            raise InvalidInput(spec.name, f"{shown(value)} is not a {what}; mention one")
    elif spec.kind is OptionKind.BOOLEAN and not isinstance(value, bool):
        raise InvalidInput(spec.name, f"{shown(value)} is not true or false")
    if spec.choices and str(value) not in spec.choices:
        raise InvalidInput(spec.name, f"must be one of: {', '.join(spec.choices)}")
    return value


def _check_command(command: Command) -> None:
    """Refuse, at start-up, a command Discord would refuse to register."""
    if not _NAME_PATTERN.match(command.name):
        raise ValueError(f"command name {command.name!r} must match {_NAME_PATTERN.pattern}")
    if not 1 <= len(command.description) <= command_description_chars_max:
        chars = command_description_chars_max
        raise ValueError(f"/{command.name}: description must have 1 to {chars} characters")
    if len(command.options) > command_options_max:
        raise ValueError(f"/{command.name}: at most {command_options_max} options")
    seen_optional = False
    names: set[str] = set()
    for option in command.options:
        where = f"/{command.name} option {option.name!r}"
        if not _NAME_PATTERN.match(option.name) or option.name in names:
            raise ValueError(f"{where}: names must be unique and match {_NAME_PATTERN.pattern}")
        names.add(option.name)
        if not 1 <= len(option.description) <= command_description_chars_max:
            raise ValueError(
                f"{where}: description must have 1 to {command_description_chars_max} characters"
            )
        if option.required and seen_optional:
            raise ValueError(f"{where}: required options must come before optional ones")
        seen_optional = seen_optional or not option.required
        ranged = option.min_value is not None or option.max_value is not None
        if ranged and option.kind is not OptionKind.INTEGER:
            raise ValueError(f"{where}: only integer options take min_value or max_value")
        if option.max_length is not None and option.kind is not OptionKind.STRING:
            raise ValueError(f"{where}: only text options take max_length")
        if option.kind is OptionKind.INTEGER and option.choices:
            for choice in option.choices:
                if not re.fullmatch(r"-?[0-9]+", choice):
                    raise ValueError(f"{where}: choice {choice!r} is not a whole number")
        elif option.choices and option.kind is not OptionKind.STRING:
            raise ValueError(f"{where}: only text and integer options take choices")
