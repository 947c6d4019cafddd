"""Settings: config.toml, then NEWSLETTER_<SECTION>__<KEY> environment overrides.

The file is chosen by `--config`, else NEWSLETTER_CONFIG, else ./config.toml,
else the shipped config.toml (the embedded defaults). Relative paths in the
file are resolved against the file's folder so that the same config works
from any working directory; those of the embedded defaults against the working
directory, since an installed package's own folder is no place for data.

The package: sections.py (the Section base; site, database, issue, delivery, schedule),
mail.py ([mail] and its provider and DKIM subsections), web.py (web, tracking, webhooks,
feedback, security), settings.py (Settings, all sections together), loading.py (reading the
file) and templates.py (this process's operator template folder). Every name is re-exported
here: import from newsletter.config, not from the submodules.
"""

from __future__ import annotations

from newsletter.config.loading import EMBEDDED_CONFIG, default_config_path, load_settings
from newsletter.config.mail import (ENV_ONLY_SECRETS, DkimSettings, FileMailSettings, HttpProviderSettings,
                                    MailgunSettings, MailSettings, PostmarkSettings, ResendSettings,
                                    SendgridSettings, SesSettings, SmtpSettings)
from newsletter.config.sections import (DAYS, ENV_PREFIX, DatabaseSettings, DeliverySettings, IssueSettings,
                                        ScheduleSettings, Section, SiteSettings)
from newsletter.config.settings import Settings
from newsletter.config.templates import operator_templates, template_cache, use_operator_templates
from newsletter.config.web import (WEBHOOK_ENV_ONLY_SECRETS, FeedbackSettings, MailgunWebhookSettings,
                                   PostmarkWebhookSettings, ResendWebhookSettings, SecuritySettings,
                                   SendgridWebhookSettings, SesWebhookSettings, TrackingSettings,
                                   WebhooksSettings, WebSettings)
from newsletter.errors import ConfigError, UserError

__all__ = [
    "DAYS", "EMBEDDED_CONFIG", "ENV_ONLY_SECRETS", "ENV_PREFIX", "WEBHOOK_ENV_ONLY_SECRETS",
    "ConfigError", "DatabaseSettings", "DeliverySettings", "DkimSettings", "FeedbackSettings",
    "FileMailSettings", "HttpProviderSettings", "IssueSettings", "MailSettings", "MailgunSettings",
    "MailgunWebhookSettings", "PostmarkSettings", "PostmarkWebhookSettings", "ResendSettings",
    "ResendWebhookSettings", "ScheduleSettings", "Section", "SecuritySettings",
    "SendgridSettings", "SendgridWebhookSettings", "SesSettings", "SesWebhookSettings", "Settings",
    "SiteSettings", "SmtpSettings", "TrackingSettings", "UserError", "WebSettings", "WebhooksSettings",
    "default_config_path", "load_settings", "operator_templates", "template_cache", "use_operator_templates",
]
