"""Where templates and the default config come from: the shipped ones, an operator's folder first.

(The installed-wheel case is tests/e2e/test_installed_wheel.py; these run in-process.)
"""

import re
from email import message_from_bytes, policy

import pytest

from newsletter.config import EMBEDDED_CONFIG, load_settings
from newsletter.db import make_engine
from newsletter.errors import ConfigError
from newsletter.templating import TEMPLATES, TemplateError, environment, render, use_operator_templates
from tests.conftest import write_config
from tests.db_templates import migrate_fresh, sample_content
from tests.issues.test_render import VALUES, compiled_for

MASTHEAD = "email/partials/masthead.mjml.j2"


@pytest.fixture(autouse=True)
def _shipped_templates_afterwards():
    """The operator folder is a process setting: leave none behind for the next test."""
    yield
    use_operator_templates(None)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    migrate_fresh(engine)
    sample_content(engine)
    yield engine
    engine.dispose()


def operator_folder(tmp_path, name: str = "mine"):
    folder = tmp_path / name
    (folder / "email" / "partials").mkdir(parents=True)
    (folder / MASTHEAD).write_text("<mj-section><mj-column><mj-text>OPERATOR MASTHEAD {{ site.name }}"
                                   "</mj-text></mj-column></mj-section>\n")
    return folder


def config_with_templates(folder, templates_dir: str):
    path = write_config(folder)
    path.write_text(path.read_text().replace("[site]\n", f"[site]\ntemplates_dir = {templates_dir!r}\n", 1))
    return path


def test_an_operator_partial_replaces_the_shipped_one_and_only_that(tmp_path, engine):
    operator_folder(tmp_path)
    settings = load_settings(config_with_templates(tmp_path, "mine"))
    assert settings.site.templates_dir == tmp_path / "mine"  # relative to the config file's folder
    html = compiled_for(engine, settings, "2026-W48").html.fill(VALUES)
    assert "OPERATOR MASTHEAD Weekly Verdicts" in html
    assert "Read the full verdict" in html and "17 Sample Lane" in html  # the shipped rest still renders


def test_the_override_belongs_to_the_settings_last_loaded(tmp_path):
    folder = operator_folder(tmp_path)
    load_settings(config_with_templates(tmp_path, str(folder)))  # an absolute path works too
    assert environment().get_template(MASTHEAD).filename == str(folder / MASTHEAD)
    assert environment().get_template("email/issue.mjml.j2").filename == str(TEMPLATES / "email/issue.mjml.j2")
    other = tmp_path / "other"
    other.mkdir()
    load_settings(write_config(other))
    assert environment().get_template(MASTHEAD).filename == str(TEMPLATES / MASTHEAD)


def test_a_missing_operator_folder_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"site\.templates_dir: .*nowhere is not a folder"):
        load_settings(config_with_templates(tmp_path, "nowhere"))


def test_a_missing_template_names_every_folder_searched(tmp_path):
    folder = operator_folder(tmp_path)
    load_settings(config_with_templates(tmp_path, "mine"))
    with pytest.raises(TemplateError, match=re.escape(f"email/nothing.j2 not found in {folder} or {TEMPLATES}")):
        render("email/nothing.j2", {})


def test_without_any_config_file_the_embedded_defaults_write_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.source == EMBEDDED_CONFIG
    assert settings.database.url == f"sqlite:///{tmp_path / 'var' / 'newsletter.db'}"
    assert settings.mail.file.dir == tmp_path / "var" / "outbox"
    assert settings.security.secret_key_file == tmp_path / "var" / "secret.key"


@pytest.mark.postgres
def test_worker_processes_use_the_operator_templates_too(tmp_path, pg_url):
    """Worker processes get their settings from the parent (forked, or pickled to a forkserver),
    not through load_settings."""
    from tests.delivery.test_workers import finish, popen, setup_issue, worker_cmd

    operator_folder(tmp_path)
    setup_issue(tmp_path, pg_url, readers=4)
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace("[site]\n", "[site]\ntemplates_dir = \"mine\"\n", 1))
    code, output = finish(popen(worker_cmd("--processes", "2", "--until-idle"), config))
    assert code == 0 and "2 worker processes started" in output, output
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 4
    for path in files:
        html = message_from_bytes(path.read_bytes(), policy=policy.default).get_body(("html",)).get_content()
        assert "OPERATOR MASTHEAD" in html
