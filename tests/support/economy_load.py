"""An economy under a payment load, for the crash test.

Usage: ``economy_load.py DATA_DIR RUN``. Each start boots as the server does, which
delivers what the last run left in flight, prints ``ready <delivered>``, then runs
concurrent payers forever. A payer prints ``try <key> <from> <to> <amount>`` before it
asks to pay and, only once ``pay`` has returned,
``ack <key> <transfer id> <from> <to> <amount> <status>``. The key is also the payment's
reason, so the test can tie every debit in the store to a line printed here.
"""

from __future__ import annotations

import random
import sys

import trio

from actors import Economy, run_casino
from actors.errors import InsufficientFunds

G = 1
USERS = 8
PAYERS = 40
AMOUNT_MAX = 40
# Low enough that payments into rich wallets bounce and come back now and then.
MAX_BALANCE = 250


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def pay_forever(economy: Economy, run: int, payer: int) -> None:
    rng = random.Random(f"{run}:{payer}")
    for sequence in range(sys.maxsize):
        user, to = rng.sample(range(1, USERS + 1), 2)
        amount = rng.randint(1, AMOUNT_MAX)
        key = f"r{run}p{payer}s{sequence}"
        say(f"try {key} {user} {to} {amount}")
        try:
            outcome = await economy.pay(G, user, to, amount, key, reason=key)
        except InsufficientFunds:
            continue
        say(f"ack {key} {outcome.transfer_id} {user} {to} {amount} {outcome.status}")


async def main(data_dir: str, run: int) -> None:
    async with run_casino(data_dir) as running, trio.open_nursery() as nursery:
        assert running.boot is not None
        economy = running.casino.economy
        await economy.update_settings(G, {"max_balance": MAX_BALANCE, "bet_max": MAX_BALANCE})
        for user in range(1, USERS + 1):
            await economy.balance(G, user)
        say(f"ready {running.boot.transfers_delivered}")
        for payer in range(PAYERS):
            nursery.start_soon(pay_forever, economy, run, payer)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
