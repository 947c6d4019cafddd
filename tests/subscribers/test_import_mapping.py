"""The mapping layer on the platforms' own export files (tests/data/imports, written from their
documented headers and status values): detection, each column's target, decoding, delimiters,
and the clear error for each kind of file it cannot read."""

from __future__ import annotations

import pytest

from newsletter.subscribers import mapping
from newsletter.subscribers.mapping import check_mapping, mapped_rows, platform_for, read_upload
from newsletter.subscribers.platforms import default_mapping
from newsletter.subscribers.service import InvalidInput
from tests.subscribers.import_helpers import DATA

CATEGORIES = ["Developer Tools", "Design & Media", "Writing & Research", "Data & Analytics"]
DETECTED = {"mailchimp_subscribed.csv": "mailchimp", "mailchimp_unsubscribed.csv": "mailchimp",
            "mailchimp_cleaned.csv": "mailchimp", "substack.csv": "substack", "buttondown.csv": "buttondown",
            "ghost.csv": "ghost", "listmonk.csv": "listmonk", "utf8_bom.csv": "newsletter",
            "excel_latin1_semicolon.csv": "csv"}


def rows_of(name: str, **kwargs) -> list:
    upload = read_upload((DATA / name).read_bytes())
    platform = platform_for(upload)
    return list(mapped_rows(upload, platform, mapping.mapping_for(upload, platform, kwargs.get("columns")),
                            kwargs.get("categories", CATEGORIES)))


@pytest.mark.parametrize("name,platform", DETECTED.items())
def test_each_platform_is_detected_from_its_header(name, platform):
    assert platform_for(read_upload((DATA / name).read_bytes())).key == platform


def test_the_default_mapping_follows_each_platforms_columns():
    def targets(name):
        upload = read_upload((DATA / name).read_bytes())
        return default_mapping(platform_for(upload), upload.header)

    chimp = targets("mailchimp_subscribed.csv")
    assert {chimp[c] for c in ("Email Address", "First Name", "OPTIN_TIME", "OPTIN_IP", "CONFIRM_TIME",
                               "CONFIRM_IP")} == {"email", "first_name", "optin_at", "optin_ip", "confirmed_at",
                                                  "confirm_ip"}
    assert chimp["TAGS"] == chimp["MEMBER_RATING"] == chimp["LEID"] == "ignore"
    assert targets("mailchimp_unsubscribed.csv")["UNSUB_TIME"] == "unsubscribed_at"
    assert targets("mailchimp_cleaned.csv")["CLEAN_TIME"] == "cleaned_at"
    assert targets("substack.csv")["email_disabled"] == "email_disabled"
    assert targets("substack.csv")["active_subscription"] == "ignore"  # a paid plan, not consent to mail
    assert targets("buttondown.csv")["subscriber_type"] == "status"
    ghost = targets("ghost.csv")
    assert (ghost["subscribed_to_emails"], ghost["labels"], ghost["created_at"]) == ("subscribed", "ignore",
                                                                                      "created_at")
    assert targets("listmonk.csv")["attributes"] == "ignore"
    assert targets("excel_latin1_semicolon.csv") == {"E-mail": "email", "Name": "name", "Topics": "topics"}


def test_statuses_that_left_never_map_to_active():
    by_email = {row.email: row.status for _, row, _ in rows_of("buttondown.csv") if row}
    assert by_email == {"jules.martin@example.com": "active", "kai.nakamura@example.com": "active",
                        "lena.vogel@example.de": "unsubscribed", "mo.ali@example.com": "bounced",
                        "otto.berg@example.com": "complained"}
    refused = [error for _, row, error in rows_of("buttondown.csv") if row is None]
    assert refused == ["line 6: subscriber_type (status): 'pending': never confirmed, so there is no consent to "
                       "import (ask them to sign up)",
                       "line 8: subscriber_type (status): 'spammy': Buttondown marked this address as spam"]
    for name, expected in (("mailchimp_unsubscribed.csv", {"unsubscribed"}), ("mailchimp_cleaned.csv", {"bounced"}),
                           ("mailchimp_subscribed.csv", {"active"})):
        assert {row.status for _, row, _ in rows_of(name)} == expected, name
    assert [row.status for _, row, _ in rows_of("substack.csv")] == ["active", "active", "unsubscribed"]
    assert [row.status for _, row, _ in rows_of("ghost.csv")] == ["active", "unsubscribed", "active"]
    assert [row.status for _, row, _ in rows_of("listmonk.csv")] == ["active", "unsubscribed", "unsubscribed"]


def test_opt_in_evidence_and_join_dates_are_read():
    first = rows_of("mailchimp_subscribed.csv")[0][1]
    assert first.dates["created_at"].isoformat() == "2021-03-14T09:26:53+00:00"
    assert first.dates["confirmed_at"].isoformat() == "2021-03-14T09:31:02+00:00"
    assert (first.evidence.platform, first.evidence.optin_ip, first.evidence.confirm_ip) == (
        "Mailchimp", "198.51.100.23", "198.51.100.23")
    assert first.name == "Ada Lindqvist"
    assert rows_of("mailchimp_subscribed.csv")[1][1].evidence.optin_ip == "2001:db8::17"
    sam = rows_of("listmonk.csv")[0][1]
    assert sam.dates["created_at"].isoformat() == "2023-01-10T06:30:00.123456+00:00"  # +05:30 kept as UTC


