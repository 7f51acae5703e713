"""A local stand-in for the Zalo Official Account Open API v3 and its OAuth server, served
over real HTTP on 127.0.0.1 (point both HOCVUSO_ZALO_OA_API_URL and _OAUTH_URL at it).

The contract of ../shared/ZALO.md and nothing more:
- `POST /v3.0/oa/message/cs`, header `access_token`; HTTP 200 with `{"error": 0, "message":
  "Success", "data": {"message_id"}}` or a non-zero error: -216 for an unknown or expired
  access token, -230 outside the messaging window (7 days after the person's last message);
  text of at most 2,000 characters; at most 5 buttons (oa.query.hide / .show, oa.open.url,
  oa.open.phone); images by URL in a media template (fetched, as Zalo does).
- `POST /v4/oa/access_token`, header `secret_key` = the app secret, form `app_id`,
  `grant_type=refresh_token`, `refresh_token`: a new pair; the refresh token is single-use
  (reuse is refused) and the access token lives 25 h.
- Webhook events pushed to :attr:`webhook_url`, signed `X-ZEvent-Signature: mac=<sha256 of
  app_id + body + timestamp + secret key>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import aiohttp
from aiohttp import web

JSONDict = dict[str, Any]
TEXT_MAX = 2000
BUTTON_TYPES = frozenset({"oa.query.hide", "oa.query.show", "oa.open.url", "oa.open.phone"})
INVALID_TOKEN = -216
OUTSIDE_WINDOW = -230


@dataclass
class OASent:
    """One accepted consultation message."""

    user_id: str
    message_id: str
    text: str | None
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (title, payload)
    image_url: str | None = None
    image_status: int | None = None
    access_token: str = ""


def mac(app_id: str, body: bytes, timestamp: str, key: str) -> str:
    return hashlib.sha256(app_id.encode() + body + timestamp.encode() + key.encode()).hexdigest()


class FakeZaloOA:
    def __init__(
        self,
        *,
        app_id: str = "3141592653",
        app_secret: str = "fake-app-secret",
        secret_key: str = "fake-oa-secret-key",
        access_token: str = "AT-initial",
        refresh_token: str = "RT-initial",
        oa_id: str = "OA-100",
        window: timedelta = timedelta(days=7),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.secret_key = secret_key
        self.oa_id = oa_id
        self.window = window
        self.clock = clock or (lambda: datetime.now(UTC))
        self.access_tokens: dict[str, datetime] = {
            access_token: self.clock() + timedelta(hours=25)
        }
        self.refresh_tokens: set[str] = {refresh_token}
        self.spent_refresh_tokens: set[str] = set()
        self.refresh_calls = 0  # successful refreshes
        self.refresh_refused = 0
        self.refresh_latency = 0.0  # widen races in tests
        self.sent: list[OASent] = []
        self.errors: list[tuple[str, int]] = []  # (user_id or "", error) of refused sends
        self.last_interaction: dict[str, datetime] = {}
        self.webhook_url: str | None = None
        self.webhook_responses: list[int] = []
        self._n = 0
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v3.0/oa/message/cs", self._send_cs)
        app.router.add_post("/v4/oa/access_token", self._access_token)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far now answers -216."""
        self.access_tokens.clear()

    # ------------------------------------------------------------------ OAuth

    async def _access_token(self, request: web.Request) -> web.Response:
        form = await request.post()

        def refuse(code: int, name: str) -> web.Response:
            self.refresh_refused += 1
            return web.json_response({"error": code, "error_name": name,
                                      "error_description": name})  # fmt: skip

        if request.headers.get("secret_key") != self.app_secret:
            return refuse(-14003, "Invalid secret key")
        if form.get("app_id") != self.app_id:
            return refuse(-14002, "Invalid app_id")
        if form.get("grant_type") != "refresh_token":
            return refuse(-14004, "Invalid grant_type")
        token = str(form.get("refresh_token", ""))
        if token not in self.refresh_tokens:
            return refuse(-14014, "Invalid refresh token")
        self.refresh_tokens.discard(token)  # single-use: the old one is spent right away
        self.spent_refresh_tokens.add(token)
        if self.refresh_latency:
            await asyncio.sleep(self.refresh_latency)
        self._n += 1
        access = f"AT-{self._n}-{uuid.uuid4().hex[:8]}"
        refresh = f"RT-{self._n}-{uuid.uuid4().hex}"
        self.access_tokens[access] = self.clock() + timedelta(hours=25)
        self.refresh_tokens.add(refresh)
        self.refresh_calls += 1
        return web.json_response(
            {"access_token": access, "refresh_token": refresh, "expires_in": "90000"}
        )

    # ------------------------------------------------------------------ sending

    async def _send_cs(self, request: web.Request) -> web.Response:
        def error(code: int, message: str, user: str = "") -> web.Response:
            self.errors.append((user, code))
            return web.json_response({"error": code, "message": message})

        token = request.headers.get("access_token", "")
        expiry = self.access_tokens.get(token)
        if expiry is None or expiry <= self.clock():
            return error(INVALID_TOKEN, "Access token is invalid")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return error(-201, "Body is not JSON")
        user = str((body.get("recipient") or {}).get("user_id") or "")
        message = body.get("message")
        if not user or not isinstance(message, dict):
            return error(-201, "Parameters invalid", user)
        last = self.last_interaction.get(user)
        if last is None or self.clock() - last > self.window:
            return error(OUTSIDE_WINDOW, "User has not interacted with the OA recently", user)
        text = message.get("text")
        if text is not None and (not isinstance(text, str) or not 0 < len(text) <= TEXT_MAX):
            return error(-201, f"text must be 1-{TEXT_MAX} characters", user)
        buttons: list[tuple[str, str]] = []
        image_url = image_status = None
        attachment = message.get("attachment")
        if attachment is not None:
            payload = (attachment or {}).get("payload") or {}
            if attachment.get("type") != "template":
                return error(-201, "attachment type must be template", user)
            if payload.get("template_type") == "media":
                element = (payload.get("elements") or [{}])[0]
                image_url = element.get("url")
                if element.get("media_type") != "image" or not isinstance(image_url, str):
                    return error(-201, "media element invalid", user)
                assert self._client is not None
                try:
                    async with self._client.get(image_url) as response:
                        image_status = response.status
                        await response.read()
                except aiohttp.ClientError:
                    image_status = 0
                if image_status != 200:
                    return error(-201, "image could not be fetched", user)
            else:
                raw_buttons = payload.get("buttons")
                if not isinstance(raw_buttons, list) or not 1 <= len(raw_buttons) <= 5:
                    return error(-201, "1 to 5 buttons", user)
                for b in raw_buttons:
                    if b.get("type") not in BUTTON_TYPES or not b.get("title"):
                        return error(-201, "button invalid", user)
                    buttons.append((str(b["title"]), str(b.get("payload", ""))))
        elif text is None:
            return error(-201, "message is empty", user)
        sent = OASent(user, uuid.uuid4().hex, text, buttons, image_url, image_status, token)
        self.sent.append(sent)
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {"message_id": sent.message_id, "user_id": user},
            }
        )

    def messages_to(self, user_id: str) -> list[OASent]:
        return [s for s in self.sent if s.user_id == user_id]

    # ------------------------------------------------------------------ webhook events

    def event(self, name: str, user_id: str, **extra: Any) -> bytes:
        """The raw body of an event the person `user_id` caused."""
        self._n += 1
        now = self.clock()
        body: JSONDict = {
            "app_id": self.app_id, "user_id_by_app": f"app-{user_id}", "event_name": name,
            "timestamp": str(int(now.timestamp() * 1000)),
        }  # fmt: skip
        if name in ("follow", "unfollow"):
            body.update(oa_id=self.oa_id, follower={"id": user_id}, source="oa_profile")
        else:
            body.update(sender={"id": user_id}, recipient={"id": self.oa_id})
        body.update(extra)
        self.last_interaction[user_id] = now
        return json.dumps(body, ensure_ascii=False).encode()

    def sign(self, body: bytes) -> str:
        timestamp = str(json.loads(body)["timestamp"])
        return "mac=" + mac(self.app_id, body, timestamp, self.secret_key)

    async def push(self, body: bytes, *, signature: str | None = "auto",
                   content_type: str = "application/json") -> int:  # fmt: skip
        """POST a raw body to the webhook; `signature=None` leaves the header out."""
        assert self.webhook_url and self._client is not None
        headers = {"Content-Type": content_type}
        if signature == "auto":
            signature = self.sign(body)
        if signature is not None:
            headers["X-ZEvent-Signature"] = signature
        async with self._client.post(self.webhook_url, data=body, headers=headers) as response:
            await response.read()
            self.webhook_responses.append(response.status)
            return response.status

    def text_event(self, user_id: str, text: str) -> bytes:
        msg_id = uuid.uuid4().hex
        return self.event("user_send_text", user_id, message={"text": text, "msg_id": msg_id})

    async def send_text(self, user_id: str, text: str) -> int:
        return await self.push(self.text_event(user_id, text))

    async def press(self, user_id: str, payload: str) -> int:
        """Press an oa.query.hide button: its payload comes back as the person's text."""
        return await self.send_text(user_id, payload)

    async def follow(self, user_id: str) -> int:
        return await self.push(self.event("follow", user_id))

    async def unfollow(self, user_id: str) -> int:
        return await self.push(self.event("unfollow", user_id))

    async def send_sticker(self, user_id: str) -> int:
        return await self.push(
            self.event(
                "user_send_sticker",
                user_id,
                message={"msg_id": uuid.uuid4().hex, "attachments": [{"type": "sticker"}]},
            )
        )
