"""Reader search: a prefix of the address or the name finds exactly the readers that have it,
in address order, and walking the keyset pages meets each of them once, on SQLite and
PostgreSQL, whatever the names hold (any Unicode, commas, quotes, % and _) and with IDN domains."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, inspect, select

from newsletter.db import session_scope
from newsletter.subscribers.models import SEARCH_INDEXES, Subscriber, Suppression
from newsletter.subscribers.search import after_prefix, search_readers, search_suppressions
from newsletter.subscribers.service import InvalidInput, hashed_email, normalize_email

TRICKY = st.sampled_from([",", '"', "'", "%", "_", "/", "\\", " ", "É", "ß", "İ", "Ω", "ж", "語", "😀", "a", "Z"])
NAMES = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), TRICKY),
                max_size=12).map(str.strip)
LOCALS = st.text(alphabet="abcxyz019._+-'%", min_size=1, max_size=8)
DOMAINS = st.sampled_from(["example.com", "bücher.de", "xn--bcher-kva.example", "例え.jp", "ex_ample.org"])
PROPERTY = settings(max_examples=30, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _address(local: str, domain: str) -> str | None:
    try:
        return normalize_email(f"{local}@{domain}", smtputf8=True)
    except InvalidInput:
        return None


def _fill(engine, readers: list[tuple[str, str]]) -> None:
    with session_scope(engine) as session:
        session.execute(delete(Subscriber))
        seen = set()
        for email, name in readers:
            if email and email not in seen:
                seen.add(email)
                session.add(Subscriber(email=email, name=name, status="active"))


def _expected(engine, text: str) -> list[str]:
    """The readers a prefix search must find, by the database's own lower() of name and text."""
    from newsletter.subscribers.search import address_form

    with session_scope(engine) as session:
        folded = session.execute(select(func.lower(text))).scalar_one()
        rows = session.execute(select(Subscriber.email, func.lower(Subscriber.name))).all()
    address = address_form(text)
    return sorted(email for email, name in rows if email.startswith(address) or (text.strip() and name.startswith(folded)))


def _walk(engine, text: str, limit: int, contains: bool = False) -> list[str]:
    seen, after = [], ""
    while True:
        with session_scope(engine) as session:
            page = search_readers(session, text, after, limit, name_contains=contains)
            seen += [row.email for row in page.rows]
        assert len(page.rows) <= limit
        if page.next_after is None:
            return seen
        assert page.rows, "a page that promises more must not be empty"
        after = page.next_after


READERS = st.lists(st.tuples(LOCALS, DOMAINS, NAMES), min_size=1, max_size=25)


@PROPERTY
@given(readers=READERS, pick=st.integers(min_value=0), cut=st.integers(min_value=0, max_value=6),
       by_name=st.booleans(), upper=st.booleans(), limit=st.integers(min_value=1, max_value=4))
@example(readers=[("ann", "example.com", "Zoe Ann"), ("x", "example.com", 'O"Brien, Ann')], pick=1, cut=3,
         by_name=True, upper=True, limit=1)
def test_a_prefix_finds_exactly_its_readers_and_pages_meet_each_once(engine, readers, pick, cut, by_name, upper, limit):
    rows = [(_address(local, domain), name) for local, domain, name in readers]
    _fill(engine, rows)
    email, name = rows[pick % len(rows)]
    source = name if by_name else (email or "")
    text = source[:cut]
    text = text.upper() if upper and by_name else text
    expected = _expected(engine, text)
    assert _walk(engine, text, limit) == expected
    if source:
        assert email in _expected(engine, source) or not email


def test_readers_with_the_same_name_and_wildcards(engine):
    _fill(engine, [("ann@example.com", "Zoe Ann"), ("anna@example.org", ""), ("bob@example.com", "Annika B"),
                   ("x_y@example.com", "100% Percent"), ("xay@example.com", "O'Brien, \"Jo\""),
                   ("jo@bücher.de", "Jo")])
    assert _walk(engine, "ANN", 2) == ["ann@example.com", "anna@example.org", "bob@example.com"]
    assert _walk(engine, "x_", 1) == ["x_y@example.com"]  # _ is a character, not a wildcard
    assert _walk(engine, "100%", 1) == ["x_y@example.com"] and _walk(engine, "%", 5) == []
    assert _walk(engine, "o'brien, \"", 5) == ["xay@example.com"]
    assert _walk(engine, "jo@xn--bcher-kva.de", 5) == ["jo@bücher.de"]  # the IDNA spelling finds the Unicode one
    assert _walk(engine, "percent", 5, contains=True) == ["x_y@example.com"]
    assert _walk(engine, "", 4) == sorted(["ann@example.com", "anna@example.org", "bob@example.com",
                                           "x_y@example.com", "xay@example.com", "jo@bücher.de"])


def test_after_prefix_is_the_least_string_above_the_prefix():
    assert after_prefix("ab") == "ac" and after_prefix("a\U0010ffff") == "b" and after_prefix("\U0010ffff") is None
    assert after_prefix("a\ud7ff") == "a\ue000"


def test_suppressions_by_prefix_and_a_forgotten_address_by_its_hash(engine):
    with session_scope(engine) as session:
        for email, reason in (("bounce@example.com", "hard_bounce"), ("boss@example.com", "complaint"),
                              (hashed_email("gone@example.com"), "forgotten")):
            session.add(Suppression(email=email, reason=reason))
    with session_scope(engine) as session:
        assert [s.email for s in search_suppressions(session, "bo").rows] == ["boss@example.com", "bounce@example.com"]
        assert [s.reason for s in search_suppressions(session, "gone@example.com").rows] == ["forgotten"]
        first = search_suppressions(session, "", limit=2)
        rest = search_suppressions(session, "", after=first.next_after, limit=2)
    assert len(first.rows) == 2 and len(rest.rows) == 1 and rest.next_after is None


def test_the_search_indexes_exist(engine):
    """Migration 0019 made them (the model comparison leaves them out: models.SEARCH_INDEXES)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            names = {row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index'")}
        expected = {"ix_subscriber_name_lower"}
    else:
        names = {index["name"] for table in ("subscriber", "suppression") for index in inspect(engine).get_indexes(table)}
        expected = SEARCH_INDEXES - {"ix_subscriber_name_lower"}
    assert expected <= names
