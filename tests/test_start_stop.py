"""Start and stop: signals, /quit and end of input end the console cleanly, and a
scripting console runs beside a server."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
import trio
import trio.testing

from bot.console import run_console
from metrics import new_metrics
from storage import InstanceLock
from tests.support.server_process import CROUPIER, READY_SECONDS_MAX, fetch_json, free_port
from tests.toy_commands import ToyBank

ROOT = Path(__file__).resolve().parent.parent
EXIT_SECONDS_MAX = 30


class Croupier:
    """``croupier COMMAND`` as a subprocess on ``data_dir``, its stderr kept in a file."""

    def __init__(
        self,
        tmp_path: Path,
        command: list[str],
        *,
        stdin: int | IO[Any] | None = subprocess.PIPE,
        env: dict[str, str] | None = None,
        close_stdin: bool = False,
    ) -> None:
        self.port = free_port()
        self.data_dir = tmp_path / "data"
        self.errors = tmp_path / f"stderr-{self.port}.log"
        environ = {
            key: value
            for key, value in os.environ.items()
            if key not in ("CROUPIER_DATA_DIR", "CROUPIER_METRICS_ADDR", "CROUPIER_CONFIG")
        }
        environ |= {
            "CROUPIER_DATA_DIR": str(self.data_dir),
            "CROUPIER_METRICS_ADDR": f"127.0.0.1:{self.port}",
            # `croupier run` serves the public HTTP app too; any free port keeps runs
            # at once (here and in other suites) from meeting on the default one.
            "CROUPIER_HTTP_ADDR": "127.0.0.1:0",
            **(env or {}),
        }
        with open(self.errors, "wb") as errors:
            self.process = subprocess.Popen(
                [CROUPIER, *command],
                env=environ,
                cwd=tmp_path,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=errors,
                # A service manager may start a server with no standard input at all.
                preexec_fn=(lambda: os.close(0)) if close_stdin else None,
            )

    def stderr(self) -> str:
        return self.errors.read_text(errors="replace")

    async def wait_ready(self) -> None:
        url = f"http://127.0.0.1:{self.port}/readyz"
        with trio.move_on_after(READY_SECONDS_MAX):
            while self.process.poll() is None:
                status, _ = await trio.to_thread.run_sync(fetch_json, url)
                if status == 200:
                    return
                await trio.sleep(0.05)
        raise AssertionError(f"not ready (exit {self.process.poll()}):\n{self.stderr()}")

    async def wait_logged(self, event: str) -> None:
        with trio.move_on_after(READY_SECONDS_MAX):
            while f"event={event}" not in self.stderr():
                await trio.sleep(0.05)
            return
        raise AssertionError(f"never logged {event}:\n{self.stderr()}")

    def wait(self) -> int:
        return self.process.wait(timeout=EXIT_SECONDS_MAX)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=EXIT_SECONDS_MAX)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@contextmanager
def croupier(tmp_path: Path, *command: str, **options: Any) -> Iterator[Croupier]:
    running = Croupier(tmp_path, list(command), **options)
    try:
        yield running
    finally:
        running.stop()


def assert_clean_exit(running: Croupier) -> None:
    """Exit 0, no traceback, and the instance lock free for the next process."""
    code = running.wait()
    errors = running.stderr()
    assert code == 0 and "Traceback" not in errors, errors
    lock = InstanceLock(running.data_dir)
    lock.acquire()
    lock.release()


@pytest.mark.parametrize("command", ["console", "run"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_at_the_console_prompt_stops_cleanly(
    tmp_path: Path, command: str, signum: signal.Signals
) -> None:
    """SIGINT or SIGTERM while the console waits for input: exit 0, no traceback, lock free."""
    with croupier(tmp_path, command) as running:
        await running.wait_ready()
        await running.wait_logged("console_ready")
        running.process.send_signal(signum)
        assert_clean_exit(running)
        assert "event=stopped lock=released" in running.stderr()
    # The next process on the same data dir starts and answers.
    with croupier(tmp_path, "console", "--json") as following:
        assert following.process.stdin is not None and following.process.stdout is not None
        following.process.stdin.write(b'{"command": "balance"}\n')
        following.process.stdin.close()
        assert_clean_exit(following)
        assert json.loads(following.process.stdout.read())["ok"] is True


async def test_a_signal_during_boot_stops_once_the_server_is_up(tmp_path: Path) -> None:
    """SIGTERM as soon as the store is open (boot still running): exit 0, lock free."""
    with croupier(tmp_path, "run") as running:
        await running.wait_logged("store_opened")
        running.process.send_signal(signal.SIGTERM)
        assert_clean_exit(running)


async def test_a_second_ctrl_c_during_shutdown_changes_nothing(tmp_path: Path) -> None:
    """Two SIGINTs, the second once shutdown has begun: still exit 0 and no traceback."""
    with croupier(tmp_path, "console", "--json") as running:
        await running.wait_ready()
        running.process.send_signal(signal.SIGINT)
        await running.wait_logged("signal")
        running.process.send_signal(signal.SIGINT)
        assert_clean_exit(running)


async def test_two_ctrl_cs_at_once_stop_cleanly(tmp_path: Path) -> None:
    """Two SIGINTs back to back stop the console like one."""
    with croupier(tmp_path, "run") as running:
        await running.wait_ready()
        running.process.send_signal(signal.SIGINT)
        running.process.send_signal(signal.SIGINT)
        assert_clean_exit(running)


@pytest.mark.parametrize("command", ["console", "run"])
async def test_quit_through_a_pipe_ends_the_process(tmp_path: Path, command: str) -> None:
    """/quit written into a pipe that stays open ends `run` and `console` with exit 0."""
    with croupier(tmp_path, command) as running:
        await running.wait_ready()
        assert running.process.stdin is not None
        running.process.stdin.write(b"/balance\n/quit\n")
        running.process.stdin.flush()
        assert_clean_exit(running)
        assert running.process.stdout is not None
        assert b"Balance" in running.process.stdout.read()


@pytest.mark.parametrize("command", [["console"], ["console", "--json"], ["run"]])
async def test_end_of_a_pipe_ends_the_process(tmp_path: Path, command: list[str]) -> None:
    """The end of piped input ends `run` and `console` after the last line is answered."""
    line = b'{"command": "balance"}\n' if "--json" in command else b"/balance\n"
    with croupier(tmp_path, *command) as running:
        assert running.process.stdin is not None
        running.process.stdin.write(line)
        running.process.stdin.close()
        assert_clean_exit(running)
        assert running.process.stdout is not None
        assert b"Balance" in running.process.stdout.read()


@pytest.mark.parametrize("closed", [False, True])
async def test_run_keeps_serving_with_no_input(tmp_path: Path, closed: bool) -> None:
    """`croupier run` on /dev/null or a closed stdin serves until signalled, then stops."""
    stdin = None if closed else subprocess.DEVNULL
    with croupier(tmp_path, "run", stdin=stdin, close_stdin=closed) as running:
        await running.wait_ready()
        await running.wait_logged("console_closed")
        status, body = fetch_json(f"http://127.0.0.1:{running.port}/healthz")
        assert status == 200 and running.process.poll() is None, body
        running.process.send_signal(signal.SIGTERM)
        assert_clean_exit(running)


async def test_a_stop_lets_the_line_in_flight_finish_and_reads_no_more() -> None:
    """A stop during a command: its reply is written, and the lines after it are not run."""
    bank = ToyBank()
    commands = bank.command_set(new_metrics())
    send_in, reader = trio.testing.memory_stream_one_way_pair()
    writer, receive_out = trio.testing.memory_stream_one_way_pair()
    stop = trio.Event()
    lines = ['{"id": 7, "command": "slow"}', '{"id": 8, "command": "balance"}']
    await send_in.send_all("".join(line + "\n" for line in lines).encode())
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: run_console(
                    commands,
                    reader,
                    writer,
                    json_mode=True,
                    user_id=42,
                    guild_id=1,
                    admin=False,
                    stop=stop,
                )
            )
            await bank.slow_started.wait()
            stop.set()
            bank.slow_release.set()
    await writer.aclose()
    output = bytearray()
    while chunk := await receive_out.receive_some():
        output += chunk
    replies = [json.loads(line) for line in output.decode().splitlines()]
    assert [reply["id"] for reply in replies] == [7]
    assert bank.seen == [7]


async def test_a_stop_while_waiting_for_input_ends_the_console() -> None:
    """A stop while no line is in flight ends the session at once, input still open."""
    commands = ToyBank().command_set(new_metrics())
    _send_in, reader = trio.testing.memory_stream_one_way_pair()
    writer, _receive_out = trio.testing.memory_stream_one_way_pair()
    stop = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: run_console(
                    commands,
                    reader,
                    writer,
                    json_mode=True,
                    user_id=42,
                    guild_id=1,
                    admin=False,
                    stop=stop,
                )
            )
            await trio.testing.wait_all_tasks_blocked()
            stop.set()


# The scripting console beside a running server (README, "Scripting").


def readme_script() -> str:
    """The README's scripting example, run as written but with this checkout's croupier."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Scripting: `croupier console --json`", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return block[1].replace(".venv/bin/croupier", CROUPIER)


