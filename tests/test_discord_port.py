"""The Discord port: how Discord's answers are classified, and the in-memory fake."""

from __future__ import annotations

import pytest

from actors import DiscordPort
from actors.discord_port import (
    CANNOT_DM_USER,
    MISSING_ACCESS,
    MISSING_PERMISSIONS,
    UNKNOWN_BAN,
    UNKNOWN_CHANNEL,
    UNKNOWN_MEMBER,
    Done,
    Forbidden,
    Gone,
    Retry,
    result_for,
)
from tests.support.discord_port import FakeDiscordPort


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, UNKNOWN_BAN, Gone),
        (404, UNKNOWN_MEMBER, Gone),
        (404, UNKNOWN_CHANNEL, Gone),
        (403, CANNOT_DM_USER, Gone),
        (403, MISSING_PERMISSIONS, Forbidden),
        (403, MISSING_ACCESS, Forbidden),
        (403, 0, Forbidden),
        (500, 0, Retry),
        (502, 0, Retry),
        (401, 0, Retry),
        (400, 50035, Retry),
    ],
)
def test_answers_are_classified(status: int, code: int, expected: type) -> None:
    """Known permanent codes end a timer, missing permissions back off, the rest retry."""
    result = result_for(status, code, "m")
    assert isinstance(result, expected)
    if isinstance(result, Retry):
        assert not result.rate_limited


def test_the_fake_is_a_port() -> None:
    """The fake satisfies the Protocol the domain types against."""
    port: DiscordPort = FakeDiscordPort()
    assert port is not None


async def test_fake_unban_of_no_ban_is_gone() -> None:
    """As on Discord, lifting a ban twice answers Unknown Ban the second time."""
    port = FakeDiscordPort()
    assert await port.ban(1, 2, reason="spam", delete_message_seconds=60) == Done()
    assert await port.unban(1, 2, reason="expired") == Done()
    assert await port.unban(1, 2, reason="expired") == Gone(UNKNOWN_BAN, "Unknown Ban")
    assert [call.method for call in port.calls] == ["ban", "unban", "unban"]
    assert port.calls[0].args["delete_message_seconds"] == 60


async def test_fake_posts_once_per_nonce() -> None:
    """A resend with the same nonce returns the original message and posts nothing."""
    port = FakeDiscordPort()
    first = await port.send_message(5, "hi", nonce="n1", mention_user_ids=[7])
    again = await port.send_message(5, "hi", nonce="n1", mention_user_ids=[7])
    assert isinstance(first, Done) and first == again and first.message_id > 0
    assert len(port.messages) == 1 and port.messages[0].mention_user_ids == (7,)
    other = await port.send_dm(7, "hi", nonce="n1")
    assert isinstance(other, Done) and other.message_id != first.message_id


async def test_fake_scripts_and_forbids() -> None:
    """Scripted answers come first and change nothing; a forbidden guild answers 50013."""
    port = FakeDiscordPort()
    port.script("add_role", Retry("HTTP 500"), Retry("429", 1.5))
    assert await port.add_role(1, 2, 3, reason="r") == Retry("HTTP 500")
    assert await port.add_role(1, 2, 3, reason="r") == Retry("429", 1.5)
    assert port.roles == set()
    assert await port.add_role(1, 2, 3, reason="r") == Done()
    assert port.roles == {(1, 2, 3)}
    port.forbid(1)
    assert isinstance(await port.remove_role(1, 2, 3, reason="r"), Forbidden)
    port.allow(1)
    assert await port.remove_role(1, 2, 3, reason="r") == Done() and port.roles == set()
    port.absent_members.add(9)
    assert await port.add_role(1, 9, 3, reason="r") == Gone(UNKNOWN_MEMBER, "Unknown Member")
    port.unknown_channels.add(5)
    assert isinstance(await port.send_message(5, "x", nonce="n"), Gone)
    port.closed_dms.add(9)
    assert await port.send_dm(9, "x", nonce="n") == Gone(
        CANNOT_DM_USER, "Cannot send messages to this user"
    )
    assert len(port.calls_of("add_role")) == 4
