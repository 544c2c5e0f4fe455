"""The daily schedule: back up, verify and prune at a local time of day, forever.

It also keeps ``croupier_backup_last_success_timestamp_seconds`` current. Days are
counted on the wall clock in local time (DST changes included), while waiting uses
trio's clock, so tests drive a whole schedule with the mock clock.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import NoReturn, TypeVar

import trio

from limits import backup_clock_recheck_seconds
from metrics import Metrics, log_event
from storage.backup.create import create_backup
from storage.backup.manifest import newest_verified, record_verification
from storage.backup.model import DAY_SECONDS, BackupError, IntegrityCheck, logger
from storage.backup.retention import prune_backups
from storage.backup.verify import verify_backup
from storage.store import Store

T = TypeVar("T")


def local_utc_offset_seconds(when: float) -> float:
    """This machine's UTC offset at unix time ``when`` (it changes with DST)."""
    offset = datetime.fromtimestamp(when, UTC).astimezone().utcoffset()
    assert offset is not None
    return offset.total_seconds()


def next_backup_time(now: float, at: str, local_offset_seconds: Callable[[float], float]) -> float:
    """The first unix time after ``now`` whose local time of day is ``at`` ("HH:MM")."""
    hour, _, minute = at.partition(":")
    seconds_into_day = int(hour) * 3600 + int(minute) * 60
    assert 0 <= seconds_into_day < DAY_SECONDS, at
    offset = local_offset_seconds(now)
    local_now = now + offset
    slot = math.floor(local_now / DAY_SECONDS) * DAY_SECONDS + seconds_into_day
    if slot <= local_now:
        slot += DAY_SECONDS
    # A DST change before the slot shifts the offset, so the moment must be one whose
    # own offset makes its local time the slot.
    first_guess = slot - offset
    second_guess = slot - local_offset_seconds(first_guess)
    for moment in (first_guess, second_guess):
        if moment > now and moment + local_offset_seconds(moment) == slot:
            return moment
    # The clocks jumped over the slot that day; run when they would have shown it had
    # they not jumped, which is the first guess.
    return first_guess


async def run_backup_schedule(
    store: Store,
    backup_dir: str | os.PathLike[str],
    *,
    at: str,
    keep_days: int,
    metrics: Metrics,
    integrity: IntegrityCheck,
    wall_clock: Callable[[], float] = time.time,
    local_offset_seconds: Callable[[float], float] = local_utc_offset_seconds,
    in_thread: bool = True,
    first_if_none: bool = False,
) -> NoReturn:
    """Back up, verify and prune every day at local time ``at``, forever.

    A failure is logged and the next day's slot tries again; it never ends the task.
    Time is read from ``wall_clock`` and waited for with ``trio.sleep``, so a test drives
    it with trio's mock clock and ``wall_clock`` derived from ``trio.current_time()``;
    ``in_thread=False`` runs the copy on the trio thread, where the mock clock cannot
    jump while it runs. With ``first_if_none``, a store with no verified backup gets one
    at once.
    """
    directory = Path(backup_dir)
    try:
        newest = await _call(in_thread, partial(newest_verified, directory))
    except BackupError:
        log_event(logger, "backup_manifest_unreadable", level=logging.ERROR, exc_info=True)
    else:
        if newest is not None:
            metrics.backup_last_success.set(newest.created_at)
        elif first_if_none:
            # A new installation should not wait until the next slot for its first copy.
            await _scheduled_backup(
                store, directory, keep_days, metrics, integrity, wall_clock, in_thread
            )
    while True:
        slot = next_backup_time(wall_clock(), at, local_offset_seconds)
        while (remaining := slot - wall_clock()) > 0:
            await trio.sleep(min(remaining, backup_clock_recheck_seconds))
        await _scheduled_backup(
            store, directory, keep_days, metrics, integrity, wall_clock, in_thread
        )


async def _scheduled_backup(
    store: Store,
    directory: Path,
    keep_days: int,
    metrics: Metrics,
    integrity: IntegrityCheck,
    wall_clock: Callable[[], float],
    in_thread: bool,
) -> None:
    try:
        entry = await _call(in_thread, partial(create_backup, store, directory, now=wall_clock()))
        result = await _call(in_thread, partial(verify_backup, entry, integrity=integrity))
        await _call(in_thread, partial(record_verification, directory, result, now=wall_clock()))
        if result.ok:
            metrics.backup_last_success.set(entry.created_at)
    except Exception:
        log_event(logger, "backup_failed", level=logging.ERROR, exc_info=True)
    try:
        await _call(in_thread, partial(prune_backups, directory, keep_days, wall_clock()))
    except Exception:
        log_event(logger, "backup_prune_failed", level=logging.ERROR, exc_info=True)


async def _call(in_thread: bool, fn: Callable[[], T]) -> T:
    if in_thread:
        return await trio.to_thread.run_sync(fn)
    return fn()
