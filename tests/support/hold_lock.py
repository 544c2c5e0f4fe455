"""Hold a data directory's instance lock until killed, for the two-process lock test."""

from __future__ import annotations

import sys
import time

from storage import InstanceLock

if __name__ == "__main__":
    lock = InstanceLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(600)
