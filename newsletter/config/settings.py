"""Settings: every section together, with NEWSLETTER_<SECTION>__<KEY> environment overrides."""

from __future__ import annotations

from pathlib import Path

from pydantic import PrivateAttr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from newsletter.config.mail import MailSettings
from newsletter.config.sections import (ENV_PREFIX, ContentSettings, DatabaseSettings, DeliverySettings, IssueSettings,
                                        ScheduleSettings, SiteSettings)
from newsletter.config.web import (AdminSettings, ApiSettings, FeedbackSettings, OutgoingWebhookSettings,
                                   SecuritySettings, TrackingSettings, WebhooksSettings, WebSettings)


class Settings(BaseSettings):
    """All settings; `source` records the file they came from, for messages."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
    )

    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    mail: MailSettings = MailSettings()
    content: ContentSettings = ContentSettings()
    issue: IssueSettings = IssueSettings()
    delivery: DeliverySettings = DeliverySettings()
    web: WebSettings = WebSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    tracking: TrackingSettings = TrackingSettings()
    security: SecuritySettings = SecuritySettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    admin: AdminSettings = AdminSettings()
    api: ApiSettings = ApiSettings()
    outgoing_webhooks: OutgoingWebhookSettings = OutgoingWebhookSettings()
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The config file these settings were read from."""
        return self._source

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which arrives as init kwargs.
        return (env_settings, init_settings)
