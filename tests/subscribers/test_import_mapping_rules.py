"""Importing the platforms' exports through jobs, on SQLite and PostgreSQL: join dates and opt-in
evidence kept as consent events, nobody the source says left becomes active, the store's own
refusals (unsubscribed here, suppressed, forgotten) hold, and a dry run writes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from newsletter.db import session_scope
from newsletter.subscribers.import_plan import add_new
from newsletter.subscribers.importing import apply_row, import_csv
from newsletter.subscribers.mapping import mapped_rows, mapping_for, platform_for, read_upload
from newsletter.subscribers.models import Subscriber, SubscriberTopic
from newsletter.subscribers.forgotten import forget
from newsletter.subscribers.service import UpsertResult, is_suppressed
from tests.subscribers.import_helpers import DATA, events, import_file, job, queue_file, reader, row_counts, run_all

ALL = ["mailchimp_subscribed.csv", "mailchimp_unsubscribed.csv", "mailchimp_cleaned.csv", "substack.csv",
       "buttondown.csv", "ghost.csv", "listmonk.csv", "excel_latin1_semicolon.csv", "utf8_bom.csv"]
LEFT = {"dora.kovacs@example.com": "unsubscribed", "eli.mensah@example.org": "unsubscribed",
        "farah.haddad@example.com": "bounced", "ivan.petrov@example.org": "unsubscribed",
        "lena.vogel@example.de": "unsubscribed", "mo.ali@example.com": "bounced",
        "otto.berg@example.com": "complained", "quinn.doyle@example.ie": "unsubscribed",
        "tess.nguyen@example.com": "unsubscribed", "uma.singh@example.com": "unsubscribed"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_mailchimp_join_dates_and_opt_in_evidence_are_kept(sample_engine):
    done = import_file(sample_engine, "mailchimp_subscribed.csv")
    assert (done.state, done.counts()) == ("done", {"new": 3, "updated": 0, "unchanged": 0, "suppressed": 0,
                                                    "refused": 0})
    ada = reader(sample_engine, "ada.lindqvist@example.com")
    assert (ada.status, ada.name) == ("active", "Ada Lindqvist")
    assert (ada.created_at, ada.confirmed_at) == (at("2021-03-14 09:26:53"), at("2021-03-14 09:31:02"))
    history = {kind: (source, when, ip) for kind, source, when, ip, _ in events(sample_engine, ada.email)}
    assert history["signup_requested"] == ("import:mailchimp", at("2021-03-14 09:26:53"), "198.51.100.23")
    assert history["confirmed"] == ("import:mailchimp", at("2021-03-14 09:31:02"), "198.51.100.23")
    assert history["subscribed"][0] == "import:mailchimp"
    chen = {kind: ip for kind, _, _, ip, _ in events(sample_engine, "chen.wei@example.net")}
    assert chen["signup_requested"] is None and chen["confirmed"] == "203.0.113.9"


def test_other_platforms_keep_their_join_dates(sample_engine):
    for name in ("substack.csv", "ghost.csv", "listmonk.csv", "buttondown.csv"):
        import_file(sample_engine, name)
    assert reader(sample_engine, "hana.sato@example.net").created_at == at("2020-08-27 15:06:27.713")
    assert reader(sample_engine, "paula.rossi@example.it").created_at == at("2022-04-06 07:42:08")
    assert reader(sample_engine, "sam.taylor@example.com").created_at == at("2023-01-10 06:30:00.123456")
    assert reader(sample_engine, "jules.martin@example.com").created_at == at("2022-05-01 08:00:00.123456")
    assert {source for _, source, *_ in events(sample_engine, "paula.rossi@example.it")} == {"import:ghost"}


def test_nobody_the_source_says_left_is_active(sample_engine):
    for name in ALL:
        assert import_file(sample_engine, name).state == "done", name
    with session_scope(sample_engine) as session:
        for email, status in LEFT.items():
            found = reader(sample_engine, email)
            if status == "unsubscribed":
                assert found.status == status, email
            else:  # a bounce or complaint from the source: on the suppression list, no reader row to mail
                assert found is None and is_suppressed(session, email), email
    assert reader(sample_engine, "nia.brown@example.com") is None  # never confirmed on Buttondown
    assert reader(sample_engine, "spam.bot@example.com") is None
    dora = [kind for kind, *_ in events(sample_engine, "dora.kovacs@example.com")]
    assert dora == ["signup_requested", "confirmed", "unsubscribed"]  # she opted in there, then left
    assert reader(sample_engine, "dora.kovacs@example.com").unsubscribed_at == at("2024-01-09 16:20:00")


def test_an_unsubscribed_reader_here_stays_unsubscribed(sample_engine):
    import_csv(sample_engine, "email,status\nada.lindqvist@example.com,unsubscribed\n",
               categories=["Developer Tools"])
    done = import_file(sample_engine, "mailchimp_subscribed.csv")
    assert done.counts()["refused"] == 1
    assert done.error_lines() == ["line 2: ada.lindqvist@example.com: unsubscribed here; an import never "
                                  "re-subscribes anyone"]
    assert reader(sample_engine, "ada.lindqvist@example.com").status == "unsubscribed"


def test_suppressed_and_forgotten_addresses_are_not_brought_back(sample_engine):
    import_file(sample_engine, "buttondown.csv")  # mo.ali bounced there: suppressed here
    import_file(sample_engine, "ghost.csv")
    forget(sample_engine, "quinn.doyle@example.ie")
    again = import_file(sample_engine, "ghost.csv")
    assert reader(sample_engine, "quinn.doyle@example.ie") is None  # not even as "unsubscribed"
    assert any("quinn.doyle" in line and "suppressed here" in line for line in again.error_lines())
    active = queue_file(sample_engine, b"email,name\nmo.ali@example.com,Mo\n")
    run_all(sample_engine)
    assert job(sample_engine, active).counts()["refused"] == 1
    assert reader(sample_engine, "mo.ali@example.com") is None  # still only on the suppression list


def test_a_dry_run_writes_nothing_and_predicts_the_import(sample_engine):
    import_file(sample_engine, "mailchimp_subscribed.csv")  # some readers are known already
    before = row_counts(sample_engine)
    predictions = {}
    for name in ALL:
        dry = import_file(sample_engine, name, dry_run=True)
        assert dry.state == "done" and dry.data is not None, name  # the file stays for the import
        predictions[name] = (dry.counts(), dry.error_lines())
    assert row_counts(sample_engine) == before
    for name in ALL:
        real = import_file(sample_engine, name)
        assert (real.counts(), real.error_lines()) == predictions[name], name
        assert real.data is None  # a finished import keeps no personal data in the job
    assert row_counts(sample_engine) != before


def test_importing_again_changes_nothing(sample_engine):
    first = import_file(sample_engine, "ghost.csv")
    before = row_counts(sample_engine)
    second = import_file(sample_engine, "ghost.csv")
    assert first.counts()["new"] == 3
    assert second.counts() == {"new": 0, "updated": 0, "unchanged": 3, "suppressed": 0, "refused": 0}
    assert row_counts(sample_engine) == before  # no second "subscribed" event either


def test_a_file_without_topics_keeps_the_readers_topics(sample_engine):
    import_csv(sample_engine, "email,topics\npaula.rossi@example.it,Developer Tools\n",
               categories=["Developer Tools"])
    import_file(sample_engine, "ghost.csv")
    with session_scope(sample_engine) as session:
        topics = list(session.exec(select(SubscriberTopic.category)))
    assert topics == ["Developer Tools"]


def test_a_bad_row_fails_a_real_import_unless_bad_rows_are_left_out(sample_engine):
    data = (DATA / "buttondown.csv").read_bytes()
    before = row_counts(sample_engine)
    strict = queue_file(sample_engine, data, skip_bad_rows=False)
    run_all(sample_engine)
    failed = job(sample_engine, strict)
    assert failed.state == "failed" and failed.message.startswith("2 bad rows, nothing imported")
    assert failed.error_lines()[0].startswith("line 6: subscriber_type (status): 'pending'")
    assert row_counts(sample_engine) == before
    lenient = queue_file(sample_engine, data, skip_bad_rows=True)
    run_all(sample_engine)
    assert job(sample_engine, lenient).counts() == {"new": 3, "updated": 0, "unchanged": 0, "suppressed": 2,
                                                    "refused": 2}


def _record(engine, email: str) -> tuple:
    """A reader as stored, without ids, keys and the moment of the import itself."""
    with session_scope(engine) as session:
        found = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        topics = sorted(session.exec(select(SubscriberTopic.category).where(SubscriberTopic.subscriber_id == found.id)))
        moment = (found.name, found.status, found.created_at, found.confirmed_at, found.unsubscribed_at)
    recent = datetime.now(UTC) - timedelta(minutes=10)
    return moment if found.created_at < recent else moment[:2], topics, sorted(
        (kind, source, ip, detail, when if when < recent else "now") for kind, source, when, ip, detail in events(
            engine, email))


def test_new_readers_in_bulk_get_exactly_the_records_of_the_row_path(sample_engine):
    for name in ("mailchimp_subscribed.csv", "excel_latin1_semicolon.csv"):
        upload = read_upload((DATA / name).read_bytes())
        platform = platform_for(upload)
        rows = [row for _, row, _ in mapped_rows(upload, platform, mapping_for(upload, platform),
                                                 ["Developer Tools", "Design & Media"])]
        source = f"import:{platform.key}"
        with session_scope(sample_engine) as session:
            for row in rows:
                apply_row(session, row, source, UpsertResult())
            add_new(session, [replace(row, email="twin." + row.email) for row in rows], source)
        for row in rows:
            assert _record(sample_engine, row.email) == _record(sample_engine, "twin." + row.email), row.email


def test_the_cli_imports_a_platform_export_with_from(tmp_path):
    from tests.cli.test_cli import run
    from tests.conftest import write_config
    from tests.subscribers.test_subscriber_import import ENV, SAMPLE

    write_config(tmp_path)
    run(["db", "upgrade"], tmp_path, ENV)
    run(["content", "import", *map(str, sorted(SAMPLE.glob("*.toml")))], tmp_path, ENV)
    export = str(DATA / "buttondown.csv")
    strict = run(["subscribers", "import", export, "--from", "auto"], tmp_path, ENV, check=False)
    assert strict.returncode == 1 and "nothing imported (2 bad rows" in strict.stderr
    assert "Traceback" not in strict.stderr
    dry = run(["subscribers", "import", export, "--from", "buttondown", "--dry-run"], tmp_path, ENV)
    assert "3 would be new, 0 would be updated, 0 would be unchanged, 2 would be suppressed, 2 would be refused" \
        in dry.stdout
    real = run(["subscribers", "import", export, "--from", "auto", "--skip-bad-rows"], tmp_path, ENV)
    assert "3 new, 0 updated, 0 unchanged, 2 suppressed, 2 refused" in real.stdout
    assert "refused line 8: subscriber_type (status): 'spammy'" in real.stdout
    wrong = run(["subscribers", "import", export, "--from", "myspace"], tmp_path, ENV, check=False)
    assert wrong.returncode == 1 and "platform: 'myspace' is not one of" in wrong.stderr
