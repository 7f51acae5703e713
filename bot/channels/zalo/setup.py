"""Building the Zalo channels (and the OA token store the scheduler also uses) from settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.runtime import Runtime
from bot.settings import Settings


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def oa_configured(s: Settings) -> bool:
    return s.zalo_oa_app_id is not None


def oa_client(s: Settings) -> Any:
    from bot.channels.zalo.oa_client import ZaloOAClient

    missing = [name for name, value in (
        ("HOCVUSO_ZALO_OA_APP_SECRET", s.zalo_oa_app_secret),
        ("HOCVUSO_ZALO_OA_SECRET_KEY", s.zalo_oa_secret_key or s.zalo_oa_signature_key),
    ) if value is None]  # fmt: skip
    if s.zalo_oa_app_id is None or missing:
        raise RuntimeError(
            "Zalo OA: HOCVUSO_ZALO_OA_APP_ID needs " + " and ".join(missing) + " as well"
        )
    return ZaloOAClient(
        app_id=s.zalo_oa_app_id, app_secret=_secret(s.zalo_oa_app_secret) or "",
        api_url=s.zalo_oa_api_url, oauth_url=s.zalo_oa_oauth_url,
    )  # fmt: skip


def token_store(rt: Runtime, client: Any) -> Any:
    from bot.channels.zalo.oa_tokens import OATokenStore

    return OATokenStore(rt.sessionmaker, client, rt.clock)


def zalo_channels(rt: Runtime) -> list[Any]:
    """The Zalo Bot channel if its token is set, the OA channel if its app id is set."""
    s = rt.settings
    channels: list[Any] = []
    if s.zalo_bot_token is not None:
        from bot.channels.zalo.bot_channel import ZaloBotChannel
        from bot.channels.zalo.bot_client import ZaloBotClient

        channels.append(ZaloBotChannel(
            rt.engine, ZaloBotClient(_secret(s.zalo_bot_token) or "", s.zalo_bot_api_url),
            webhook=s.zalo_bot_webhook, webhook_secret=_secret(s.zalo_bot_webhook_secret),
            public_url=s.public_url, send_interval=s.zalo_bot_send_interval,
        ))  # fmt: skip
    if oa_configured(s):
        from bot.channels.zalo.oa_channel import ZaloOAChannel

        client = oa_client(s)
        key = _secret(s.zalo_oa_signature_key) or _secret(s.zalo_oa_secret_key) or ""
        channels.append(ZaloOAChannel(
            rt.engine, client, token_store(rt, client), signature_key=key,
            window=timedelta(hours=s.zalo_oa_window_hours),
            window_error=s.zalo_oa_window_error,
            seed=(_secret(s.zalo_oa_access_token), _secret(s.zalo_oa_refresh_token)),
        ))  # fmt: skip
    return channels
