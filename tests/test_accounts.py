"""Account names and transfer ids have one spelling: what is built reads back the same."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.accounts import (
    REQUEST_KINDS,
    SYSTEM_ACCOUNTS,
    Account,
    TransferId,
    game_account,
    user_account,
)

users = st.integers(min_value=1, max_value=2**64 - 1)
scopes = st.integers(min_value=0, max_value=2**64 - 1)
request_keys = st.text(min_size=1, max_size=40)
game_ids = st.text(alphabet="0123456789abcdef", min_size=12, max_size=12)


@given(users)
def test_a_member_account_reads_back_as_its_user(user: int) -> None:
    """A member's account name is user:<id> and parses back to the same account."""
    name = user_account(user)
    assert name == f"user:{user}"
    account = Account.parse(name)
    assert account == Account.user(user) and account.member == user and str(account) == name


@given(game_ids)
def test_a_game_account_reads_back_as_its_game(game_id: str) -> None:
    """A game's escrow account is game:<id>, of kind game, and no member."""
    account = Account.parse(game_account(game_id))
    assert account == Account.game(game_id) and account.member is None
    assert str(account) == f"game:{game_id}"


def test_system_accounts_are_plain_names() -> None:
    """treasury, house and shop are system accounts spelt as their names."""
    for name in SYSTEM_ACCOUNTS:
        account = Account.parse(name)
        assert account.kind == "system" and str(account) == name and account.member is None


@given(st.sampled_from(REQUEST_KINDS), scopes, users, request_keys)
def test_a_request_transfer_id_reads_back_with_its_kind(
    kind: str, scope: int, user: int, key: str
) -> None:
    """<kind>:<scope>:<user>:<key> as the wallet has always written it, kind kept."""
    transfer = TransferId.of_request(kind, scope, user, key)  # type: ignore[arg-type]
    text = str(transfer)
    assert text == f"{kind}:{scope}:{user}:{key}"
    assert TransferId.parse(text) == transfer
    assert TransferId.parse(str(transfer.returned())).kind == kind
    assert str(transfer.returned()) == f"{text}/refund"


@given(game_ids, st.integers(min_value=0, max_value=100))
def test_game_transfer_ids_keep_their_spelling(game_id: str, round_number: int) -> None:
    """Settlements, refunds and wagers are spelt as the games have always written them."""
    assert str(TransferId.settlement(game_id, round_number)) == f"settle:{game_id}:{round_number}"
    assert str(TransferId.game_refund(game_id)) == f"refund:{game_id}"
    assert str(TransferId.game_refund(game_id).parked_stake_refund()) == f"refund:{game_id}/parked"
    assert str(TransferId.wager(game_id, "k")) == f"wager:{game_id}:k"
    for made in (TransferId.settlement(game_id, round_number), TransferId.game_refund(game_id)):
        assert TransferId.parse(str(made)) == made


@given(st.text(max_size=40))
def test_any_text_parses_and_spells_back_unchanged(text: str) -> None:
    """A stored id of any shape parses without raising and spells back as it was."""
    assert str(TransferId.parse(text)) == text
    assert str(Account.parse(text)) == text
