"""The Telegram channel: python-telegram-bot for the Bot API, our engine for the conversation.

Polling (default) long-polls getUpdates; webhook mode serves `/telegram/webhook` on our aiohttp
server and answers 2xx only after the update was handled and committed, so Telegram redelivers
anything a crash interrupted (and the engine drops what it already handled).

Updates are handled concurrently, one person's strictly in order (bot.channels.sequencer): each
update is queued in the order Telegram delivered it. Every Bot API call goes through aiohttp
(bot.channels.telegram.request). The message path (updates in, text replies and button answers
out) reads and writes the Bot API's JSON directly (`from_json`, `call`), because building
python-telegram-bot's objects for it cost more CPU than everything else an update needs; PTB
still does the rest (start-up, commands, webhooks, photos and documents).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any

from aiohttp import web
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ApplicationBuilder

from bot import observability as obs
from bot.channels.ratelimit import ReplyRateLimiter, SendLimiter
from bot.channels.render import split_text, to_html
from bot.channels.sequencer import KeyedSequencer
from bot.channels.telegram.convert import CHANNEL, from_json, to_incoming
from bot.channels.telegram.request import AiohttpRequest, JsonParameters, SharedSession
from bot.engine import Engine
from bot.i18n import gettext_in
from handlers.types import IncomingMessage, Kind, Reply

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_WEBHOOK_BODY = 1 << 20
TEXT_MAX = 4096
NO_PREVIEW = {"is_disabled": True}
CAPTION_MAX = 1024
COMMANDS = {
    "vi": [("menu", "Các chủ đề để học"), ("progress", "Tiến độ học của bạn"),
           ("help", "Hướng dẫn sử dụng"), ("language", "Đổi ngôn ngữ")],
    "en": [("menu", "Topics to learn"), ("progress", "Your progress"),
           ("help", "How to use the bot"), ("language", "Change language")],
}  # fmt: skip


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.label, callback_data=b.payload) for b in row]
            for row in reply.buttons
        ]
    )


class TelegramChannel:
    """Owns the PTB Application; `start()`/`stop()` follow the app's lifecycle."""

    name = CHANNEL

    def __init__(
        self,
        engine: Engine,
        token: str,
        *,
        api_url: str,
        webhook: bool = False,
        webhook_secret: str | None = None,
        public_url: str | None = None,
        poll_interval: float = 0.0,
        poll_timeout: int = 4,  # short: a stop waits for the poll in flight
        proxy: str | None = None,
        concurrency: int = 256,
        limiter: SendLimiter | None = None,
    ) -> None:
        self.engine = engine
        # The send budget shared with campaign broadcasts (replies first); None: unlimited.
        self.limiter = limiter
        self.webhook = webhook
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(32)
        self.public_url = public_url
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        # One person's updates in order, up to `concurrency` people's at the same time.
        self.sequencer = KeyedSequencer(concurrency=concurrency)
        http = SharedSession(connection_pool_size=concurrency + 1, proxy=proxy)
        self._updates_request = AiohttpRequest(http)
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder().token(token).base_url(api_url).job_queue(None)
            .base_file_url(api_url.replace("/bot", "/file/bot"))
            .request(AiohttpRequest(http)).get_updates_request(self._updates_request)
            .updater(None)  # polling is ours (_poll)
        )  # fmt: skip
        if limiter is not None:
            builder = builder.rate_limiter(ReplyRateLimiter(limiter))
        self.app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._poller: asyncio.Task[None] | None = None
        self._offset = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.app.initialize()
        await self._set_commands()
        if self.webhook:
            if not self.public_url:
                raise RuntimeError("HOCVUSO_PUBLIC_URL is needed for the Telegram webhook")
            await self.app.bot.set_webhook(
                url=self.public_url + WEBHOOK_PATH, secret_token=self.webhook_secret,
                allowed_updates=Update.ALL_TYPES,
            )  # fmt: skip
            await self.app.start()
        else:
            await self.app.bot.delete_webhook()
            await self.app.start()
            self._poller = asyncio.create_task(self._poll(), name="telegram:getUpdates")
        me = self.app.bot.bot
        log.info(
            "telegram: connected as @%s (%s)",
            me.username,
            "webhook" if self.webhook else "polling",
        )

    @property
    def healthy(self) -> bool:
        """Started, and (in polling mode) still fetching updates."""
        if not self.app.running:
            return False
        return self.webhook or (self._poller is not None and not self._poller.done())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
            with contextlib.suppress(TelegramError):  # confirm what was fetched, as PTB does
                await self._get_updates(wait=0, limit=1)
        if self.app.running:
            await self.app.stop()
        await self.sequencer.join()  # updates already queued are handled, not dropped
        await self.app.shutdown()

    async def _set_commands(self) -> None:
        try:
            for lang, cmds in COMMANDS.items():
                await self.app.bot.set_my_commands(
                    [BotCommand(c, d) for c, d in cmds],
                    language_code=None if lang == "vi" else lang,
                )
        except TelegramError as exc:  # cosmetic: never stop start-up for it
            log.warning("telegram: could not set the command list: %s", exc)

    # ------------------------------------------------------------------ inbound

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.handle_webhook)] if self.webhook else []

    async def handle_webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not secrets.compare_digest(given.encode(), self.webhook_secret.encode()):
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        if request.content_length is not None and request.content_length > MAX_WEBHOOK_BODY:
            return web.json_response({"ok": False, "error": "too large"}, status=413)
        try:
            body = await request.content.read(MAX_WEBHOOK_BODY + 1)
            if len(body) > MAX_WEBHOOK_BODY:
                return web.json_response({"ok": False, "error": "too large"}, status=413)
            msg, callback_id = from_json(json.loads(body))
        except ValueError:  # also what json.loads raises
            return web.json_response({"ok": False, "error": "bad update"}, status=400)
        if msg is not None:  # an exception here -> 500 -> Telegram delivers again
            await self._submit(msg, callback_id, apologise=False)
        return web.json_response({"ok": True})

    async def _get_updates(self, *, wait: float, limit: int = 100) -> Any:
        """getUpdates: Telegram holds the call up to `wait` seconds while there is none."""
        bot = self.app.bot
        parameters = {"offset": self._offset, "timeout": wait, "limit": limit,
                      "allowed_updates": Update.ALL_TYPES}  # fmt: skip
        return await self._updates_request.post(
            f"{bot.base_url}/getUpdates", JsonParameters(parameters),
            read_timeout=wait + (self._updates_request.read_timeout or 0),
        )  # fmt: skip

    async def _poll(self) -> None:
        """Long polling: each update is queued in the order Telegram delivered it (its offset is
        confirmed by the next call, as with PTB's Updater); network trouble is retried with a
        growing pause."""
        pause = 0.0
        while True:
            try:
                updates = await self._get_updates(wait=self.poll_timeout)
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except (InvalidToken, Conflict, NetworkError) as exc:  # TimedOut is a NetworkError
                pause = min(max(1.0, pause * 2), 30.0)
                log.warning("telegram: getUpdates failed (%s); again in %.0f s", exc, pause)
                await asyncio.sleep(pause)
                continue
            pause = 0.0
            for data in updates:
                self._offset = max(self._offset, int(data.get("update_id", -1)) + 1)
                try:
                    msg, callback_id = from_json(data)
                except ValueError:
                    log.warning("telegram: update %s is not understood", data.get("update_id"))
                    continue
                if msg is None:
                    continue
                await self.sequencer.room()  # back-pressure: stop taking updates while swamped
                self._submit(msg, callback_id, apologise=True).add_done_callback(_log_failure)
            if self.poll_interval:
                await asyncio.sleep(self.poll_interval)

    async def process(self, update: Update, *, apologise: bool = False) -> None:
        """Handle one update after the earlier ones of the same person; returns once its
        replies were sent."""
        msg = to_incoming(update)
        if msg is not None:
            query = update.callback_query
            await self._submit(msg, query.id if query else None, apologise=apologise)

    def _submit(
        self, msg: IncomingMessage, callback_id: str | None, *, apologise: bool
    ) -> asyncio.Future[None]:
        job = lambda: self._handle(msg, callback_id, apologise)  # noqa: E731
        return self.sequencer.submit(msg.user_id, job)

    async def _handle(self, msg: IncomingMessage, callback_id: str | None,
                      apologise: bool) -> None:  # fmt: skip
        # The button's spinner is stopped along with the first reply, not before the engine:
        # one round trip less for every pressed button, and the replies go out first.
        answering = None
        try:
            try:
                replies = await self.engine.handle(msg)
            except Exception:
                log.exception("telegram: handling update %s failed", msg.update_id)
                if not apologise:
                    raise
                replies = [
                    Reply(
                        gettext_in(
                            self.engine.settings.default_language,
                            "Sorry, something went wrong. Please try again.",
                        )
                    )
                ]
            if callback_id is not None:
                answering = asyncio.create_task(self._answer(callback_id))
            if msg.kind == Kind.UNFOLLOW:
                return
            await self.send(msg.chat_id, replies)
        finally:
            if answering is not None:
                await answering

    async def _answer(self, callback_id: str) -> None:
        with contextlib.suppress(TelegramError):  # the spinner times out on its own
            await self.call("answerCallbackQuery", {"callback_query_id": callback_id})

    # ------------------------------------------------------------------ outbound

    async def call(self, endpoint: str, fields: dict[str, Any]) -> Any:
        """A Bot API call with plain JSON parameters: the same request object, rate limiter and
        error handling (Forbidden, RetryAfter ...) as PTB's methods, without building the
        TelegramObjects of the request and of the answer (a third of a send's CPU)."""
        bot = self.app.bot
        request_data = JsonParameters(fields)

        async def post(*_args: Any, **_kwargs: Any) -> Any:
            return await bot.request.post(f"{bot.base_url}/{endpoint}", request_data)

        if bot.rate_limiter is None:
            return await post()
        return await bot.rate_limiter.process_request(
            callback=post, args=(), kwargs={}, endpoint=endpoint, data=fields,
            rate_limit_args=None,
        )  # fmt: skip

    async def send(self, chat_id: str | int, replies: list[Reply]) -> None:
        """Send replies in order; a person who blocked the bot is marked by the engine later."""
        bot = self.app.bot
        for reply in replies:
            html = to_html(reply.text)
            try:
                if reply.document is None and reply.image is None:
                    parts = split_text(html, TEXT_MAX)
                    for i, part in enumerate(parts):
                        fields = {"chat_id": chat_id, "text": part, "parse_mode": "HTML",
                                  "link_preview_options": NO_PREVIEW}  # fmt: skip
                        if i == len(parts) - 1 and reply.buttons:
                            fields["reply_markup"] = keyboard_object(reply)
                        await self.call("sendMessage", fields)
                    obs.SENDS.labels(CHANNEL, "sent").inc()
                    continue
                markup = keyboard(reply)
                if reply.document is not None:
                    await bot.send_document(
                        chat_id,
                        document=reply.document,
                        filename=reply.document_name,
                        caption=html[:CAPTION_MAX] or None,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup,
                    )
                elif reply.image is not None and len(html) <= CAPTION_MAX:
                    await bot.send_photo(
                        chat_id,
                        photo=reply.image.read_bytes(),
                        caption=html,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup,
                    )
                else:
                    if reply.image is not None:
                        await bot.send_photo(chat_id, photo=reply.image.read_bytes())
                    parts = split_text(html, TEXT_MAX)
                    for i, part in enumerate(parts):
                        await bot.send_message(
                            chat_id, part, parse_mode=ParseMode.HTML,
                            reply_markup=markup if i == len(parts) - 1 else None,
                            link_preview_options=LinkPreviewOptions(is_disabled=True),
                        )  # fmt: skip
            except Forbidden:
                log.info("telegram: chat %s blocked the bot", chat_id)
                obs.SENDS.labels(CHANNEL, "blocked").inc()
                return
            obs.SENDS.labels(CHANNEL, "sent").inc()


def keyboard_object(reply: Reply) -> dict[str, Any]:
    """`keyboard(reply)` as the Bot API reads it, built directly."""
    return {"inline_keyboard": [[{"text": b.label, "callback_data": b.payload} for b in row]
                                for row in reply.buttons]}  # fmt: skip


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("telegram: an update could not be handled", exc_info=future.exception())


def _seconds(value: object) -> float:
    """RetryAfter.retry_after: an int, or a timedelta with PTB_TIMEDELTA."""
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]
