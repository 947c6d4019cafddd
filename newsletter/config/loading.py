"""Reading the config file: which file, TOML parsing, secrets kept out of files, relative paths,
and error messages that name the file, the key and its environment variable.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from newsletter import shipped
from newsletter.config.mail import ENV_ONLY_SECRETS
from newsletter.config.sections import ENV_PREFIX, SiteSettings
from newsletter.config.settings import Settings
from newsletter.config.templates import use_operator_templates
from newsletter.config.web import WEBHOOK_ENV_ONLY_SECRETS
from newsletter.errors import ConfigError, UserError
from newsletter.files import MiB, read_text_limited

EMBEDDED_CONFIG = shipped("config.toml")


def default_config_path() -> Path:
    env = os.environ.get("NEWSLETTER_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / "config.toml"
    if local.is_file():
        return local
    return EMBEDDED_CONFIG


def _format_error(path: Path, error: ValidationError) -> str:
    lines = [f"config error in {path}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        env_name = ENV_PREFIX + "__".join(str(part) for part in item["loc"]).upper()
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            reason = "unknown key (check the spelling; see config.toml for the known keys)"
        lines.append(f"  {key}: {reason} (set in the file or by {env_name})")
    return "\n".join(lines)


# NEWSLETTER_ variables that are not settings: read by the program, the tests or the benchmarks.
NOT_SETTINGS = frozenset({"CONFIG", "SECRET_KEY", "TEST_PG"})


def _reject_unknown_env_sections() -> None:
    """A NEWSLETTER_ variable whose section does not exist (NEWSLETTER_MIAL__TRANSPORT=smtp) was
    silently ignored, and the mail went to the file outbox; an unknown key of a known section was
    already an error."""
    sections = set(Settings.model_fields)
    wrong = [(name, parts[0]) for name in sorted(os.environ) if (parts := _setting_parts(name)) and parts[0] not in sections]
    if wrong:
        raise ConfigError("config error in the environment:\n" + "\n".join(
            f"  {name}: no section [{section}] (check the spelling; the sections are {', '.join(sorted(sections))})"
            for name, section in wrong))


def _setting_parts(name: str) -> list[str] | None:
    """NEWSLETTER_WEB__ALLOWED_HOSTS -> ["web", "allowed_hosts"]; None for any other variable."""
    if not name.startswith(ENV_PREFIX) or name[len(ENV_PREFIX):] in NOT_SETTINGS:
        return None
    return name[len(ENV_PREFIX):].lower().split("__")


def _env_json_error(error: SettingsError) -> str:
    """Which NEWSLETTER_… variable holds a list or a whole section in a form other than JSON (pydantic
    only names the section), and how to write it."""
    wrong = []
    for name, value in sorted(os.environ.items()):
        kind = _json_kind(parts) if (parts := _setting_parts(name)) else None
        if kind is None:
            continue
        try:
            json.loads(value)
        except ValueError:
            example = '["one", "two"]' if kind == "list" else '{"key": "value"}'
            wrong.append(f"  {name}={value!r}: a {kind} is written as JSON in the environment, e.g. {name}='{example}'")
    return "config error in the environment:\n" + ("\n".join(wrong) or f"  {error}")


def _json_kind(parts: list[str]) -> str | None:
    """"list" or "section" when NEWSLETTER_<PARTS> names a setting pydantic reads as JSON, else None."""
    model: type[BaseModel] = Settings
    for number, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        kind, last = field.annotation, number == len(parts) - 1
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if last:
                return "section"  # a whole section in one variable
            model = kind
            continue
        return "list" if last and getattr(kind, "__origin__", None) in (list, set, tuple) else None
    return None


def _resolve_paths(settings: Settings, base: Path) -> None:
    """Make relative paths absolute against the config file's folder."""
    mail_dir = settings.mail.file.dir
    if not mail_dir.is_absolute():
        settings.mail.file.dir = base / mail_dir
    dkim_key = settings.mail.dkim.private_key_file
    if str(dkim_key) not in ("", ".") and not dkim_key.is_absolute():
        settings.mail.dkim.private_key_file = base / dkim_key
    key_file = settings.security.secret_key_file
    if not key_file.is_absolute():
        settings.security.secret_key_file = base / key_file
    url = settings.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        settings.database.url = prefix + str(base / url[len(prefix):])


def _reject_file_secrets(path: Path, data: dict, section: str, secrets: dict[str, tuple[str, ...]]) -> None:
    """API keys and webhook secrets come from the environment only, never from a config file."""
    table = data.get(section) if isinstance(data.get(section), dict) else {}
    for provider, keys in secrets.items():
        entries = table.get(provider) if isinstance(table.get(provider), dict) else {}
        for key in keys:
            if key in entries:
                env_name = f"{ENV_PREFIX}{section.upper()}__{provider.upper()}__{key.upper()}"
                raise ConfigError(f"config error in {path}:\n  {section}.{provider}.{key}: secrets are not read "
                                  f"from the config file; remove it there and set {env_name}")


def load_settings(path: Path | str | None = None) -> Settings:
    """Read the config file and the environment; raise ConfigError naming file and key.

    Also points the template loader at `[site] templates_dir` for this process (a worker
    process that gets its settings pickled applies it itself, see delivery/worker.py).
    """
    chosen = Path(path) if path else default_config_path()
    base = Path.cwd() if not path and chosen == EMBEDDED_CONFIG else chosen.resolve().parent
    path = chosen
    try:  # at most 1 MiB: `--config /dev/zero` is an error, not unbounded memory
        text = read_text_limited(path, MiB)
    except UserError as exc:
        raise ConfigError(f"config error: file {path} does not exist" if not path.exists()
                          else f"config error: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error in {path}: not valid TOML: {exc}")
    except RecursionError:
        raise ConfigError(f"config error in {path}: not valid TOML: nested too deeply") from None
    _reject_unknown_env_sections()
    _reject_file_secrets(path, data, "mail", ENV_ONLY_SECRETS)
    _reject_file_secrets(path, data, "webhooks", WEBHOOK_ENV_ONLY_SECRETS)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc))
    except SettingsError as exc:  # an environment value that had to be JSON (a list, a section) was not
        raise ConfigError(_env_json_error(exc)) from None
    _resolve_paths(settings, base)
    _check_templates_dir(path, settings.site, base)
    use_operator_templates(settings.site.operator_templates, settings.site.template_cache)
    settings._source = path
    return settings


def _check_templates_dir(path: Path, site: SiteSettings, base: Path) -> None:
    """Make the operator's template folder absolute; a folder that is not there is an error."""
    if site.operator_templates is None:
        return
    folder = site.templates_dir if site.templates_dir.is_absolute() else base / site.templates_dir
    if not folder.is_dir():
        raise ConfigError(f"config error in {path}:\n  site.templates_dir: {folder} is not a folder "
                          f"(set in the file or by {ENV_PREFIX}SITE__TEMPLATES_DIR)")
    site.templates_dir = folder
