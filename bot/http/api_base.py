"""The HTTP API's request machinery: tokens, rate limits, idempotent writes, errors, parsing.

Every route of ``bot.http.api`` is a handler from a ``Call`` (an authorised request,
its guild, path, query and body, and the economy's idempotency key of a write) to a
status and a JSON document. ``ApiBase`` turns a Starlette request into that call: it
authenticates the bearer token, takes from the token's rate bucket, checks the guild
and the token's scope, refuses unknown query parameters, and for a write reads a body
of bounded size and stores the first answer under the ``Idempotency-Key``. The typed
errors become JSON ``{"code", "message"}`` answers with their HTTP status here, once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from actors import ApiToken, ApiTokens, AuditLog, Economy, KeyedAnswers, keys
from actors.answers import fingerprint_bytes
from actors.errors import (
    BalanceTooHigh,
    Busy,
    CroupierError,
    DuplicateItem,
    InsufficientFunds,
    InvalidInput,
    NotFound,
    NotPermitted,
    RateLimited,
)
from bot.dispatch import REFUSALS, TokenBuckets, user_error
from bot.inputs import (
    clean_text,
    json_object,
    number_from_text,
    snowflake,
    whole_number,
)
from limits import ApiLimits, api_idempotency_key_chars_max, integer_option_max
from metrics import log_event

log = logging.getLogger("croupier.http.api")

_IDEMPOTENCY_KEY = re.compile(rf"[!-~]{{1,{api_idempotency_key_chars_max}}}")
_BEARER = re.compile(r"Bearer ([!-~]{1,200})")


class Unauthorized(CroupierError):
    code = "unauthorized"

    def __init__(self, why: str) -> None:
        super().__init__(
            f"{why}; send Authorization: Bearer <token> with a token from /api-token-create"
        )


class TokenForbidden(NotPermitted):
    """A valid token used where it does not reach (another guild, or a write with a read
    token)."""

    def __init__(self, message: str) -> None:
        CroupierError.__init__(self, message)
        self.what = message


class KeyReusedForOther(CroupierError):
    code = "id_reused"

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for a different request; "
            "send this one with a new key"
        )


class _Throttled(RateLimited):
    """``RateLimited`` with the headers its answer carries."""

    def __init__(self, error: RateLimited, headers: dict[str, str]) -> None:
        CroupierError.__init__(self, error.message)
        self.wait_seconds = error.wait_seconds
        self.headers = headers


_STATUS_OF = {
    InvalidInput.code: 400,
    # The boundary refuses bad figures as invalid_input; invalid_amount comes from the
    # economy, for an amount past the server's own max_balance setting.
    "invalid_amount": 409,
    "guild_only": 400,
    Unauthorized.code: 401,
    NotPermitted.code: 403,
    NotFound.code: 404,
    KeyReusedForOther.code: 409,
    InsufficientFunds.code: 409,
    BalanceTooHigh.code: 409,
    DuplicateItem.code: 409,
    RateLimited.code: 429,
    Busy.code: 503,
}

_INTERNAL = {"code": "internal", "message": "the server failed; try again later"}

# Answers that say "try again", never stored under an idempotency key.
_TRANSIENT_STATUSES = frozenset({429, 500, 503})


def status_of(error: CroupierError) -> int:
    """The HTTP status of a typed error: 409 for a refusal by the economy's state."""
    return _STATUS_OF.get(error.code, 409)


def error_document(error: CroupierError) -> dict[str, Any]:
    document: dict[str, Any] = {"code": error.code, "message": error.message}
    if isinstance(error, InvalidInput):
        document["field"] = error.field
    if isinstance(error, RateLimited):
        document["retry_after"] = error.wait_seconds
    return document


def json_answer(status: int, document: Mapping[str, Any], headers: Mapping[str, str]) -> Response:
    return Response(
        json.dumps(document, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **headers},
    )


@dataclass(frozen=True)
class Call:
    """One authorised request as a route handler sees it."""

    token: ApiToken
    guild: int
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: dict[str, Any]
    # The economy's idempotency key of a write ("api:<guild>:<key>"), empty for reads.
    key: str


Handler = Callable[[Call], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True)
class Operation:
    write: bool
    query: tuple[str, ...]
    handler: Handler


@dataclass
class _InFlight:
    fingerprint: bytes
    done: trio.Event = field(default_factory=trio.Event)
    answer: tuple[int, dict[str, Any]] | None = None


