"""The transport-neutral command model.

A command is defined once (name, description, typed options, handler) and served by every
transport. A handler receives an ``Invocation`` and returns a ``Reply``; a button press
arrives as a ``ButtonPress`` and also returns a ``Reply``, which replaces the message the
button was on. Transports only translate: Discord payloads or console lines in, these
records out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class OptionKind(Enum):
    """The type of a command option, as a user sees it."""

    INTEGER = "integer"
    STRING = "string"
    USER = "user"
    BOOLEAN = "boolean"
    # A channel or a role of the guild; the value is its id (an ``int``).
    CHANNEL = "channel"
    ROLE = "role"


@dataclass(frozen=True)
class Option:
    """One typed option of a command."""

    name: str
    kind: OptionKind
    description: str
    required: bool = True
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()


class ButtonStyle(Enum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    SUCCESS = "success"
    DANGER = "danger"


@dataclass(frozen=True)
class Button:
    """A button under a reply. ``custom_id`` names everything needed to handle a press
    (the game id, the page), so a button keeps working after a restart."""

    custom_id: str
    label: str
    style: ButtonStyle = ButtonStyle.SECONDARY
    disabled: bool = False


@dataclass(frozen=True)
class Field:
    name: str
    value: str
    inline: bool = True


@dataclass(frozen=True)
class Reply:
    """What a command or button press answers: an embed, buttons and a machine result.

    ``error_code`` is set (and ``ephemeral`` true) when the reply reports a typed error;
    ``result`` carries machine-readable figures for scripts (console ``--json``).
    """

    title: str
    description: str = ""
    fields: tuple[Field, ...] = ()
    buttons: tuple[Button, ...] = ()
    ephemeral: bool = False
    color: int = 0xD4AF37
    footer: str = ""
    error_code: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)
    # Discord roles to grant the invoking user (an item that grants a role on use).
    grant_role_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class UserRef:
    """A user named in an option; transports resolve whether the user is a bot."""

    id: int
    bot: bool = False


class MemberRoles(Protocol):
    """The invoking member's roles, for a transport that can change them (Discord's
    gateway); handlers grant a role before they consume what pays for it."""

    def can_grant(self, role_id: int) -> bool | None:
        """Whether the bot can give this role (False: it sits at or above the bot's
        highest role), or None when the transport cannot tell."""
        ...

    async def grant(self, role_id: int) -> bool:
        """Give the member the role; True if they did not hold it. Raises
        ``RoleNotGrantable`` when Discord refuses."""
        ...

    async def revoke(self, role_id: int) -> None:
        """Take the role back from the member."""
        ...


@dataclass(frozen=True)
class Invocation:
    """One command as a user sent it.

    ``interaction_id`` is unique per delivered interaction and is the idempotency key of
    whatever the command changes, so a retried or duplicated delivery changes nothing twice.
    ``options`` holds already-typed values: ``int``, ``str``, ``bool`` or ``UserRef``.
    """

    command: str
    interaction_id: int
    user_id: int
    guild_id: int
    channel_id: int = 0
    can_manage_guild: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    # The member may ban (Discord's Ban Members permission, or Administrator).
    can_ban_members: bool = False
    # The member's roles, when the transport can change them; otherwise a handler asks
    # for roles with ``Reply.grant_role_ids``.
    roles: MemberRoles | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ButtonPress:
    """A button press on a message; ``custom_id`` is the button's id."""

    custom_id: str
    interaction_id: int
    user_id: int
    guild_id: int
    channel_id: int = 0
    can_manage_guild: bool = False


CommandHandler = Callable[[Invocation], Awaitable[Reply]]
ButtonHandler = Callable[[ButtonPress], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    options: tuple[Option, ...]
    handler: CommandHandler
    admin_only: bool = False
    # Only members with Ban Members may run it (moderation commands).
    ban_members_only: bool = False
    # The reply holds a secret shown once (a new API token), so it is never stored as
    # the interaction's answer: a redelivery runs the command again, which says so.
    secret_reply: bool = False


@dataclass(frozen=True)
class ButtonRoute:
    """Buttons whose custom id starts with ``prefix + ':'`` go to ``handler``."""

    prefix: str
    handler: ButtonHandler