async def test_the_readme_script_runs_beside_a_running_server(tmp_path: Path) -> None:
    """While `croupier run` serves data/, the README's example answers every line."""
    with croupier(tmp_path, "run", stdin=subprocess.DEVNULL) as server:
        await server.wait_ready()
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CROUPIER_") or key == "CROUPIER_FUZZ_EXAMPLES"
        }
        done = subprocess.run(
            ["bash", "-c", readme_script()],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        replies = [json.loads(line) for line in done.stdout.splitlines()]
        assert len(replies) == 2 and all(reply["ok"] for reply in replies), replies
        # It listened on no port, so it cannot have taken the server's.
        assert "event=metrics_off" in done.stderr
        assert server.process.poll() is None


async def test_a_second_process_on_a_data_dir_in_use_says_who_and_what_to_do(
    tmp_path: Path,
) -> None:
    """The instance lock's refusal is one line naming the holder and the setting."""
    with croupier(tmp_path, "run", stdin=subprocess.DEVNULL) as server:
        await server.wait_ready()
        environ = {**os.environ, "CROUPIER_DATA_DIR": str(server.data_dir)}
        environ.pop("CROUPIER_METRICS_ADDR", None)
        done = subprocess.run(
            [CROUPIER, "console", "--json"],
            env=environ,
            input="",
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        pid = server.process.pid
        assert f"in use by pid {pid} (croupier run)" in lines[0]
        assert "CROUPIER_DATA_DIR" in lines[0]


async def test_a_metrics_address_in_use_is_one_line_naming_the_key(tmp_path: Path) -> None:
    """A console asked for a metrics address the server holds stops with one line."""
    with croupier(tmp_path, "run", stdin=subprocess.DEVNULL) as server:
        await server.wait_ready()
        environ = {
            **os.environ,
            "CROUPIER_DATA_DIR": str(tmp_path / "other"),
            "CROUPIER_METRICS_ADDR": f"127.0.0.1:{server.port}",
        }
        done = subprocess.run(
            [CROUPIER, "console", "--json"],
            env=environ,
            input="",
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = [line for line in done.stderr.splitlines() if line.startswith("croupier:")]
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert "CROUPIER_METRICS_ADDR" in lines[0] and "Traceback" not in done.stderr


def test_ctrl_c_at_a_real_terminal_ends_the_console(tmp_path: Path) -> None:
    """Ctrl-C typed at a terminal (a pty, so the kernel sends the SIGINT): exit 0, no
    traceback, the lock free."""
    data_dir = tmp_path / "data"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: croupier console on the pty, as a person would run it
        try:
            os.environ["CROUPIER_DATA_DIR"] = str(data_dir)
            os.environ.pop("CROUPIER_METRICS_ADDR", None)
            os.execv(CROUPIER, [CROUPIER, "console"])
        finally:
            os._exit(127)  # never go on running the tests in the child
    seen = bytearray()

    def read_until(token: bytes, count: int = 1) -> None:
        deadline = time.monotonic() + READY_SECONDS_MAX
        while seen.count(token) < count:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([terminal], [], [], 0.1)
            if ready:
                seen.extend(os.read(terminal, 4096))

    try:
        read_until(b"]> ")
        os.write(terminal, b"/balance\n")
        read_until(b"]> ", count=2)
        os.write(terminal, b"\x03")  # the terminal's interrupt character
        read_until(b"event=stopped")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(terminal)
    output = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0 and "Traceback" not in output, output
    assert "Balance" in output and "signal=SIGINT" in output
    with InstanceLock(data_dir):
        pass
