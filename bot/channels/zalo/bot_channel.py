"""The Zalo Bot Platform channel: a bot made in the Zalo app, for anyone with a token.

Long polling by default (one update per getUpdates call, 408 = nothing new); with
HOCVUSO_ZALO_BOT_WEBHOOK=on, updates arrive at `/zalo/bot/webhook` carrying the secret we
registered, and the webhook answers only after the update was handled and the replies sent.
The platform has no buttons: a reply's buttons become numbered lines, and a typed "2" (or the
label itself) resolves in the core exactly like a pressed button.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.zalo.bot_client import ZaloBotClient, ZaloBotError
from bot.channels.zalo.common import (
    BodyTooLarge,
    SendResult,
    last_with_buttons,
    parts,
    plain_text,
    read_body,
)
from bot.channels.zalo.outbox import MediaLinks
from bot.channels.zalo.parse import BOT_CHANNEL, bot_update
from bot.engine import Engine
from bot.i18n import gettext_in
from handlers.types import IncomingMessage, Kind, Reply

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/zalo/bot/webhook"
SECRET_HEADER = "X-Bot-Api-Secret-Token"


class ZaloBotChannel:
    """Owns the client and the polling task; `start()`/`stop()` follow the app's lifecycle."""

    name = BOT_CHANNEL

    def __init__(
        self,
        engine: Engine,
        client: ZaloBotClient,
        *,
        webhook: bool = False,
        webhook_secret: str | None = None,
        public_url: str | None = None,
        poll_timeout: int = 30,
        send_interval: float = 0.0,
    ) -> None:
        self.engine = engine
        self.client = client
        self.webhook = webhook
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(32)
        self.public_url = public_url
        self.poll_timeout = poll_timeout
        self.send_interval = send_interval
        self.media = MediaLinks(engine, BOT_CHANNEL)
        self._task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._last_send = 0.0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        me = await self.client.get_me()  # a wrong token stops start-up here
        if self.webhook:
            if not self.public_url:
                raise RuntimeError("HOCVUSO_PUBLIC_URL is needed for the Zalo bot webhook")
            await self.client.set_webhook(self.public_url + WEBHOOK_PATH, self.webhook_secret)
        else:
            try:  # polling and a webhook exclude each other
                await self.client.delete_webhook()
            except ZaloBotError as exc:
                log.warning("zalo-bot: could not delete the webhook: %s", exc)
            self._task = asyncio.create_task(self._poll(), name="zalo-bot-polling")
        log.info(
            "zalo-bot: connected as %s (%s)",
            me.get("account_name") or me.get("display_name") or me.get("name") or me.get("id"),
            "webhook" if self.webhook else "polling",
        )

    @property
    def healthy(self) -> bool:
        """Webhook mode, or a polling loop that is still running."""
        return self.webhook or (self._task is not None and not self._task.done())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.close()

    async def _poll(self) -> None:
        backoff = 1.0
        while True:
            try:
                update = await self.client.get_updates(self.poll_timeout)
            except (ZaloBotError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("zalo-bot: getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            msg = bot_update(update) if update is not None else None
            if msg is None:
                continue
            try:
                await self.process(msg)
            except Exception:  # one bad update must never stop the loop
                log.exception("zalo-bot: handling an update failed")

    # ------------------------------------------------------------------ inbound

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.handle_webhook)] if self.webhook else []

    async def handle_webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return web.json_response({"ok": False, "error": "unauthorized"}, status=401)
        if not secrets.compare_digest(given.encode(), self.webhook_secret.encode()):
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return web.json_response({"ok": False, "error": "too large"}, status=413)
        try:
            data = json.loads(body)
        except ValueError:
            return web.json_response({"ok": False, "error": "not json"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"ok": False, "error": "not an update"}, status=400)
        msg = bot_update(data)
        if msg is not None:
            await self.process(msg)
        return web.json_response({"ok": True})

    async def process(self, msg: IncomingMessage) -> SendResult | None:
        """Handle one message and send the replies (after the engine committed)."""
        typing = (
            asyncio.create_task(self._typing(msg.chat_id))
            if msg.is_private and msg.kind in (Kind.TEXT, Kind.BUTTON)
            else None
        )
        try:
            replies = await self.engine.handle(msg)
        except Exception:
            log.exception("zalo-bot: handling update %s failed", msg.update_id)
            replies = [Reply(gettext_in(
                self.engine.settings.default_language,
                "Sorry, something went wrong. Please try again.",
            ))]  # fmt: skip
        finally:
            if typing is not None:
                await typing
        if not replies:
            return None
        return await self.send(msg.chat_id, replies)

    async def _typing(self, chat_id: str) -> None:
        with contextlib.suppress(ZaloBotError, aiohttp.ClientError, TimeoutError):
            await self.client.send_chat_action(chat_id, "typing")

    # ------------------------------------------------------------------ outbound

    async def _throttle(self) -> None:
        """The platform's rate limits are not documented: keep sends apart."""
        if self.send_interval <= 0:
            return
        async with self._send_lock:
            wait = self._last_send + self.send_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_send = time.monotonic()

    async def send(self, chat_id: str, replies: list[Reply]) -> SendResult:
        """Send replies in order: text with numbered choices, images by URL."""
        numbered_at = last_with_buttons(replies)
        ids: list[str] = []
        try:
            for i, reply in enumerate(replies):
                pieces = parts(plain_text(reply, number=i == numbered_at))
                document = await self.media.document_url(reply)
                if document is not None:
                    pieces.append(f"📎 {reply.document_name or 'file'}\n{document}")
                image = await self.media.image_url(reply)
                if image is not None:
                    caption = pieces.pop(0) if len(pieces) == 1 else None
                    await self._throttle()
                    ids.append(_id(await self.client.send_photo(chat_id, image, caption)))
                for piece in pieces:
                    await self._throttle()
                    ids.append(_id(await self.client.send_message(chat_id, piece)))
        except ZaloBotError as exc:
            log.warning("zalo-bot: sending to %s failed: %s", chat_id, exc)
            return SendResult("failed", f"zalo error {exc.code}: {exc.description}", tuple(ids))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("zalo-bot: sending to %s failed: %r", chat_id, exc)
            return SendResult("failed", f"network: {exc!r}", tuple(ids))
        return SendResult("sent", None, tuple(ids))


def _id(result: Any) -> str:
    return str(result.get("message_id", "")) if isinstance(result, dict) else ""
