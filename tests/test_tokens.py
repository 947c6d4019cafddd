"""Property (issue 5.8): a signed link token changed in any way is never accepted."""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.tokens import InvalidToken, Purpose, make_token, read_token

SECRET = "k" * 40
OTHER = "o" * 40
ALPHABET = string.ascii_letters + string.digits + "-_.=:/+%~ "
TOKENS = {purpose: make_token(SECRET, purpose, 4217) for purpose in (Purpose.unsubscribe, Purpose.preferences,
                                                                       Purpose.vote)}


@st.composite
def mutations(draw):
    """A valid token with 1 to 4 characters flipped, inserted or deleted at chosen positions."""
    purpose = draw(st.sampled_from(sorted(TOKENS)))
    token = list(TOKENS[purpose])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete"] if token else ["insert"]))
        if op == "insert":
            token.insert(draw(st.integers(0, len(token))), draw(st.sampled_from(ALPHABET)))
            continue
        at = draw(st.integers(0, len(token) - 1))
        if op == "delete":
            del token[at]
        else:
            token[at] = draw(st.sampled_from(ALPHABET))
    return purpose, "".join(token)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_tokens_are_never_accepted(case):
    purpose, mutated = case
    if mutated == TOKENS[purpose]:
        assert read_token(SECRET, purpose, mutated).subscriber_id == 4217  # the mutation undid itself
        return
    with pytest.raises(InvalidToken):
        read_token(SECRET, purpose, mutated)


@given(st.sampled_from(sorted(TOKENS)), st.sampled_from(sorted(TOKENS)))
def test_a_token_is_bound_to_its_purpose_and_key(made_for, used_for):
    token = TOKENS[made_for]
    if made_for == used_for:
        assert read_token(SECRET, used_for, token).subscriber_id == 4217
        assert read_token(f"{OTHER},{SECRET}", used_for, token).subscriber_id == 4217  # an old key still verifies
    else:
        with pytest.raises(InvalidToken):
            read_token(SECRET, used_for, token)
    with pytest.raises(InvalidToken):
        read_token(OTHER, made_for, token)  # a key that never signed it
