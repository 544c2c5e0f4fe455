"""``croupier migrate`` and ``croupier check``: operator commands on a stopped server's
store (check also works on a running server's store, read-only)."""

from __future__ import annotations

import json

import trio

from actors import IntegrityReport, check_store
from bot.config import Config
from storage import StorageError, env_path, open_store, open_store_readonly


def run_migrate(config: Config) -> int:
    """Migrate an existing store. A data dir without one is refused rather than given a
    new empty store: a mistyped path must not look like a successful migration."""
    path = env_path(config.data_dir)
    if not (path / "data.mdb").exists():
        raise StorageError(f"no LMDB store at {path}")

    async def migrate() -> list[str]:
        async with open_store(config.data_dir) as store:
            return store.migrations_applied

    applied = trio.run(migrate)
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        print("store is up to date; nothing to migrate")
    return 0


def run_check(config: Config, *, as_json: bool) -> int:
    """Check the store read-only (safe beside a running server: LMDB readers never block
    the writer) and exit 1 if anything is violated."""
    with open_store_readonly(env_path(config.data_dir)) as store:
        report = check_store(store)
    print(report_json(report) if as_json else report.text())
    return 0 if report.ok else 1


def report_json(report: IntegrityReport) -> str:
    return json.dumps(
        {
            "ok": report.ok,
            "started_at": report.started_at,
            "duration_seconds": report.duration_seconds,
            "counts": report.counts,
            "figures": report.figures,
            "parked": report.parked,
            "violations": [{"check": v.check, "detail": v.detail} for v in report.violations],
        },
        sort_keys=True,
    )
