"""Survey links: the token is the respondent's only credential."""

from __future__ import annotations

import base64
import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.survey.domain.tokens import looks_like_token, survey_token, token_hash, token_matches

SECRET = "a-test-secret-that-is-long-enough-0123456789"
secrets_ = st.text(min_size=1, max_size=64)
invitation_ids = st.uuids()


@given(invitation_ids)
def test_the_same_invitation_always_gets_the_same_link(invitation_id: uuid.UUID) -> None:
    assert survey_token(SECRET, invitation_id) == survey_token(SECRET, invitation_id)


@given(invitation_ids, invitation_ids)
def test_different_invitations_get_different_links(first: uuid.UUID, second: uuid.UUID) -> None:
    if first != second:
        assert survey_token(SECRET, first) != survey_token(SECRET, second)


@given(invitation_ids, secrets_, secrets_)
def test_a_different_secret_gives_a_different_link(invitation_id: uuid.UUID, one: str, other: str) -> None:
    if one != other:
        assert survey_token(one, invitation_id) != survey_token(other, invitation_id)


@given(invitation_ids, secrets_)
def test_tokens_are_url_safe_and_carry_at_least_128_bits(invitation_id: uuid.UUID, secret: str) -> None:
    token = survey_token(secret, invitation_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 >= 128
    assert looks_like_token(token)


def test_the_token_is_not_the_invitation_id_in_disguise() -> None:
    invitation_id = uuid.uuid4()
    token = survey_token(SECRET, invitation_id)
    assert invitation_id.hex not in token
    assert str(invitation_id) not in token


@given(invitation_ids)
def test_only_a_hash_is_stored_and_it_matches_only_its_own_token(invitation_id: uuid.UUID) -> None:
    token = survey_token(SECRET, invitation_id)
    stored = token_hash(token)
    assert token not in stored
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert token_matches(token, stored)
    assert not token_matches(survey_token(SECRET, uuid.uuid4()), stored)


def test_junk_does_not_look_like_a_token() -> None:
    for junk in ("", "abc", "x" * 42, "x" * 44, "a" * 42 + "/", "a" * 42 + "="):
        assert not looks_like_token(junk)
