"""The HTTP API at /api/v1, served for real over a running economy: who may call what,
idempotency keys, rate limits, validation, and that every change is audited."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors import AuditLog
from actors.api_tokens import token_hash
from limits import ApiLimits, RateLimit
from tests.economy_fixtures import T0
from tests.support.api_server import ADMIN, GUILD, ApiServer, api_server

BOB = 43
START = 100
_keys = itertools.count(1)


def new_key() -> str:
    return f"key-{next(_keys)}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    async with api_server(tmp_path) as running:
        yield running


async def balance(server: ApiServer, user: int = BOB) -> int:
    reply = await server.call("GET", f"/guilds/{GUILD}/users/{user}")
    assert reply.status_code == 200, reply.text
    figure: int = reply.json()["balance"]
    return figure


async def add_item(server: ApiServer, name: str = "Badge") -> int:
    reply = await server.call(
        "POST", f"/guilds/{GUILD}/items", key=new_key(), body={"name": name, "price": 5}
    )
    assert reply.status_code == 201, reply.text
    item_id: int = reply.json()["item_id"]
    return item_id


# Every route with a request it accepts: (method, path, body, is a change).
def every_route(item_id: int) -> list[tuple[str, str, Any, bool]]:
    user = f"/guilds/{GUILD}/users/{BOB}"
    items = f"/guilds/{GUILD}/items"
    return [
        ("GET", user, None, False),
        ("PATCH", user, {"amount": 5, "reason": "prize"}, True),
        ("PUT", user, {"balance": 50}, True),
        ("GET", f"/guilds/{GUILD}/users?limit=10&offset=0", None, False),
        ("GET", user + "/history?page=1", None, False),
        ("GET", user + "/inventory", None, False),
        ("GET", items, None, False),
        ("POST", items, {"name": "Hat", "price": 3}, True),
        ("PATCH", f"{items}/{item_id}", {"price": 7}, True),
        ("DELETE", f"{items}/{item_id}", None, True),
    ]


async def test_the_openapi_document_lists_exactly_the_routes_the_app_serves(
    server: ApiServer,
) -> None:
    """Every (path, method) of openapi.json is a route of the app and the other way round;
    the document needs no token."""
    reply = await server.call("GET", "/openapi.json", token=None)
    assert reply.status_code == 200
    document = reply.json()
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    served = {
        (route.path, method)
        for route in server.api.routes()
        if route.path != "/openapi.json"
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert documented == served
    assert len(documented) == 10


@pytest.mark.parametrize("credential", ["anonymous", "bad", "revoked", "read", "write", "other"])
async def test_authorization_matrix_over_every_route(server: ApiServer, credential: str) -> None:
    """Only a token of the guild passes: anonymous, made-up and revoked tokens get 401,
    another guild's token 403, a read token 403 on every change; a write token passes
    everywhere."""
    item_id = await add_item(server)
    expected_token = {"anonymous": None, "bad": "crp_" + "x" * 43}.get(credential, credential)
    for method, path, body, change in every_route(item_id):
        reply = await server.call(method, path, token=expected_token, key=new_key(), body=body)
        if credential in ("anonymous", "bad", "revoked"):
            wanted = 401
        elif credential == "other" or (credential == "read" and change):
            wanted = 403
        else:
            wanted = 201 if method == "POST" else 200
        assert reply.status_code == wanted, (credential, method, path, reply.text)
        code = reply.json().get("code")
        assert code == {401: "unauthorized", 403: "not_permitted"}.get(wanted, code)
    if credential not in ("read", "write"):
        assert await balance(server) == START


async def test_a_malformed_authorization_header_is_401(server: ApiServer) -> None:
    """Basic auth, an empty bearer, or a token with spaces are refused like no token."""
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "bearer " + "x" * 10):
        reply = await server.call(
            "GET", f"/guilds/{GUILD}/users/{BOB}", token=None, headers={"Authorization": header}
        )
        assert reply.status_code == 401, header


async def test_the_same_key_and_body_answer_once_and_move_money_once(server: ApiServer) -> None:
    """A repeated PATCH with the same Idempotency-Key and body gets the first answer,
    marked as replayed, and the money moved only once."""
    path, body = f"/guilds/{GUILD}/users/{BOB}", {"amount": 30, "reason": "prize"}

    first = await server.call("PATCH", path, key="pay-1", body=body)
    again = await server.call("PATCH", path, key="pay-1", body=body)

    assert first.status_code == again.status_code == 200
    assert (
        first.json()
        == again.json()
        == {
            "guild": str(GUILD),
            "user": str(BOB),
            "balance": START + 30,
            "delta": 30,
        }
    )
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert await balance(server) == START + 30


async def test_the_same_key_with_another_request_is_409_and_moves_nothing(
    server: ApiServer,
) -> None:
    """Another body, method or path under a used key is refused with id_reused."""
    path = f"/guilds/{GUILD}/users/{BOB}"
    assert (await server.call("PATCH", path, key="k", body={"amount": 30})).status_code == 200

    for method, other_path, body in (
        ("PATCH", path, {"amount": 31}),
        ("PUT", path, {"balance": 30}),
        ("PATCH", f"/guilds/{GUILD}/users/44", {"amount": 30}),
    ):
        reply = await server.call(method, other_path, key="k", body=body)
        assert reply.status_code == 409
        assert reply.json()["code"] == "id_reused"
    assert await balance(server) == START + 30
    assert await balance(server, 44) == START


async def test_concurrent_requests_with_one_key_move_money_once(server: ApiServer) -> None:
    """Ten PATCHes with one key at once: one change, ten identical answers."""
    path, body = f"/guilds/{GUILD}/users/{BOB}", {"amount": 7}
    answers: list[httpx.Response] = []

    async def send() -> None:
        answers.append(await server.call("PATCH", path, key="together", body=body))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(send)

    assert {reply.status_code for reply in answers} == {200}
    assert {reply.json()["balance"] for reply in answers} == {START + 7}
    assert await balance(server) == START + 7


async def test_a_refusal_is_kept_as_the_answer_of_its_key(server: ApiServer) -> None:
    """A typed refusal (here, not enough money) answers its key again even once the
    money is there: a retry never turns a refusal into a different outcome."""
    path = f"/guilds/{GUILD}/users/{BOB}"
    refused = await server.call("PATCH", path, key="take", body={"amount": -500})
    assert refused.status_code == 409 and refused.json()["code"] == "insufficient_funds"
    await server.call("PATCH", path, key=new_key(), body={"amount": 1_000})

    again = await server.call("PATCH", path, key="take", body={"amount": -500})

    assert again.status_code == 409 and again.json() == refused.json()
    assert await balance(server) == START + 1_000


async def test_every_change_needs_an_idempotency_key(server: ApiServer) -> None:
    """A change without the header, or with a key that is too long or not printable
    ASCII, is refused naming Idempotency-Key."""
    item_id = await add_item(server)
    for key in (None, "", "k" * 101, "a b", "clé"):
        for method, path, body, change in every_route(item_id):
            if not change:
                continue
            headers: dict[str, Any] = {} if key is None else {"Idempotency-Key": key.encode()}
            reply = await server.call(method, path, body=body, headers=headers)
            assert reply.status_code == 400, (key, method, path)
            assert reply.json()["field"] == "Idempotency-Key"
    assert await balance(server) == START


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "5"}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 10**40}, "amount"),
        ({"amount": 5, "reason": "a\u0000b"}, "reason"),
        ({"amount": 5, "reason": "x" * 201}, "reason"),
        ({"amount": 5, "tip": 1}, "tip"),
        ({}, "amount"),
        ({"amount": [[[[[1]]]]]}, "body"),
    ],
)
async def test_bad_values_are_refused_naming_the_field(
    server: ApiServer, body: dict[str, Any], field: str
) -> None:
    """Each bad value is a 400 invalid_input naming its field, and moves nothing."""
    reply = await server.call("PATCH", f"/guilds/{GUILD}/users/{BOB}", key=new_key(), body=body)

    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == field
    assert reply.json()["code"] in ("invalid_input", "invalid_amount")
    assert await balance(server) == START


async def test_bad_ids_bodies_and_queries_are_refused_naming_them(server: ApiServer) -> None:
    """Ids that are not snowflakes, bodies that are not JSON objects or too large, and
    out-of-range queries: 400 naming what was wrong."""
    cases: list[tuple[str, str, Any, str]] = [
        ("GET", f"/guilds/{GUILD}/users/abc", None, "user"),
        ("GET", f"/guilds/{GUILD}/users/0", None, "user"),
        ("GET", f"/guilds/{GUILD}/users/{2**64}", None, "user"),
        ("GET", "/guilds/²/users/1", None, "guild"),
        ("GET", f"/guilds/{GUILD}/users?limit=0", None, "limit"),
        ("GET", f"/guilds/{GUILD}/users?limit=101", None, "limit"),
        ("GET", f"/guilds/{GUILD}/users?offset=-1", None, "offset"),
        ("GET", f"/guilds/{GUILD}/users/{BOB}/history?page=x", None, "page"),
        ("GET", f"/guilds/{GUILD}/items?include_retired=yes", None, "include_retired"),
        ("PATCH", f"/guilds/{GUILD}/items/abc", {"price": 1}, "item"),
        ("POST", f"/guilds/{GUILD}/items", {"name": "", "price": 1}, "name"),
        ("POST", f"/guilds/{GUILD}/items", {"name": "Hat", "price": -1}, "price"),
        ("POST", f"/guilds/{GUILD}/items", {"name": "Hat", "price": 1, "role_id": "x"}, "role_id"),
        ("PATCH", f"/guilds/{GUILD}/items/1", {}, "body"),
    ]
    for method, path, body, field in cases:
        reply = await server.call(method, path, key=new_key(), body=body)
        assert reply.status_code == 400, (path, reply.text)
        assert reply.json()["field"] == field, (path, reply.text)
    for raw in (b"[1]", b"not json", b"\xff\xfe", b'{"amount": NaN}', b"{" * 5000):
        reply = await server.client.request(
            "PATCH",
            f"{server.base}/guilds/{GUILD}/users/{BOB}",
            content=raw,
            headers={
                "Authorization": f"Bearer {server.tokens['write']}",
                "Idempotency-Key": new_key(),
            },
        )
        assert reply.status_code == 400 and reply.json()["field"] == "body", raw[:20]
    too_big = {"amount": 5, "reason": "x" * 20_000}
    reply = await server.call("PATCH", f"/guilds/{GUILD}/users/{BOB}", key=new_key(), body=too_big)
    assert reply.status_code == 400 and reply.json()["field"] == "body"


async def test_balances_never_go_below_zero_and_put_sets_them(server: ApiServer) -> None:
    """Removing more than a member has is refused; PUT sets the balance exactly."""
    path = f"/guilds/{GUILD}/users/{BOB}"
    too_much = await server.call("PATCH", path, key=new_key(), body={"amount": -(START + 1)})
    assert too_much.status_code == 409 and too_much.json()["code"] == "insufficient_funds"
    emptied = await server.call("PATCH", path, key=new_key(), body={"amount": -START})
    assert emptied.json()["balance"] == 0
    set_to = await server.call("PUT", path, key=new_key(), body={"balance": 12, "reason": "fix"})
    assert set_to.json() == {"guild": str(GUILD), "user": str(BOB), "balance": 12, "delta": 12}
    assert await balance(server) == 12
    assert server.eco.check().ok


async def test_rank_leaderboard_history_inventory_and_items_read_back(server: ApiServer) -> None:
    """The read routes show what the changes did, in the documented shapes."""
    for user, amount in ((BOB, 50), (44, 10), (45, 500)):
        await server.call(
            "PATCH", f"/guilds/{GUILD}/users/{user}", key=new_key(), body={"amount": amount}
        )
    me = (await server.call("GET", f"/guilds/{GUILD}/users/{BOB}")).json()
    assert (me["balance"], me["rank"]) == (START + 50, 2)
    # A member seen for the first time opens a wallet with the starting balance.
    newcomer = (await server.call("GET", f"/guilds/{GUILD}/users/99")).json()
    assert (newcomer["balance"], newcomer["rank"]) == (START, 4)
    board = (await server.call("GET", f"/guilds/{GUILD}/users?limit=2&offset=1")).json()
    assert [(row["rank"], row["user"]) for row in board["users"]] == [(2, str(BOB)), (3, "44")]
    assert board["has_more"] is True
    tail = (await server.call("GET", f"/guilds/{GUILD}/users?limit=2&offset=2")).json()
    assert [row["rank"] for row in tail["users"]] == [3, 4] and tail["has_more"] is False
    history = (await server.call("GET", f"/guilds/{GUILD}/users/{BOB}/history")).json()
    assert [entry["amount"] for entry in history["entries"]][:1] == [50]
    item_id = await add_item(server, "Pin")
    await server.call("DELETE", f"/guilds/{GUILD}/items/{item_id}", key=new_key())
    assert (await server.call("GET", f"/guilds/{GUILD}/items")).json()["items"] == []
    listed = (await server.call("GET", f"/guilds/{GUILD}/items?include_retired=true")).json()
    assert [(i["name"], i["retired"]) for i in listed["items"]] == [("Pin", True)]
    inventory = (await server.call("GET", f"/guilds/{GUILD}/users/{BOB}/inventory")).json()
    assert inventory == {"guild": str(GUILD), "user": str(BOB), "items": []}
    missing = await server.call(
        "PATCH", f"/guilds/{GUILD}/items/99", key=new_key(), body={"price": 1}
    )
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_api_changes_are_in_the_audit_log_once(server: ApiServer) -> None:
    """Each change is audited with the token as its actor, once however often repeated."""
    path = f"/guilds/{GUILD}/users/{BOB}"
    for _ in range(3):
        await server.call("PATCH", path, key="audited", body={"amount": 9, "reason": "gift"})
    item_id = await add_item(server, "Cap")
    await server.call("PATCH", f"/guilds/{GUILD}/items/{item_id}", key=new_key(), body={"price": 8})

    entries = AuditLog(server.eco.store, server.eco.clock).page(GUILD).entries
    token_id = server.api.tokens.authenticate(server.tokens["write"])
    assert token_id is not None
    assert [
        (e.action, e.before, e.after.get("balance", e.after.get("price"))) for e in entries
    ] == [
        ("item.edit", entries[0].before, 8),
        ("item.create", {}, 5),
        ("money.add", {"balance": START}, START + 9),
    ]
    assert {(e.actor, e.via) for e in entries} == {(f"token:{token_id.token_id}", "api")}
    assert entries[2].reason == "gift" and entries[2].at == T0


async def test_rate_limit_headers_count_down_and_429_says_when(tmp_path: Path) -> None:
    """Each answer shows the token's limit, what is left and when it is full; past the
    burst, 429 with retry_after and Retry-After; once time passes, requests go through."""
    now = [0.0]
    limits = ApiLimits(rate=RateLimit(refill_per_second=0.5, burst_commands=3))
    async with api_server(tmp_path, limits=limits, clock=lambda: now[0]) as server:
        path = f"/guilds/{GUILD}/users/{BOB}"
        seen = []
        for _ in range(3):
            reply = await server.call("GET", path)
            assert reply.status_code == 200
            seen.append(
                (
                    reply.headers["x-ratelimit-limit"],
                    reply.headers["x-ratelimit-remaining"],
                    reply.headers["x-ratelimit-reset"],
                )
            )
        throttled = await server.call("PATCH", path, key="late", body={"amount": 1})
        other = await server.call("GET", path, token="read")
        now[0] += 4.0
        later = await server.call("GET", path)
        retried = await server.call("PATCH", path, key="late", body={"amount": 1})

    assert seen == [("3", "2", "2"), ("3", "1", "4"), ("3", "0", "6")]
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "rate_limited"
    assert throttled.json()["retry_after"] == 2 == int(throttled.headers["retry-after"])
    assert throttled.headers["x-ratelimit-remaining"] == "0"
    assert other.status_code == 200, "each token has its own bucket"
    assert later.status_code == 200
    assert retried.status_code == 200, "a 429 is not stored as the key's answer"
    assert retried.json()["balance"] == START + 1


async def test_a_new_item_repeated_is_one_item(server: ApiServer) -> None:
    """POST with one key twice creates one item and answers 201 with it both times."""
    body = {"name": "Crown", "price": 100, "stock": 2, "role_id": "555", "description": "shiny"}
    first = await server.call("POST", f"/guilds/{GUILD}/items", key="crown", body=body)
    again = await server.call("POST", f"/guilds/{GUILD}/items", key="crown", body=body)

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["role_id"] == "555" and first.json()["stock"] == 2
    listed = (await server.call("GET", f"/guilds/{GUILD}/items")).json()["items"]
    assert [item["name"] for item in listed] == ["Crown"]
    duplicate = await server.call("POST", f"/guilds/{GUILD}/items", key="crown-2", body=body)
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_item"
    assert ADMIN == 7


async def test_unknown_query_parameters_are_refused_naming_them(server: ApiServer) -> None:
    """A query parameter a route does not take is a 400 naming it, not silently ignored."""
    for path, name in (
        (f"/guilds/{GUILD}/users/{BOB}?verbose=1", "verbose"),
        (f"/guilds/{GUILD}/users?page=2", "page"),
        (f"/guilds/{GUILD}/users/{BOB}/history?=3", "query"),
    ):
        reply = await server.call("GET", path)
        assert reply.status_code == 400, path
        assert reply.json()["field"] == name


async def test_a_record_that_cannot_be_read_costs_one_request(server: ApiServer) -> None:
    """A token record planted unreadable makes its request a JSON 500; the API serves on."""
    planted = "crp_" + "p" * 43
    db = server.eco.store.db("api_tokens")

    def plant(txn: Any) -> None:
        txn.put(token_hash(planted), b"\xc1 not msgpack", db=db)

    await server.eco.store.write(plant)

    broken = await server.call("GET", f"/guilds/{GUILD}/users/{BOB}", token=planted)

    assert broken.status_code == 500 and broken.json()["code"] == "internal"
    assert await balance(server) == START