class ApiBase:
    """The API's state, and what every route does with a request before its handler."""

    def __init__(
        self,
        economy: Economy,
        *,
        tokens: ApiTokens | None = None,
        audit: AuditLog | None = None,
        answers: KeyedAnswers | None = None,
        limits: ApiLimits | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        store, now = economy.store, economy.context.now
        self.economy = economy
        self.tokens = tokens or ApiTokens(store, now)
        self.audit = audit or AuditLog(store, now)
        self.answers = answers or KeyedAnswers(store, now, "api_answers", "api_answers_by_time")
        self.limits = limits or ApiLimits()
        self._buckets = TokenBuckets(self.limits.rate, clock)
        self._in_flight: dict[bytes, _InFlight] = {}
        # Built at the first request for it: its text patterns take a second to compute.
        self._openapi: bytes | None = None

    def _endpoint(
        self, methods: Mapping[str, Operation]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            operation = methods[request.method]
            write, handler = operation.write, operation.handler
            headers: dict[str, str] = {}
            try:
                token = self._authenticate(request)
                headers = self._throttle(token)
                guild = path_id(request.path_params["guild"], "guild")
                if token.guild != guild:
                    raise TokenForbidden("this token belongs to another server")
                if write and not token.can_write:
                    raise TokenForbidden(
                        "this token is read-only; create a write token for changes"
                    )
                for name in request.query_params:
                    if name not in operation.query:
                        known = ", ".join(operation.query) or "none"
                        raise InvalidInput(
                            name[:40] or "query", f"is not a query parameter here (known: {known})"
                        )
                if not write:
                    call = Call(token, guild, request.path_params, request.query_params, {}, "")
                    status, document = await self._run(handler, call)
                    return json_answer(status, document, headers)
                return await self._write(request, token, guild, handler, headers)
            except _Throttled as throttled:
                return json_answer(429, error_document(throttled), throttled.headers)
            except REFUSALS as refusal:
                error = user_error(refusal)
                return json_answer(status_of(error), error_document(error), headers)
            except Exception:
                # A bug or a record that cannot be read costs this request, answered
                # like any other error; only ``Exception``, so Cancelled keeps unwinding.
                log_event(log, "api_request_failed", level=logging.ERROR, exc_info=True)
                return json_answer(500, _INTERNAL, headers)

        return endpoint

    def _authenticate(self, request: Request) -> ApiToken:
        header = request.headers.get("authorization")
        if header is None:
            raise Unauthorized("no token was sent")
        found = _BEARER.fullmatch(header)
        token = self.tokens.authenticate(found.group(1)) if found else None
        if token is None:
            raise Unauthorized("this token is not valid (revoked, or never made)")
        return token

    def _throttle(self, token: ApiToken) -> dict[str, str]:
        bucket = int(token.token_id, 16)
        wait = self._buckets.take(bucket)
        rate = self.limits.rate
        remaining = self._buckets.remaining(bucket)
        full_in = (rate.burst_commands - remaining) / rate.refill_per_second
        headers = {
            "X-RateLimit-Limit": str(rate.burst_commands),
            "X-RateLimit-Remaining": str(math.floor(remaining)),
            "X-RateLimit-Reset": str(math.ceil(full_in)),
        }
        if wait > 0:
            error = RateLimited(wait)
            raise _Throttled(error, {**headers, "Retry-After": str(error.wait_seconds)})
        return headers

    async def _run(self, handler: Handler, call: Call) -> tuple[int, dict[str, Any]]:
        """The handler's answer, with typed errors as their answers; an unexpected
        exception is logged once and answered 500."""
        try:
            return await handler(call)
        except REFUSALS as refusal:
            error = user_error(refusal)
            return status_of(error), error_document(error)
        except Exception:
            # Only ``Exception``: Cancelled must keep unwinding.
            log_event(log, "api_request_failed", level=logging.ERROR, exc_info=True)
            return 500, dict(_INTERNAL)

    # --- idempotent writes -------------------------------------------------------------

    async def _write(
        self,
        request: Request,
        token: ApiToken,
        guild: int,
        handler: Handler,
        headers: dict[str, str],
    ) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None or not _IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidInput(
                "Idempotency-Key",
                f"a header of 1 to {api_idempotency_key_chars_max} printable ASCII characters "
                "is required on every change",
            )
        raw = await _read_body(request, self.limits.body_bytes_max)
        body = json_object(raw or b"{}", "body", depth_max=self.limits.json_depth_max)
        fingerprint = _fingerprint(request.method, request.url.path, body)
        stored_key = keys.u64(guild) + key.encode()
        running = self._in_flight.get(stored_key)
        if running is not None:
            if running.fingerprint != fingerprint:
                raise KeyReusedForOther()
            await running.done.wait()
            assert running.answer is not None
            return json_answer(*running.answer, {**headers, "Idempotent-Replayed": "true"})
        stored = self.answers.get(stored_key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise KeyReusedForOther()
            replayed = {**headers, "Idempotent-Replayed": "true"}
            return json_answer(stored.answer["status"], stored.answer["body"], replayed)
        if len(self._in_flight) >= self.limits.in_flight_keys_max:
            raise Busy()
        flight = self._in_flight[stored_key] = _InFlight(fingerprint)
        try:
            call = Call(
                token, guild, request.path_params, request.query_params, body, f"api:{guild}:{key}"
            )
            answer = await self._run(handler, call)
            if answer[0] not in _TRANSIENT_STATUSES:
                kept = await self.answers.put(
                    stored_key, fingerprint, {"status": answer[0], "body": answer[1]}
                )
                if kept.fingerprint != fingerprint:
                    answer = 409, error_document(KeyReusedForOther())
                else:
                    answer = kept.answer["status"], kept.answer["body"]
            flight.answer = answer
            return json_answer(*answer, headers)
        finally:
            del self._in_flight[stored_key]
            if flight.answer is None:
                # Cancelled before an answer: a waiting repeat is told to retry.
                flight.answer = 503, error_document(Busy())
            flight.done.set()

    # --- shared ------------------------------------------------------------------------

    def _reason(self, body: Mapping[str, Any]) -> str:
        chars_max = self.economy.limits.reason_chars_max
        return clean_text(body.get("reason", ""), "reason", chars_max=chars_max)

    async def _audit(
        self,
        call: Call,
        action: str,
        target: str,
        before: dict[str, Any],
        after: dict[str, Any],
        reason: str = "",
    ) -> None:
        await self.audit.append(
            call.guild,
            request=call.key,
            actor=f"token:{call.token.token_id}",
            via="api",
            action=action,
            target=target,
            before=before,
            after=after,
            reason=reason,
        )


def json_error_handlers() -> dict[Any, Any]:
    """Starlette's own refusals (no such path, a method a path does not take) as the
    API's JSON errors; also for the app the API is mounted in, which answers paths that
    no mount matches (a path with a newline in it, say)."""
    return {HTTPException: _http_error}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException), exc
    headers = dict(exc.headers or {})
    if "Allow" in headers:
        headers["Allow"] = ", ".join(sorted(headers["Allow"].split(", ")))
    code = "not_found" if exc.status_code == 404 else "invalid_input"
    message = f"no such path: {request.url.path}" if exc.status_code == 404 else str(exc.detail)
    return json_answer(exc.status_code, {"code": code, "message": message}, headers)


async def _read_body(request: Request, bytes_max: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (
        not declared.isdigit() or len(declared) > 12 or int(declared) > bytes_max
    ):
        raise InvalidInput("body", f"must be at most {bytes_max} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > bytes_max:
                raise InvalidInput("body", f"must be at most {bytes_max} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidInput("body", "the client went away before sending it") from None
    return b"".join(chunks)


def _fingerprint(method: str, path: str, body: Mapping[str, Any]) -> bytes:
    text = json.dumps([method, path, _canonical(body)], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:fingerprint_bytes]


def _canonical(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)


def only_fields(
    body: Mapping[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...]
) -> Mapping[str, Any]:
    """``body``, refused naming the first unknown or missing field."""
    allowed = (*required, *optional)
    for name in body:
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise InvalidInput(name[:40], f"is not a field of this request (fields: {known})")
    for name in required:
        if name not in body:
            raise InvalidInput(name, "is required")
    return body


def query_number(
    query: Mapping[str, str], name: str, default: int, minimum: int, maximum: int
) -> int:
    text = query.get(name)
    if text is None:
        return default
    number = number_from_text(text)
    if not isinstance(number, int):
        raise InvalidInput(name, "must be a whole number")
    return whole_number(number, name, minimum=minimum, maximum=maximum)


def path_id(text: str, field: str) -> int:
    """A Discord id in a path, in its one spelling: digits without leading zeros."""
    number = snowflake(text, field)
    if text != str(number):
        raise InvalidInput(field, "must be written without leading zeros")
    return number


def path_number(text: str, name: str) -> int:
    number = number_from_text(text) if text.isascii() and text.isdigit() else None
    if not isinstance(number, int) or text != str(number):
        raise InvalidInput(name, "must be an item id (a whole number without leading zeros)")
    return whole_number(number, name, minimum=1, maximum=integer_option_max)
