"""The HTTP API's token commands: ``/api-token-create``, ``/api-token-list``,
``/api-token-revoke`` (Manage Server only).

Discord subcommands do not exist in the command model, so the three are commands of
their own. A new token is shown once, in an ephemeral reply that is never stored as the
interaction's answer; only its hash is kept. Creating and revoking are recorded in the
audit log.
"""

from __future__ import annotations

from actors import SCOPES, ApiToken, ApiTokens, AuditLog
from actors.errors import GuildOnly
from bot.commands.common import audit_command
from bot.commands.render import mention, timestamp
from bot.model import Command, Field, Invocation, Option, OptionKind, Reply
from limits import api_token_name_chars_max


class ApiTokenCommands:
    """The token commands over one token store and audit log."""

    def __init__(self, tokens: ApiTokens, audit: AuditLog) -> None:
        self.tokens = tokens
        self.audit = audit

    def commands(self) -> tuple[Command, ...]:
        return (
            Command(
                "api-token-create",
                "Create an HTTP API token for this server (shown once)",
                (
                    Option(
                        "name",
                        OptionKind.STRING,
                        "A name to tell the token apart",
                        max_length=api_token_name_chars_max,
                    ),
                    Option(
                        "scope",
                        OptionKind.STRING,
                        "read: GET only; write: every route",
                        choices=SCOPES,
                    ),
                ),
                self._create,
                admin_only=True,
                secret_reply=True,
            ),
            Command(
                "api-token-list",
                "List this server's HTTP API tokens",
                (),
                self._list,
                admin_only=True,
            ),
            Command(
                "api-token-revoke",
                "Revoke an HTTP API token at once",
                (
                    Option(
                        "token",
                        OptionKind.STRING,
                        "The token's id or name",
                        max_length=api_token_name_chars_max,
                    ),
                ),
                self._revoke,
                admin_only=True,
            ),
        )

    async def _create(self, inv: Invocation) -> Reply:
        guild = _guild(inv)
        created = await self.tokens.create(
            guild,
            name=inv.options["name"],
            scope=inv.options["scope"],
            created_by=inv.user_id,
            key=f"command:{inv.interaction_id}",
        )
        token = created.token
        await self._audit(inv, "token.create", token, {}, _token_result(token))
        if not created.secret:
            return Reply(
                title="Token already created",
                description=(
                    f"This request already created token `{token.token_id}` ({token.name}). "
                    "Its secret was shown once and is not kept; revoke it and create a new "
                    "one if it was lost."
                ),
                ephemeral=True,
                result=_token_result(token),
            )
        return Reply(
            title="API token created",
            description=(
                f"`{created.secret}`\n\nThis is shown only now: store it safely. Send it as "
                "`Authorization: Bearer <token>`."
            ),
            fields=(Field("Id", token.token_id), Field("Scope", token.scope)),
            ephemeral=True,
            result={**_token_result(token), "token": created.secret},
        )

    async def _list(self, inv: Invocation) -> Reply:
        tokens = self.tokens.of_guild(_guild(inv))
        lines = [
            f"`{t.token_id}` **{t.name}** · {t.scope} · by {mention(t.created_by)} "
            f"{timestamp(t.created_at)}"
            for t in tokens
        ]
        return Reply(
            title="API tokens",
            description="\n".join(lines) or "No tokens; create one with /api-token-create.",
            ephemeral=True,
            result={"tokens": [_token_result(t) for t in tokens]},
        )

    async def _revoke(self, inv: Invocation) -> Reply:
        token = await self.tokens.revoke(_guild(inv), inv.options["token"])
        await self._audit(inv, "token.revoke", token, _token_result(token), {})
        return Reply(
            title="API token revoked",
            description=f"Token `{token.token_id}` ({token.name}) no longer works.",
            ephemeral=True,
            result=_token_result(token),
        )

    async def _audit(
        self,
        inv: Invocation,
        action: str,
        token: ApiToken,
        before: dict[str, object],
        after: dict[str, object],
    ) -> None:
        await audit_command(self.audit, inv, action, f"token:{token.token_id}", before, after)


def _guild(inv: Invocation) -> int:
    if inv.guild_id == 0:
        raise GuildOnly()
    return inv.guild_id


def _token_result(token: ApiToken) -> dict[str, object]:
    return {
        "id": token.token_id,
        "name": token.name,
        "scope": token.scope,
        "created_by": token.created_by,
        "created_at": token.created_at,
    }
