"""Email excerpts (newsletter.issues.fit): cut at a word, never longer than asked, and only for
issues that would not fit otherwise (the golden file shows an ordinary issue is untouched)."""

from hypothesis import given
from hypothesis import strategies as st

from newsletter.issues.fit import excerpt


@given(st.text(min_size=0, max_size=400), st.integers(min_value=2, max_value=300))
def test_an_excerpt_is_a_prefix_within_the_limit(text, limit):
    cut = excerpt(text, limit)
    if len(text) <= limit:
        assert cut == text
    else:
        assert len(cut) <= limit and cut.endswith("…")
        assert text.startswith(cut[:-1])


def test_an_excerpt_ends_at_a_word():
    assert excerpt("The primitive is an endpoint, and the moment of truth is speed.", 30) == \
        "The primitive is an endpoint…"
    assert excerpt("", None) == "" and excerpt("short", 10) == "short"
