"""A local stand-in for the Zalo Bot Platform API, served over real HTTP on 127.0.0.1.

It implements the contract in ../shared/ZALO.md and nothing more: `POST /bot<TOKEN>/<method>`
with a JSON body, the envelope `{"ok", "result", "error_code", "description"}`, getUpdates
returning ONE update per call (408 when nothing came within `timeout`), webhooks pushed with
the `X-Bot-Api-Secret-Token` header and the body `{"ok": true, "result": <update>}`, polling
and webhook excluding each other, text and captions of 1-2,000 characters, photos by URL
(fetched, as Zalo does). Simulate people with :meth:`add_text` & co., read what the bot did
in :attr:`sent`, and wait for the bot to be done with :meth:`settle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
from aiohttp import web

JSONDict = dict[str, Any]
TEXT_MAX = 2000
SECRET_HEADER = "X-Bot-Api-Secret-Token"
CHAT_ACTIONS = frozenset({"typing", "upload_photo"})


class ZaloBotAPIError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class BotSent:
    """One accepted sendMessage or sendPhoto."""

    method: str
    chat_id: str
    message_id: str
    text: str | None = None
    photo: str | None = None
    caption: str | None = None
    photo_status: int | None = None  # what fetching the photo URL answered
    photo_type: str | None = None

    @property
    def body(self) -> str:
        return self.text if self.text is not None else (self.caption or "")


class FakeZaloBotAPI:
    def __init__(
        self, token: str = "2718281828:fake-zalo-bot-secret", *, allow_http_webhook: bool = True
    ) -> None:
        self.token = token
        self.bot_id = token.split(":", 1)[0]
        self.allow_http_webhook = allow_http_webhook  # the real one wants public HTTPS
        self.sent: list[BotSent] = []
        self.calls: list[tuple[str, JSONDict]] = []
        self.chat_actions: list[tuple[str, str]] = []
        self.rejected: list[tuple[str, int, str]] = []
        self.webhook: JSONDict | None = None
        self.webhook_responses: list[int] = []
        self.max_poll = 1.0  # cap on one long poll, so tests never wait long
        self._closing = False
        self._queue: list[JSONDict] = []
        self._changed = asyncio.Event()
        self._polls_waiting = 0
        self._inflight = 0
        self._pushing = False
        self._pusher: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=4 << 20)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))

    async def stop(self) -> None:
        self._closing = True
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        self._notify()
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

    @property
    def base_url(self) -> str:
        """HOCVUSO_ZALO_BOT_API_URL: the client appends `<TOKEN>/<method>`."""
        return f"{self.url}/bot"

    # ------------------------------------------------------------------ HTTP

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    @staticmethod
    def _envelope(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        polling = method == "getUpdates"
        if not polling:
            self._inflight += 1
        try:
            if request.match_info["token"] != self.token:
                raise ZaloBotAPIError(401, "Unauthorized")
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ZaloBotAPIError(404, "Method not found")
            params: JSONDict = {}
            raw = await request.read()
            if raw.strip():
                try:
                    params = json.loads(raw)
                except ValueError:
                    raise ZaloBotAPIError(400, "Bad Request: body is not JSON") from None
                if not isinstance(params, dict):
                    raise ZaloBotAPIError(400, "Bad Request: body is not an object")
            self.calls.append((method, params))
            return self._envelope(await handler(params))
        except ZaloBotAPIError as exc:
            self.rejected.append((method, exc.code, exc.description))
            return web.json_response(
                {"ok": False, "error_code": exc.code, "description": exc.description},
                status=exc.code if exc.code >= 400 else 400,
            )
        finally:
            if not polling:
                self._inflight -= 1
            self._notify()

    # ------------------------------------------------------------------ methods

    async def _m_getMe(self, _p: JSONDict) -> JSONDict:
        return {"id": self.bot_id, "account_name": "bot.hocvuso", "account_type": "BASIC",
                "can_join_groups": False}  # fmt: skip

    async def _m_getUpdates(self, params: JSONDict) -> JSONDict:
        if self.webhook is not None:
            raise ZaloBotAPIError(409, "Conflict: a webhook is set; delete it to poll")
        wait = min(float(params.get("timeout") or 0), self.max_poll)
        deadline = time.monotonic() + wait
        self._polls_waiting += 1
        self._notify()
        try:
            while not self._queue:
                if self._closing:
                    raise ZaloBotAPIError(408, "Request timeout")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ZaloBotAPIError(408, "Request timeout")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
            return self._queue.pop(0)
        finally:
            self._polls_waiting -= 1

    async def _m_setWebhook(self, params: JSONDict) -> JSONDict:
        url, secret = params.get("url"), params.get("secret_token")
        if not isinstance(url, str) or not re.match(r"https?://", url):
            raise ZaloBotAPIError(400, "Bad Request: url is invalid")
        if url.startswith("http://") and not self.allow_http_webhook:
            raise ZaloBotAPIError(400, "Bad Request: the webhook must be HTTPS")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            raise ZaloBotAPIError(400, "Bad Request: secret_token must be 8-256 characters")
        self.webhook = {"url": url, "secret_token": secret, "updated_at": _ms()}
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_loop())
        return {"url": url, "updated_at": self.webhook["updated_at"]}

    async def _m_deleteWebhook(self, _p: JSONDict) -> JSONDict:
        self.webhook = None
        return {"url": "", "updated_at": _ms()}

    async def _m_getWebhookInfo(self, _p: JSONDict) -> JSONDict:
        hook = self.webhook or {}
        return {"url": hook.get("url", ""), "updated_at": hook.get("updated_at", 0)}

    @staticmethod
    def _chat(params: JSONDict) -> str:
        chat = params.get("chat_id")
        if not isinstance(chat, str) or not chat:
            raise ZaloBotAPIError(400, "Bad Request: chat_id is required")
        return chat

    @staticmethod
    def _text(value: Any, name: str, required: bool) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= TEXT_MAX:
            raise ZaloBotAPIError(400, f"Bad Request: {name} must be 1-{TEXT_MAX} characters")
        return value

    async def _m_sendMessage(self, params: JSONDict) -> JSONDict:
        chat = self._chat(params)
        text = self._text(params.get("text"), "text", True)
        sent = BotSent("sendMessage", chat, uuid.uuid4().hex, text=text)
        self.sent.append(sent)
        return {"message_id": sent.message_id, "date": _ms()}

    async def _m_sendPhoto(self, params: JSONDict) -> JSONDict:
        chat = self._chat(params)
        photo = params.get("photo")
        if not isinstance(photo, str) or not re.match(r"https?://", photo):
            raise ZaloBotAPIError(400, "Bad Request: photo must be a URL")
        caption = self._text(params.get("caption"), "caption", False)
        assert self._client is not None
        try:
            async with self._client.get(photo) as response:
                status, ctype = response.status, response.content_type
                await response.read()
        except aiohttp.ClientError:
            status, ctype = 0, None
        if status != 200:
            raise ZaloBotAPIError(400, "Bad Request: the photo could not be fetched")
        sent = BotSent("sendPhoto", chat, uuid.uuid4().hex, photo=photo, caption=caption,
                       photo_status=status, photo_type=ctype)  # fmt: skip
        self.sent.append(sent)
        return {"message_id": sent.message_id, "date": _ms()}

    async def _m_sendChatAction(self, params: JSONDict) -> bool:
        chat = self._chat(params)
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise ZaloBotAPIError(400, "Bad Request: unknown action")
        self.chat_actions.append((chat, action))
        return True

    # ------------------------------------------------------------------ people

    def _deliver(self, update: JSONDict) -> JSONDict:
        self._queue.append(update)
        self._notify()
        return update

    def update(self, event_name: str, user_id: str, *, name: str = "Lan",
               chat_type: str = "PRIVATE", chat_id: str | None = None,
               **message: Any) -> JSONDict:  # fmt: skip
        return {"event_name": event_name, "message": {
            "from": {"id": user_id, "display_name": name, "is_bot": False},
            "chat": {"id": chat_id or user_id, "chat_type": chat_type},
            "message_id": uuid.uuid4().hex, "date": _ms(), **message,
        }}  # fmt: skip

    def add_text(self, user_id: str, text: str, **kw: Any) -> JSONDict:
        return self._deliver(self.update("message.text.received", user_id, text=text, **kw))

    def add_image(self, user_id: str, **kw: Any) -> JSONDict:
        return self._deliver(
            self.update(
                "message.image.received", user_id, photo_url="https://example.invalid/p.jpg", **kw
            )
        )

    def add_sticker(self, user_id: str, **kw: Any) -> JSONDict:
        return self._deliver(self.update("message.sticker.received", user_id,
                                         sticker="s-1", **kw))  # fmt: skip

    def redeliver(self, update: JSONDict) -> None:
        self._deliver(update)

    # ------------------------------------------------------------------ webhook pushes

    async def _push_loop(self) -> None:
        while True:
            if not self._queue or self.webhook is None:
                await self._changed.wait()
                continue
            update = self._queue.pop(0)
            self._pushing = True
            try:
                assert self._client is not None
                hook = self.webhook
                try:
                    async with self._client.post(
                        hook["url"], json={"ok": True, "result": update},
                        headers={SECRET_HEADER: hook["secret_token"]},
                    ) as response:  # fmt: skip
                        self.webhook_responses.append(response.status)
                except aiohttp.ClientError:
                    self.webhook_responses.append(0)
            finally:
                self._pushing = False
                self._notify()

    # ------------------------------------------------------------------ reading, waiting

    def messages_to(self, chat_id: str) -> list[BotSent]:
        return [s for s in self.sent if s.chat_id == chat_id]

    def _idle(self) -> bool:
        if self._queue or self._inflight or self._pushing:
            return False
        return self.webhook is not None or self._polls_waiting > 0

    async def settle(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Wait until the bot took every update, handled it and is polling again (or, with a
        webhook, until every push was answered)."""
        deadline = time.monotonic() + timeout
        while not self._idle():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the bot did not settle; calls: {self.calls[-5:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))


def _ms() -> int:
    return int(time.time() * 1000)
