"""Schemathesis against a real ``croupier run`` on 127.0.0.1 with a real store: every
operation of openapi.json, with generated requests, answers as the document says (no
server error, documented statuses, headers and bodies).

The default suite runs a short form; ``CROUPIER_SCHEMA_EXAMPLES`` sets the examples per
operation for a long one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from actors import ApiTokens
from bot.http.openapi import decimal_up_to
from limits import snowflake_id_max
from storage import open_store
from tests.support.server_process import ServerProcess, free_port

GUILD = 1
SNOWFLAKE = re.compile(decimal_up_to(snowflake_id_max))
EXAMPLES = int(os.environ.get("CROUPIER_SCHEMA_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real server and a write token of its guild: (base URL of the API, token)."""
    data = tmp_path_factory.mktemp("schema") / "data"

    async def make_token() -> str:
        async with open_store(data) as store:
            created = await ApiTokens(store, lambda: 1_800_000_000.0).create(
                GUILD, name="schemathesis", scope="write", created_by=7, key="setup"
            )
        return created.secret

    secret = trio.run(make_token)
    port = free_port()
    server = ServerProcess(
        data,
        {
            "CROUPIER_HTTP_ADDR": f"127.0.0.1:{port}",
            "CROUPIER_API_RATELIMIT_REQUESTS_PER_MINUTE": "6000000",
            "CROUPIER_API_RATELIMIT_BURST": "100000",
        },
    )
    server.start()
    try:
        trio.run(server.wait_ready)
        yield f"http://127.0.0.1:{port}/api/v1", secret
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_answers_as_documented(served: tuple[str, str], mode: str) -> None:
    """Generated requests to every operation (valid ones, and invalid ones in the
    negative mode) get answers the document allows: no server error, a documented
    status, the documented headers and body."""
    base, secret = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10
    headers = {"Authorization": f"Bearer {secret}"}
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=generation), own=st.booleans())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any, own: bool) -> None:
            # Most requests go to the token's own guild, so they reach the routes' logic
            # rather than stopping at the guild check (which the others exercise). A
            # guild the negative mode made invalid on purpose is left as it is.
            guild = (case.path_parameters or {}).get("guild")
            if own and isinstance(guild, str) and SNOWFLAKE.fullmatch(guild):
                case.path_parameters["guild"] = str(GUILD)
            case.call_and_validate(headers=headers)

        check()


def test_the_document_is_served_where_the_readme_says(served: tuple[str, str]) -> None:
    """The README's curl examples name the document's path and the server's port."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "/api/v1/openapi.json" in readme
