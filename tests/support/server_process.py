"""Run the real ``croupier`` server as a subprocess for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import trio

CROUPIER = str(Path(sys.executable).with_name("croupier"))
READY_SECONDS_MAX = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fetch_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


class ServerProcess:
    """``croupier <command>`` on a data dir, with its output kept in a log file."""

    def __init__(self, data_dir: Path, env: dict[str, str], command: str = "run") -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "CROUPIER_DATA_DIR": str(data_dir),
            "CROUPIER_METRICS_ADDR": f"127.0.0.1:{self.port}",
            # `croupier run` serves the public HTTP app too; any free port keeps tests
            # that run at once from meeting on the default one.
            "CROUPIER_HTTP_ADDR": "127.0.0.1:0",
            **env,
        }
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                [CROUPIER, self.command],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self) -> dict[str, Any]:
        """Poll /readyz until it answers 200; fail with the server's log if it never does."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        with trio.move_on_after(READY_SECONDS_MAX):
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{self.output()}")
                status, body = await trio.to_thread.run_sync(fetch_json, url)
                if status == 200:
                    return dict(body)
                await trio.sleep(0.1)
        raise AssertionError(f"server not ready in {READY_SECONDS_MAX} s:\n{self.output()}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""