def test_latin1_semicolons_bom_and_quoted_commas():
    upload = read_upload((DATA / "excel_latin1_semicolon.csv").read_bytes())
    assert (upload.encoding, upload.delimiter) == ("Windows-1252 (Latin-1)", ";")
    rows = [row for _, row, _ in rows_of("excel_latin1_semicolon.csv")]
    assert [r.name for r in rows] == ["Vera Müller", "Walt Lemaître; senior"]
    assert rows[0].topics == ["Developer Tools", "Design & Media"]
    bom = read_upload((DATA / "utf8_bom.csv").read_bytes())
    assert bom.header == ["email", "name", "topics"] and bom.encoding == "UTF-8"
    assert [row.name for _, row, _ in rows_of("utf8_bom.csv")] == ["Bom, Xena"]
    utf16 = read_upload("email\tname\nzoe@example.com\tZoë\n".encode("utf-16"))
    assert (utf16.encoding, utf16.delimiter, utf16.header) == ("UTF-16", "\t", ["email", "name"])


def test_a_formula_quote_from_our_own_export_comes_off_and_formulas_stay_text():
    upload = read_upload(b"email,name\nf@example.com,'=HYPERLINK(1)\n")
    row = next(mapped_rows(upload, platform_for(upload), mapping.mapping_for(upload, platform_for(upload)), []))[1]
    assert row.name == "=HYPERLINK(1)"  # stored as text; every page escapes it and every export quotes it again


@pytest.mark.parametrize("data,expected", [
    (b"", "file: is empty"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "file: is not a CSV text file"),
    (b"email,Email\na@example.com,b@example.com\n", "two columns of the header row have the same name"),
    (b"\n\n", "file: is empty"),
    (b',,\n"a@example.com",,\n', "the first row must name the columns"),
])
def test_files_that_cannot_be_read_say_why(data, expected):
    with pytest.raises(InvalidInput, match=expected):
        read_upload(data)


def test_a_file_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(mapping, "MAX_UPLOAD", 1024)
    with pytest.raises(InvalidInput, match="larger than"):
        read_upload(b"email\n" + b"a@example.com\n" * 100)


def test_mapping_mistakes_name_the_column():
    upload = read_upload(b"E-mail,Who\na@example.com,Ann\n")
    with pytest.raises(InvalidInput, match="no column is the email address"):
        check_mapping(upload, {"E-mail": "ignore"})
    with pytest.raises(InvalidInput, match="Who: 'Name' is already the column 'E-mail'"):
        check_mapping(upload, {"E-mail": "name", "Who": "name"})
    with pytest.raises(InvalidInput, match="'Nope' is not a column"):
        check_mapping(upload, {"Nope": "email"})
    with pytest.raises(InvalidInput, match="'password' is not one of"):
        check_mapping(upload, {"E-mail": "email", "Who": "password"})
    with pytest.raises(InvalidInput, match="platform: 'myspace'"):
        platform_for(upload, "myspace")


def test_bad_rows_name_their_line_and_field():
    text = ("Email Address,First Name,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME\n"
            "ok@example.com,Ok,2021-01-01 10:00:00,192.0.2.1,2021-01-01 10:05:00\n"
            "bad-address,Bad,,,\n"
            "ip@example.com,Ip,2021-01-01 10:00:00,not-an-ip,\n"
            '"multi@example.com","Multi\nLine",2021-01-01 10:00:00,,\n'
            "when@example.com,When,yesterday,,\n"
            "ok@example.com,Again,,,\n").encode()
    upload = read_upload(text)
    results = list(mapped_rows(upload, platform_for(upload), mapping.mapping_for(upload, platform_for(upload)), []))
    errors = [error for _, row, error in results if row is None]
    assert errors[0].startswith("line 3: Email Address (email):")
    assert errors[1] == "line 4: OPTIN_IP (optin_ip): 'not-an-ip' is not an IP address"
    assert errors[2].startswith("line 5: name: contains control characters")  # from First Name
    assert errors[3].startswith("line 7: OPTIN_TIME (optin_at): 'yesterday' is not a date")
    assert errors[4] == "line 8: email: ok@example.com is already on line 2"


def test_a_bad_row_after_blank_lines_is_named_by_its_own_line():
    """`--from csv` and the console's import named the blank line before a bad row (line 4 for a row
    on line 5, line 2 for one on line 4), where `subscribers import` named the row's own (outside trial)."""
    for text, line in (("email,name\na@example.com,A\nb@example.com,B\n\nbad,Bad\n", 5),
                       ("email,name\n\n\nbad,Bad\n", 4)):
        upload = read_upload(text.encode())
        results = list(mapped_rows(upload, platform_for(upload, "csv"),
                                   mapping.mapping_for(upload, platform_for(upload, "csv")), []))
        assert [error.split(":")[0] for _, row, error in results if row is None] == [f"line {line}"]
