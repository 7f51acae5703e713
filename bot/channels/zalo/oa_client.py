"""A thin async client for the Zalo Official Account Open API v3 and its OAuth server.

Sending: `POST {api}/v3.0/oa/message/cs` with header `access_token` (not Bearer). Zalo answers
HTTP 200 with `{"error": 0, "data": {"message_id"}}` or a non-zero `error` (-216: invalid
access token). Refreshing: `POST {oauth}/v4/oa/access_token` with header `secret_key` (the app
secret) and a form; the answer is a new pair, the refresh token single-use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.channels.http import LazySession

INVALID_TOKEN = -216


class ZaloOAError(Exception):
    """A non-zero `error` in Zalo's answer (or an answer that is not JSON)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


class ZaloOAClient(LazySession):
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        api_url: str = "https://openapi.zalo.me",
        oauth_url: str = "https://oauth.zaloapp.com",
        timeout: float = 20.0,
    ) -> None:
        self.app_id = app_id
        self._app_secret = app_secret
        self.api_url = api_url.rstrip("/")
        self.oauth_url = oauth_url.rstrip("/")
        super().__init__(timeout)

    @staticmethod
    async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
        raw = await response.read()
        try:
            data = json.loads(raw)
        except ValueError:
            raise ZaloOAError(-response.status, f"HTTP {response.status}, not JSON") from None
        if not isinstance(data, dict):
            raise ZaloOAError(-response.status, f"HTTP {response.status}, not an object")
        return data

    async def send_cs(self, access_token: str, user_id: str, message: dict[str, Any]) -> str:
        """Send one consultation message; its message_id."""
        body = {"recipient": {"user_id": user_id}, "message": message}
        async with self.session.post(
            f"{self.api_url}/v3.0/oa/message/cs", json=body,
            headers={"access_token": access_token},
        ) as response:  # fmt: skip
            data = await self._json(response)
        code = data.get("error", 0)
        if code != 0:
            raise ZaloOAError(int(code) if isinstance(code, int) else -1, str(data.get("message")))
        return str((data.get("data") or {}).get("message_id", ""))

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Trade the (single-use) refresh token for a new pair."""
        form = {"app_id": self.app_id, "grant_type": "refresh_token",
                "refresh_token": refresh_token}  # fmt: skip
        async with self.session.post(
            f"{self.oauth_url}/v4/oa/access_token", data=form,
            headers={"secret_key": self._app_secret},
        ) as response:  # fmt: skip
            data = await self._json(response)
        access, refresh = data.get("access_token"), data.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str) or not access:
            code = data.get("error")
            raise ZaloOAError(
                int(code) if isinstance(code, int) else -1,
                str(data.get("error_description") or data.get("error_name") or "no token"),
            )
        try:
            expires_in = int(data.get("expires_in") or 90000)
        except (TypeError, ValueError):
            expires_in = 90000
        return TokenPair(access, refresh, expires_in)
