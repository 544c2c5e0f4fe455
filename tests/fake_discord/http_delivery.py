"""Signed HTTP deliveries to an interactions endpoint, as Discord makes them.

Discord signs each delivery with the application's Ed25519 key: the signature in
``X-Signature-Ed25519`` covers the ``X-Signature-Timestamp`` value followed by the body.
``HttpDelivery`` holds a freshly generated key pair (the endpoint is configured with
``public_key_hex``), POSTs interaction payloads (built by ``FakeDiscord``), records each
answer with its latency, and hands the answer to the fake as Discord would take an
initial callback, so follow-ups by REST find the message they edit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from nacl.signing import SigningKey

from tests.fake_discord.server import FakeDiscord

# The answers that are initial callbacks: a message, a deferral, an update.
_CALLBACKS = (4, 5, 6, 7)


@dataclass(frozen=True)
class Delivered:
    """One delivery: the HTTP status, the JSON answer (None if not JSON), and the seconds
    from sending to the whole answer."""

    interaction_id: int
    status: int
    answer: Any
    latency_seconds: float


def sign(key: SigningKey, timestamp: str, body: bytes) -> str:
    """The ``X-Signature-Ed25519`` value Discord would send."""
    return key.sign(timestamp.encode() + body).signature.hex()


def signed_headers(key: SigningKey, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Signature-Ed25519": sign(key, timestamp, body),
        "X-Signature-Timestamp": timestamp,
    }


class HttpDelivery:
    """Delivers to ``url`` (the endpoint's ``/interactions``) on behalf of ``fake``."""

    def __init__(self, fake: FakeDiscord, url: str, key: SigningKey | None = None) -> None:
        self.fake = fake
        self.url = url
        self.key = key or SigningKey.generate()
        self._lock = threading.Lock()
        self._delivered: list[Delivered] = []

    @property
    def public_key_hex(self) -> str:
        return self.key.verify_key.encode().hex()

    @property
    def delivered(self) -> list[Delivered]:
        with self._lock:
            return list(self._delivered)

    async def deliver(
        self,
        client: httpx.AsyncClient,
        payload: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Delivered:
        """POST ``payload`` signed (or with exactly ``headers`` and ``body``, to send
        what Discord never would); a 2xx answer is applied to the fake."""
        body = json.dumps(payload).encode() if body is None else body
        sent = signed_headers(self.key, body) if headers is None else dict(headers)
        started = time.perf_counter()
        response = await client.post(self.url, content=body, headers=sent)
        latency = time.perf_counter() - started
        try:
            answer = response.json()
        except ValueError:
            answer = None
        delivered = Delivered(int(payload.get("id") or 0), response.status_code, answer, latency)
        with self._lock:
            self._delivered.append(delivered)
        if response.is_success and isinstance(answer, dict) and answer.get("type") in _CALLBACKS:
            self.fake.take_http_answer(payload, answer)
        return delivered
