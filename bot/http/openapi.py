"""The OpenAPI 3.0 document of the HTTP API (``/api/v1/openapi.json``), written by hand
from the same limits the routes enforce, so its bounds are the routes' bounds.

``bot.http.api`` serves it; the tests run schemathesis against a real server with it,
and check that it lists exactly the routes the app has.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from bot.inputs import refused_in_text
from limits import Limits, integer_option_max, integer_option_min, snowflake_id_max

if TYPE_CHECKING:
    from limits import ApiLimits

_KEY_PATTERN = "^[!-~]{1,100}$"


def decimal_up_to(maximum: int) -> str:
    """A pattern matching exactly the decimal numbers 1 to ``maximum``, written without
    leading zeros (as the routes require ids to be)."""
    digits = str(maximum)
    count = len(digits)
    choices = []
    if count > 1:
        choices.append(f"[1-9][0-9]{{0,{count - 2}}}" if count > 2 else "[1-9]")
    for index, digit in enumerate(digits):
        low, top = (1 if index == 0 else 0), int(digit) - 1
        if top < low:
            continue
        rest = count - index - 1
        choices.append(
            digits[:index]
            + (f"[{low}-{top}]" if top > low else str(low))
            + (f"[0-9]{{{rest}}}" if rest else "")
        )
    choices.append(digits)
    return "^(" + "|".join(choices) + ")$"


@functools.cache
def _refused_class() -> str:
    """The characters ``clean_text`` refuses, as the inside of a regex class."""
    ranges: list[list[int]] = []
    # Only the Basic Multilingual Plane: the pattern engines schemathesis uses refuse a
    # class with ranges past it. The refused characters past it (tags, a few format
    # characters of historic scripts) are refused by the routes all the same. Surrogates
    # cannot travel in UTF-8 JSON at all, so they need no mention.
    for point in range(0x10000):
        if refused_in_text(chr(point)) and not 0xD800 <= point <= 0xDFFF:
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(
        _escape(low) if low == high else f"{_escape(low)}-{_escape(high)}" for low, high in ranges
    )


def _escape(point: int) -> str:
    # Characters are written as themselves (the JSON text escapes them): regex engines
    # differ in the escapes they read, not in literal characters. None of them is a
    # character with a meaning inside a class.
    return chr(point)


def _text(chars_max: int, *, chars_min: int = 0) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": chars_min,
        "maxLength": chars_max,
        "pattern": f"^[^{_refused_class()}]*$",
        "description": "text without control, format or invisible characters",
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _id(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": decimal_up_to(snowflake_id_max),
        "description": f"{description}: a Discord id, 1 to {snowflake_id_max}, as digits",
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _responses(ok: int, schema: str, *, write: bool) -> dict[str, Any]:
    errors = ["400", "401", "403", "404", "429", "503"]
    if write:
        errors.insert(4, "409")
    responses: dict[str, Any] = {
        str(ok): {
            "description": "the answer",
            "headers": _rate_headers(),
            "content": {"application/json": {"schema": _ref(schema)}},
        }
    }
    for status in errors:
        responses[status] = {"$ref": f"#/components/responses/E{status}"}
    return responses


def _rate_headers() -> dict[str, Any]:
    whole = {"schema": {"type": "string", "pattern": "^[0-9]+$"}}
    return {
        "X-RateLimit-Limit": {**whole, "description": "the token's burst"},
        "X-RateLimit-Remaining": {**whole, "description": "requests left now"},
        "X-RateLimit-Reset": {**whole, "description": "seconds until the bucket is full"},
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def openapi_document(limits: Limits, api: ApiLimits) -> dict[str, Any]:
    """The document for an economy with ``limits`` and an API with ``api``."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Croupier API",
            "version": "1",
            "description": (
                "Balances, the leaderboard, history, inventories and the shop of one "
                "Discord server. Tokens come from /api-token-create; every change needs "
                "an Idempotency-Key."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {**_member_paths(limits, api), **_shop_paths()},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**_answer_schemas(), **_request_schemas(limits)},
            "responses": _error_responses(),
        },
    }


def _path_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _guild() -> dict[str, Any]:
    return _path_parameter("guild", _id("the server"))


def _user() -> dict[str, Any]:
    return _path_parameter("user", _id("the member"))


