"""A writer under load, for the SIGKILL test: prints every key once its write is durable."""

from __future__ import annotations

import sys

import trio

from storage import open_store


async def main(data_dir: str, writers: int) -> None:
    async with open_store(data_dir) as store:
        db = store.db("history")
        out = sys.stdout

        async def write_forever(writer: int) -> None:
            sequence = 0
            while True:
                key = b"%08d:%012d" % (writer, sequence)
                await store.write(lambda txn, key=key: txn.put(key, key, db=db))
                out.write(key.decode() + "\n")
                out.flush()
                sequence += 1

        print("ready", flush=True)
        async with trio.open_nursery() as nursery:
            for writer in range(writers):
                nursery.start_soon(write_forever, writer)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
