"""newsletter/text.py: the quick answer for printable ASCII agrees with the full check."""

from hypothesis import given
from hypothesis import strategies as st

from newsletter.text import _CONTROL, has_control_chars


@given(st.text() | st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_has_control_chars_agrees_with_the_pattern(value):
    assert has_control_chars(value) == bool(_CONTROL.search(value))


def test_every_ascii_control_character_is_found_among_printable_ones():
    for code in [*range(0x20), 0x7F]:
        assert has_control_chars(f"plain {chr(code)} name"), code
    assert not has_control_chars("Plain Name, with ~all~ the {printable} [ASCII] signs!")


def test_counted_says_one_thing_and_many_things():
    from newsletter.text import counted

    assert [counted(n, "bad row") for n in (0, 1, 2)] == ["0 bad rows", "1 bad row", "2 bad rows"]
    assert counted(1, "delivery", "deliveries") == "1 delivery" and counted(3, "delivery", "deliveries") == "3 deliveries"