def _key() -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": "names this change: a repeat with the same body gets the first answer",
        "schema": {"type": "string", "pattern": _KEY_PATTERN},
    }


def _query(name: str, minimum: int, maximum: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum},
    }


def _member_paths(limits: Limits, api: ApiLimits) -> dict[str, Any]:
    """The routes under ``/guilds/{guild}/users``."""
    guild, user, key = _guild(), _user(), _key()
    pages = limits.leaderboard_pages_max * limits.leaderboard_page_entries_max
    users = "/guilds/{guild}/users"
    return {
        users + "/{user}": {
            "parameters": [guild, user],
            "get": _op(
                "getMember", "a member's balance and rank", _responses(200, "Member", write=False)
            ),
            "patch": {
                **_op(
                    "adjustBalance",
                    "add to or remove from a balance",
                    _responses(200, "Adjusted", write=True),
                ),
                "parameters": [key],
                "requestBody": _body("AmountChange"),
            },
            "put": {
                **_op("setBalance", "set a balance", _responses(200, "Adjusted", write=True)),
                "parameters": [key],
                "requestBody": _body("BalanceChange"),
            },
        },
        users: {
            "parameters": [guild],
            "get": {
                **_op(
                    "leaderboard",
                    "the richest members",
                    _responses(200, "Leaderboard", write=False),
                ),
                "parameters": [
                    _query("limit", 1, api.page_entries_max),
                    _query("offset", 0, pages - 1),
                ],
            },
        },
        users + "/{user}/history": {
            "parameters": [guild, user],
            "get": {
                **_op(
                    "history",
                    "a member's transfers, newest first",
                    _responses(200, "History", write=False),
                ),
                "parameters": [_query("page", 1, integer_option_max)],
            },
        },
        users + "/{user}/inventory": {
            "parameters": [guild, user],
            "get": _op(
                "inventory", "the items a member owns", _responses(200, "Inventory", write=False)
            ),
        },
    }


def _shop_paths() -> dict[str, Any]:
    """The routes under ``/guilds/{guild}/items``."""
    guild, key = _guild(), _key()
    item = _path_parameter(
        "item",
        {
            "type": "string",
            "pattern": decimal_up_to(integer_option_max),
            "description": "an item id",
        },
    )
    items = "/guilds/{guild}/items"
    return {
        items: {
            "parameters": [guild],
            "get": {
                **_op("listItems", "the shop's items", _responses(200, "Items", write=False)),
                "parameters": [
                    {
                        "name": "include_retired",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["true", "false"]},
                    }
                ],
            },
            "post": {
                **_op("createItem", "put an item up for sale", _responses(201, "Item", write=True)),
                "parameters": [key],
                "requestBody": _body("NewItem"),
            },
        },
        items + "/{item}": {
            "parameters": [guild, item],
            "patch": {
                **_op("editItem", "change an item", _responses(200, "Item", write=True)),
                "parameters": [key],
                "requestBody": _body("ItemChange"),
            },
            "delete": {
                **_op(
                    "retireItem",
                    "stop selling an item (owners keep theirs)",
                    _responses(200, "Item", write=True),
                ),
                "parameters": [key],
            },
        },
    }


def _answer_schemas() -> dict[str, Any]:
    """The schemas of the routes' answers, errors included."""
    return {
        **_error_schema(),
        **_member_answer_schemas(),
        **_shop_answer_schemas(),
    }


def _error_schema() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the refused field"},
                "retry_after": {"type": "integer", "description": "seconds, with 429"},
            },
        },
    }


