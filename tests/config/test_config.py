from pathlib import Path

import pytest

from newsletter import PROJECT_ROOT
from newsletter.config import load_settings
from newsletter.errors import ConfigError
from tests.conftest import write_config


def test_embedded_defaults_are_sqlite_and_file_outbox():
    settings = load_settings(PROJECT_ROOT / "config.toml")
    assert settings.database.url == f"sqlite:///{PROJECT_ROOT / 'var' / 'newsletter.db'}"
    assert settings.mail.transport == "file"
    assert settings.mail.file.dir == PROJECT_ROOT / "var" / "outbox"
    assert settings.source == PROJECT_ROOT / "config.toml"


def test_environment_overrides_nested_keys(tmp_path, monkeypatch):
    path = write_config(tmp_path)
    monkeypatch.setenv("NEWSLETTER_MAIL__SMTP__PORT", "2525")
    monkeypatch.setenv("NEWSLETTER_MAIL__FILE__DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("NEWSLETTER_ISSUE__MAX_COMPARISONS", "3")
    settings = load_settings(path)
    assert settings.mail.smtp.port == 2525
    assert settings.mail.file.dir == tmp_path / "elsewhere"
    assert settings.issue.max_comparisons == 3
    assert settings.site.name == "Weekly Verdicts"  # the file still provides the rest


def test_newsletter_config_variable_selects_the_file(tmp_path, monkeypatch):
    path = write_config(tmp_path, extra='\n[issue]\nmax_comparisons = 2\n')
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(path))
    assert load_settings().issue.max_comparisons == 2


def test_relative_paths_follow_the_config_file(tmp_path, monkeypatch):
    path = write_config(tmp_path, db_url="sqlite:///var/x.db")
    monkeypatch.chdir("/")
    settings = load_settings(path)
    assert settings.database.url == f"sqlite:///{tmp_path / 'var' / 'x.db'}"
    assert settings.mail.file.dir == tmp_path / "outbox"


@pytest.mark.parametrize(
    "extra, env, expected",
    [
        ("\n[mail.smtp]\nport = 'abc'\n", {}, "mail.smtp.port"),
        ("", {"NEWSLETTER_MAIL__SMTP__PORT": "99999"}, "mail.smtp.port"),
        ("\n[mail.smtp]\nsecurity = 'maybe'\n", {}, "mail.smtp.security"),
        ("\n[issue]\nmax_comparisons = 0\n", {}, "issue.max_comparisons"),
        ("\n[issue]\nmax_comparison = 3\n", {}, "issue.max_comparison"),
        ("\n[mail.smtp]\nhelo_name = 'mail server.example'\n", {}, "mail.smtp.helo_name"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "-bad-.example"}, "mail.smtp.helo_name"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "müller.example"}, "mail.smtp.helo_name"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "localhost"}, "fully qualified"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "192.0.2.1"}, "[192.0.2.1]"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "[999.1.1.1]"}, "not an address literal"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "[IPv6:fe80::1%eth0]"}, "not an address literal"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "[١٢٣.١.١.١]"}, "not an address literal"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "a" * 250 + ".example"}, "mail.smtp.helo_name"),
        ("", {"NEWSLETTER_MAIL__SMTP__HELO_NAME": "mail.example.."}, "mail.smtp.helo_name"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path, monkeypatch, extra, env, expected):
    path = write_config(tmp_path, extra=extra)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_bad_timezone_and_header_injection_are_rejected(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[site]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="site.timezone"):
        load_settings(path)
    path.write_text('[mail]\nfrom_address = "a@b.example\\r\\nBcc: x@y.example"\n')
    with pytest.raises(ConfigError, match="mail.from_address"):
        load_settings(path)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_secret_key_comes_from_env_or_file(tmp_path, monkeypatch):
    from newsletter.secret_key import load_secret_key

    settings = load_settings(write_config(tmp_path))
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY")
    with pytest.raises(ConfigError, match="no signing key"):
        load_secret_key(settings)
    key = load_secret_key(settings, create=True)
    assert settings.security.secret_key_file.stat().st_mode & 0o777 == 0o600
    assert load_secret_key(settings) == key
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="too short"):
        load_secret_key(settings)
    assert isinstance(settings.security.secret_key_file, Path)


@pytest.mark.parametrize("name,value,kind", [("NEWSLETTER_WEB__ALLOWED_HOSTS", "www.example.com", "list"),
                                             ("NEWSLETTER_SCHEDULE__NOTIFY", "a@b.example", "list"),
                                             ("NEWSLETTER_API__CORS_ORIGINS", "https://x.example", "list"),
                                             ("NEWSLETTER_MAIL", "x", "section"),
                                             ("NEWSLETTER_MAIL__SMTP", "relay.example", "section")])
def test_a_list_or_section_from_the_environment_not_in_json_is_a_clear_error(tmp_path, monkeypatch, name, value,
                                                                              kind):
    """`NEWSLETTER_WEB__ALLOWED_HOSTS=www.example.com`, as a new user writes it, ended in a 60-line
    traceback from pydantic-settings naming only the section (found trying the README from outside)."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(write_config(tmp_path))
    message = str(raised.value)
    assert f"{name}={value!r}: a {kind} is written as JSON" in message and "Traceback" not in message
    monkeypatch.setenv(name, f'["{value}"]' if kind == "list" else "{}")  # as JSON it is read
    settings = load_settings(write_config(tmp_path))
    assert kind == "section" or value in str(settings.model_dump())


def test_a_variable_of_no_section_is_an_error_not_ignored(tmp_path, monkeypatch):
    """NEWSLETTER_MIAL__TRANSPORT=smtp (a typo) was ignored without a word and mail went to the file
    outbox; an unknown key of a known section was already an error (outside trial)."""
    monkeypatch.setenv("NEWSLETTER_MIAL__TRANSPORT", "smtp")
    with pytest.raises(ConfigError, match=r"NEWSLETTER_MIAL__TRANSPORT: no section \[mial\]"):
        load_settings(write_config(tmp_path))
    monkeypatch.delenv("NEWSLETTER_MIAL__TRANSPORT")
    monkeypatch.setenv("NEWSLETTER_TEST_PG", "postgresql://elsewhere/test")  # the tests' own, not a setting
    assert load_settings(write_config(tmp_path)).mail.transport == "file"
