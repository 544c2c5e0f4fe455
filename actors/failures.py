"""The runtime's failures: why a message to an actor got no reply.

They are not user errors (those are ``CroupierError``s, raised by the domain): the
outcome of the message is unknown, or it was never taken, so the caller may repeat it
with the same idempotency key. The domain catches ``RuntimeFailure`` where it retries
(deliveries, timers, refunds); the command dispatcher's ``user_error`` answers every one
"busy", the one place they meet users.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """The runtime could not get a message handled: no reply in time, or no actor."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AskTimeout(RuntimeFailure):
    """No reply before the deadline. The outcome is unknown: repeat with the same key."""

    def __init__(self, kind: str, timeout: float) -> None:
        super().__init__(kind, f"no reply from the {kind} actor within {timeout:g} s")
        self.timeout = timeout


class ActorStopped(RuntimeFailure):
    """The actor stopped (crashed past its restart intensity, or the system is closing)
    before it took the message."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind, f"the {kind} actor stopped before it took the message")


class ActorCrashed(RuntimeFailure):
    """The actor crashed while the message was pending; it was restarted from durable
    state, and whatever the message changed is exactly what is durable."""

    def __init__(self, kind: str, cause: BaseException) -> None:
        super().__init__(kind, f"the {kind} actor crashed ({type(cause).__name__})")
        self.cause = cause