def _member_answer_schemas() -> dict[str, Any]:
    return {
        "Member": _object(
            guild=_id("the server"),
            user=_id("the member"),
            balance={"type": "integer", "minimum": 0},
            rank=_nullable({"type": "integer", "minimum": 1}),
        ),
        "Adjusted": _object(
            guild=_id("the server"),
            user=_id("the member"),
            balance={"type": "integer", "minimum": 0},
            delta={"type": "integer"},
        ),
        "Leaderboard": _object(
            guild=_id("the server"),
            offset={"type": "integer", "minimum": 0},
            limit={"type": "integer", "minimum": 1},
            users={
                "type": "array",
                "items": _object(
                    rank={"type": "integer", "minimum": 1},
                    user=_id("the member"),
                    balance={"type": "integer", "minimum": 0},
                ),
            },
            has_more={"type": "boolean"},
        ),
        "History": _object(
            guild=_id("the server"),
            user=_id("the member"),
            page={"type": "integer", "minimum": 1},
            pages={"type": "integer", "minimum": 1},
            entries={
                "type": "array",
                "items": _object(
                    transfer_id={"type": "string"},
                    amount={"type": "integer"},
                    counterparty={"type": "string"},
                    reason={"type": "string"},
                    at={"type": "number"},
                    balance={"type": "integer", "minimum": 0},
                ),
            },
        ),
        "Inventory": _object(
            guild=_id("the server"),
            user=_id("the member"),
            items={
                "type": "array",
                "items": _object(
                    item_id={"type": "integer", "minimum": 1},
                    name={"type": "string"},
                    count={"type": "integer", "minimum": 0},
                    retired={"type": "boolean"},
                ),
            },
        ),
    }


def _shop_answer_schemas() -> dict[str, Any]:
    return {
        "Item": _object(
            item_id={"type": "integer", "minimum": 1},
            name={"type": "string"},
            price={"type": "integer", "minimum": 0},
            stock=_nullable({"type": "integer", "minimum": 0}),
            sell_price=_nullable({"type": "integer", "minimum": 0}),
            role_id=_nullable(_id("a role")),
            description={"type": "string"},
            retired={"type": "boolean"},
        ),
        "Items": _object(guild=_id("the server"), items={"type": "array", "items": _ref("Item")}),
    }


def _request_schemas(limits: Limits) -> dict[str, Any]:
    """The schemas of the bodies the routes take, bounded as the routes bound them."""
    price = {"type": "integer", "minimum": 0, "maximum": limits.item_price_coins_max}
    count = {"type": "integer", "minimum": 0, "maximum": limits.inventory_item_count_max}
    reason = _text(limits.reason_chars_max)
    # A name holds a character other than a digit, '#' or a space: a name of digits
    # alone would read as an item id.
    plain = _refused_class()
    name = {
        **_text(limits.item_name_chars_max, chars_min=1),
        "pattern": f"^[^{plain}]*[^{plain}0-9#\\s][^{plain}]*$",
    }
    role = {
        "anyOf": [
            _id("a role granted on use"),
            {"type": "integer", "minimum": 1, "maximum": snowflake_id_max},
        ],
        "nullable": True,
    }
    item_fields: dict[str, Any] = {
        "name": name,
        "price": price,
        "stock": _nullable(count),
        "sell_price": _nullable(price),
        "role_id": role,
        "description": reason,
    }
    return {
        "AmountChange": _request(
            ["amount"],
            amount={
                "type": "integer",
                "minimum": integer_option_min,
                "maximum": integer_option_max,
                "not": {"enum": [0]},
                "description": "positive adds, negative removes (never below zero)",
            },
            reason=reason,
        ),
        "BalanceChange": _request(
            ["balance"],
            balance={"type": "integer", "minimum": 0, "maximum": integer_option_max},
            reason=reason,
        ),
        "NewItem": _request(["name", "price"], **item_fields),
        "ItemChange": {**_request([], **item_fields), "minProperties": 1},
    }


def _error_responses() -> dict[str, Any]:
    """The error answers every route refers to, by status."""
    error_statuses = {
        "400": "invalid input (the field is named)",
        "401": "no token, or a revoked or unknown one",
        "403": "the token is for another server, or read-only on a change",
        "404": "no such member, item or path",
        "409": (
            "a refusal by the server's state or settings: id_reused, insufficient_funds, "
            "balance_too_high, invalid_amount (over the server's max_balance), duplicate_item"
        ),
        "429": "rate limited (retry_after seconds)",
        "503": "busy: the outcome is unknown; repeat with the same Idempotency-Key",
    }
    return {
        f"E{status}": {
            "description": text,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status, text in error_statuses.items()
    }


def _op(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"operationId": operation_id, "summary": summary, "responses": responses}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def _request(required: list[str], **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        # OpenAPI 3.0 refuses an empty ``required`` list.
        schema["required"] = required
    return schema
