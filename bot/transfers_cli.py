"""``croupier transfers``: transfers parked because they could not be delivered.

``list-parked`` reads the store read-only, so it is safe beside a running server. It
lists parked games (whose stake ``refund`` returns to their player) and timers too.

``refund ID`` moves money, so it runs the same domain code as the server: it opens the
store under the instance lock, starts the actor system (nothing else: no deliveries, game
recovery or timers) and asks the sender's wallet, which credits the coins and marks the
parked record refunded in one commit. While a server holds the lock it refuses and says
to use the admin command ``/transfer-refund`` in that server instead: the store keeps one
writing process, and the refund is still made exactly once.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from actors import PARKED_KINDS, ParkedRecord, list_parked, run_casino
from actors.errors import CroupierError
from actors.wallet import ParkedRefundResult
from bot.config import Config
from bot.dispatch import REFUSALS, user_error
from storage import InstanceLockedError, StorageError, env_path, open_store_readonly


def add_transfers_parser(commands: Any) -> None:
    transfers = commands.add_parser("transfers", help="list and refund parked transfers")
    actions = transfers.add_subparsers(dest="transfers_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list-parked", help="list transfers (and games, timers) parked after failing"
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    refund = actions.add_parser(
        "refund",
        help="return a parked transfer's coins to its sender, or a parked game's stake to "
        "its player (once; server stopped)",
    )
    refund.add_argument("id", help="the parked transfer's id, as list-parked shows it")
    refund.add_argument("--json", action="store_true", help="print the result as JSON")


def run_transfers_command(args: argparse.Namespace, config: Config) -> int:
    if args.transfers_command == "list-parked":
        return _list_parked(config, as_json=args.json)
    assert args.transfers_command == "refund", args.transfers_command
    return _refund(config, args.id, as_json=args.json)


def parked_json(record: ParkedRecord) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "id": record.ident,
        "scope": record.scope,
        "amount": record.amount,
        "source": record.source,
        "target": record.target,
        "attempts": record.attempts,
        "error": record.error,
        "parked_at": record.parked_at,
        "refunded": record.refunded,
        "refunded_at": record.refunded_at or None,
        "refunded_by": record.refunded_by or None,
    }


def _list_parked(config: Config, *, as_json: bool) -> int:
    # Parked games hold their player's stake and are refunded the same way; parked
    # timers hold no coins and are listed so that nothing set aside goes unseen.
    with open_store_readonly(env_path(config.data_dir)) as store:
        records = [r for kind in PARKED_KINDS for r in list_parked(store, kind)]
    if as_json:
        print(json.dumps([parked_json(r) for r in records], sort_keys=True))
        return 0
    if not records:
        print("no parked records")
    for r in records:
        state = f"refunded by {r.refunded_by}" if r.refunded else "waiting for a refund"
        if r.kind == "timer":
            state = "holds no coins"
        print(
            f"{r.kind} {r.ident}  scope {r.scope}  {r.amount} coins  {r.source or '?'} -> "
            f"{r.target or '?'}  {r.attempts} attempts  {state}  last error: {r.error}"
        )
    return 0


def _refund(config: Config, transfer_id: str, *, as_json: bool) -> int:
    if not (env_path(config.data_dir) / "data.mdb").exists():
        raise StorageError(f"no LMDB store at {env_path(config.data_dir)}")
    try:
        result = trio.run(_refund_in_casino, config, transfer_id)
    except InstanceLockedError as exc:
        print(
            f"croupier: {exc}; a running server refunds with the admin command "
            "/transfer-refund, or stop it and run this again",
            file=sys.stderr,
        )
        return 1
    if isinstance(result, CroupierError):
        if as_json:
            error = {"code": result.code, "message": result.message}
            print(json.dumps({"ok": False, "error": error}, sort_keys=True))
        else:
            print(f"croupier: {result.message}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"ok": True, "result": vars(result)}, sort_keys=True))
    else:
        print(
            f"refunded {result.amount} coins of {result.transfer_id} to user {result.user} "
            f"(balance now {result.balance})"
        )
    return 0


async def _refund_in_casino(config: Config, transfer_id: str) -> ParkedRefundResult | CroupierError:
    """The refund, or the typed refusal (returned, not raised: raised inside the nurseries
    it would arrive wrapped in an exception group)."""
    global_scope = config.economy_scope == "global"
    async with run_casino(config.data_dir, global_scope=global_scope, boot=False) as running:
        economy = running.casino.economy
        try:
            return await economy.refund_parked(transfer_id, by="croupier transfers refund")
        except REFUSALS as refusal:
            return user_error(refusal)
