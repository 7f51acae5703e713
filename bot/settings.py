"""Configuration from the environment (prefix HOCVUSO_) and an optional .env file.

A bad value stops start-up with one line naming the variable (see `load_settings`); secrets
are `SecretStr`, so they never show up in a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DB_URL = "sqlite+aiosqlite:///./data/hocvuso.db"
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class SettingsError(Exception):
    """A configuration value is wrong; the message names the variable and never its value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOCVUSO_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = DEFAULT_DB_URL
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    # An http:// or https:// proxy for every Bot API call (None: connect directly); secret,
    # as it may carry a password (http://user:password@host:port).
    telegram_proxy: SecretStr | None = None
    telegram_webhook: bool = False
    # The bot's @username, for one-time officer links (https://t.me/<username>?start=inv_...).
    telegram_bot_username: str | None = Field(default=None, pattern=r"^@?[A-Za-z0-9_]{5,32}$")
    webhook_secret: SecretStr | None = None
    public_url: str | None = None
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    provinces: Annotated[tuple[int, ...], NoDecode] = (37,)
    default_language: Literal["vi", "en"] = "vi"
    # Where files the bot makes are kept (certificate images, backups).
    data_dir: Path = Path("./data")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # The bot's event loop: uvloop (default, where installed) or the standard asyncio one.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Identities that never consented are forgotten after this many days.
    unconsented_retention_days: int = Field(default=30, ge=1)
    # People inactive this long are erased (their events stay pseudonymous).
    retention_days: int = Field(default=1095, ge=30)
    # Flood control: more than this many messages within the window gets a person slowed down.
    flood_messages: int = Field(default=30, ge=1)
    flood_window_seconds: float = Field(default=10.0, gt=0)
    # Zalo Bot Platform (a bot made in the Zalo app): long polling unless the webhook is on.
    zalo_bot_token: SecretStr | None = None
    zalo_bot_api_url: str = "https://bot-api.zaloplatforms.com/bot"
    zalo_bot_webhook: bool = False
    zalo_bot_webhook_secret: SecretStr | None = None
    # Pause between two sends of the Zalo bot (its rate limits are not documented).
    zalo_bot_send_interval: float = Field(default=0.05, ge=0, le=10)
    # Zalo Official Account (Open API v3): signed webhook, consultation messages.
    zalo_oa_app_id: str | None = None
    zalo_oa_app_secret: SecretStr | None = None
    zalo_oa_secret_key: SecretStr | None = None
    # Only if webhooks turn out to be signed with another key (one source says the app secret).
    zalo_oa_signature_key: SecretStr | None = None
    zalo_oa_access_token: SecretStr | None = None
    zalo_oa_refresh_token: SecretStr | None = None
    zalo_oa_api_url: str = "https://openapi.zalo.me"
    zalo_oa_oauth_url: str = "https://oauth.zaloapp.com"
    # The OA may write to someone only this long after their last message (Zalo: 7 days).
    zalo_oa_window_hours: int = Field(default=168, ge=1, le=24 * 365)
    # The error Zalo answers for a send outside the window (-230, unverified).
    zalo_oa_window_error: int = -230
    # Campaign broadcasts (scheduler/dispatch.py): messages per second of this process. On
    # Telegram the budget is shared with the replies, which always go first.
    telegram_rate: float = Field(default=30.0, gt=0, le=10_000)
    # Telegram's paid broadcasts (allow_paid_broadcast): up to 1,000/s, billed in Stars.
    telegram_paid_broadcast: bool = False
    zalo_bot_rate: float = Field(default=10.0, gt=0, le=1_000)
    zalo_oa_rate: float = Field(default=10.0, gt=0, le=1_000)

    @field_validator("provinces", mode="before")
    @classmethod
    def _split_provinces(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            if not parts or not all(p.isdigit() for p in parts):
                raise ValueError("expected province codes such as 37 or 37,1")
            return tuple(int(p) for p in parts)
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("provinces")
    @classmethod
    def _known_provinces(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        from vietnam_provinces import ProvinceCode

        known = {int(c) for c in ProvinceCode}
        unknown = [c for c in value if c not in known]
        if unknown:
            raise ValueError(f"unknown province code(s): {unknown}")
        return value

    @field_validator("telegram_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None and not re.fullmatch(r"\d+:[\w-]+", value.get_secret_value()):
            raise ValueError("not a bot token (expected digits:letters, as BotFather gives)")
        return value

    @field_validator("telegram_proxy")
    @classmethod
    def _proxy_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None and not re.fullmatch(r"https?://\S+", value.get_secret_value()):
            raise ValueError("expected an http:// or https:// proxy URL")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET_TOKEN_RE.match(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator(
        "zalo_bot_token", "zalo_bot_webhook_secret", "zalo_oa_app_secret", "zalo_oa_secret_key",
        "zalo_oa_signature_key", "zalo_oa_access_token", "zalo_oa_refresh_token",
    )  # fmt: skip
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("zalo_bot_token")
    @classmethod
    def _zalo_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[^:\s]+:\S+", value.get_secret_value()):
            raise ValueError("not a Zalo bot token (expected bot_id:secret, as Zalo gives)")
        return value

    @field_validator("zalo_bot_webhook_secret")
    @classmethod
    def _zalo_secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[!-~]{8,256}", value.get_secret_value()):
            raise ValueError("must be 8-256 characters without spaces")
        return value

    @field_validator("zalo_oa_app_id")
    @classmethod
    def _zalo_app_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", value.strip()):
            raise ValueError("not a Zalo app id (the digits shown in the Zalo developer console)")
        return value.strip()

    @field_validator("zalo_bot_api_url", "zalo_oa_api_url", "zalo_oa_oauth_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for local tests)")
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for local tests)")
        return value.rstrip("/")

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def secrets(self) -> list[str]:
        """Every secret value, so the log filter can redact them wherever they appear."""
        out = []
        for value in (
            self.telegram_token, self.webhook_secret, self.telegram_proxy, self.zalo_bot_token,
            self.zalo_bot_webhook_secret, self.zalo_oa_app_secret, self.zalo_oa_secret_key,
            self.zalo_oa_signature_key, self.zalo_oa_access_token, self.zalo_oa_refresh_token,
        ):  # fmt: skip
            if value is not None and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning a validation error into one readable line per variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"HOCVUSO_{field.upper()}: {msg}")
        raise SettingsError("; ".join(lines)) from None
