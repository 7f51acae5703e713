"""A thin async client for the Zalo Bot Platform (`<base><TOKEN>/<method>`, POST + JSON).

Every answer is the envelope `{"ok", "result", "error_code", "description"}`, whatever the
HTTP status; an answer with `ok: false` raises ZaloBotError. getUpdates returns one update
per call, and error 408 means "nothing new" (given back as None).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.channels.http import LazySession

NOTHING_NEW = 408


class ZaloBotError(Exception):
    """An `ok: false` answer (or an answer that is not the envelope)."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class ZaloBotClient(LazySession):
    def __init__(
        self,
        token: str,
        base_url: str = "https://bot-api.zaloplatforms.com/bot",
        *,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(timeout)
        self._url = f"{base_url}{token}/"

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, http_timeout: float = 0
    ) -> Any:
        """POST one method; its `result`, or ZaloBotError. Network errors propagate as
        aiohttp.ClientError / TimeoutError."""
        body = {k: v for k, v in (params or {}).items() if v is not None}
        extra = {"timeout": aiohttp.ClientTimeout(total=http_timeout)} if http_timeout else {}
        async with self.session.post(self._url + method, json=body, **extra) as response:
            raw = await response.read()
            status = response.status
        try:
            data = json.loads(raw)
        except ValueError:
            raise ZaloBotError(status, f"HTTP {status}, not JSON") from None
        if not isinstance(data, dict):
            raise ZaloBotError(status, f"HTTP {status}, not an envelope")
        if not data.get("ok"):
            code = data.get("error_code")
            raise ZaloBotError(
                code if isinstance(code, int) else status, str(data.get("description") or "")
            )
        return data.get("result")

    async def get_me(self) -> dict[str, Any]:
        return await self.call("getMe") or {}

    async def get_updates(self, wait: int = 30) -> dict[str, Any] | None:
        """Wait up to `wait` seconds for the next update; None when nothing came."""
        try:
            result = await self.call("getUpdates", {"timeout": wait}, http_timeout=wait + 15)
        except ZaloBotError as exc:
            if exc.code == NOTHING_NEW:
                return None
            raise
        return result if isinstance(result, dict) and result else None

    async def set_webhook(self, url: str, secret_token: str) -> Any:
        return await self.call("setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self) -> Any:
        return await self.call("deleteWebhook")

    async def get_webhook_info(self) -> dict[str, Any]:
        return await self.call("getWebhookInfo") or {}

    async def send_message(self, chat_id: str, text: str) -> dict[str, Any]:
        return await self.call("sendMessage", {"chat_id": chat_id, "text": text}) or {}

    async def send_photo(
        self, chat_id: str, photo: str, caption: str | None = None
    ) -> dict[str, Any]:
        """`photo` is a URL Zalo fetches."""
        params = {"chat_id": chat_id, "photo": photo, "caption": caption}
        return await self.call("sendPhoto", params) or {}

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> Any:
        return await self.call("sendChatAction", {"chat_id": chat_id, "action": action})
