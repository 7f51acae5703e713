"""The Zalo Official Account channel (Open API v3), the way state bodies and mass
organisations reach people.

Inbound: Zalo posts signed events to `/zalo/oa/webhook` and retries for hours unless it gets
200 within about 2 s. So the webhook checks the signature over the raw bytes, stores the event
(its msg_id is the deduplication key, claimed in the same INSERT) and answers 200; a background
task then runs the conversation and sends the replies. Events stored but not processed (the
process stopped in between) are processed at the next start.

Outbound: consultation messages, a reply's buttons as up to 5 `oa.query.hide` buttons (their
payload comes back as the person's text), more than 5 as numbered lines. The OA may only
write within the messaging window after the person's last message: a send outside it is not
attempted and comes back as skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select, update

from bot.channels.zalo.common import (
    BodyTooLarge,
    SendResult,
    last_with_buttons,
    parts,
    plain_text,
    read_body,
)
from bot.channels.zalo.oa_client import INVALID_TOKEN, ZaloOAClient, ZaloOAError
from bot.channels.zalo.oa_tokens import OATokenStore
from bot.channels.zalo.outbox import MediaLinks
from bot.channels.zalo.parse import BUTTON_PREFIX, OA_CHANNEL, OAEvent, oa_event
from bot.db.models import Identity, ZaloOAInbox
from bot.engine import Engine, insert_ignore
from bot.i18n import gettext_in
from handlers.types import IncomingMessage, Reply

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/zalo/oa/webhook"
SIGNATURE_HEADER = "X-ZEvent-Signature"
MAX_BUTTONS = 5
MAX_ATTEMPTS = 3  # an event that was being processed at 3 crashes in a row is given up


def signature(app_id: str, body: bytes, timestamp: str, key: str) -> str:
    """Zalo's `mac`: plain SHA-256 (not HMAC) of app_id + raw body + timestamp + key."""
    return hashlib.sha256(app_id.encode() + body + timestamp.encode() + key.encode()).hexdigest()


def window_reason(identity: Identity | None, now: datetime, window: timedelta) -> str | None:
    """Why the OA may not write to this person now, or None if it may."""
    if identity is None:
        return "never wrote to the OA"
    if identity.unreachable_at is not None:
        return "unfollowed the OA"
    since = now - identity.last_inbound_at
    if since > window:
        hours = int(since.total_seconds() // 3600)
        return (
            f"outside the messaging window: last message {hours} h ago "
            f"(window {int(window.total_seconds() // 3600)} h)"
        )
    return None


class ZaloOAChannel:
    name = OA_CHANNEL

    def __init__(
        self,
        engine: Engine,
        client: ZaloOAClient,
        tokens: OATokenStore,
        *,
        signature_key: str,
        window: timedelta = timedelta(hours=168),
        window_error: int = -230,
        seed: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.engine = engine
        self.client = client
        self.tokens = tokens
        self.app_id = client.app_id
        self._key = signature_key
        self.window = window
        self.window_error = window_error
        self._seed = seed
        self.media = MediaLinks(engine, OA_CHANNEL)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tails: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.tokens.seed(*self._seed)
        await self.tokens.access_token()  # no stored pair and none to seed: stop here
        self._spawn(None, self._process_stored)
        log.info("zalo-oa: webhook at %s", WEBHOOK_PATH)

    async def stop(self) -> None:
        if self._tasks:  # give running work a moment to finish, then cancel what is left
            _done, pending = await asyncio.wait(list(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.client.close()

    async def drain(self) -> None:
        """Wait until every stored event was processed (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, user_id: str | None, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` in the background; one person's events run one after the other."""
        previous = self._tails.get(user_id) if user_id is not None else None

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            await work()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        if user_id is not None:
            self._tails[user_id] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if user_id is not None and self._tails.get(user_id) is t:
                del self._tails[user_id]
            if not t.cancelled() and t.exception() is not None:
                log.error("zalo-oa: background work failed", exc_info=t.exception())

        task.add_done_callback(done)

    # ------------------------------------------------------------------ inbound

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.handle_webhook)]

    def verify(self, body: bytes, data: dict[str, Any], header: str) -> bool:
        given = header.strip()
        if not given.startswith("mac="):
            return False
        timestamp = data.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, str | int):
            return False
        expected = signature(self.app_id, body, str(timestamp), self._key)
        return secrets.compare_digest(expected.encode(), given[4:].strip().lower().encode())

    async def handle_webhook(self, request: web.Request) -> web.Response:
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return web.json_response({"error": "too large"}, status=413)
        try:
            data = json.loads(body)
        except ValueError:
            return web.json_response({"error": "not json"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"error": "not an event"}, status=400)
        if not self.verify(body, data, header):
            return web.json_response({"error": "bad signature"}, status=403)
        event = oa_event(data)
        if event is None:
            return web.json_response({"ok": True, "ignored": True})
        row_id = await self._store(event, body)
        if row_id is not None:
            message = event.message
            self._spawn(message.user_id, lambda: self._process(row_id, message))
        return web.json_response({"ok": True})

    async def _store(self, event: OAEvent, body: bytes) -> int | None:
        """Store the event and claim its key in one INSERT; None if it was seen before."""
        async with self.engine.sessionmaker() as session, session.begin():
            stmt = insert_ignore(
                session, ZaloOAInbox, dedup_key=event.key[:128], event_name=event.name,
                raw=body.decode("utf-8", "replace"), received_at=self.engine.clock(),
                processed_at=None, attempts=0,
            ).returning(ZaloOAInbox.id)  # fmt: skip
            return (await session.execute(stmt)).scalar_one_or_none()

    async def _process(self, row_id: int, message: IncomingMessage) -> None:
        try:
            try:
                replies = await self.engine.handle(message)
            except Exception:
                log.exception("zalo-oa: handling event %s failed", message.update_id)
                replies = [Reply(gettext_in(
                    self.engine.settings.default_language,
                    "Sorry, something went wrong. Please try again.",
                ))]  # fmt: skip
            if replies:
                result = await self.send(message.user_id, replies)
                if not result.ok:
                    log.warning("zalo-oa: reply to %s %s: %s", message.user_id, result.status,
                                result.reason)  # fmt: skip
        finally:
            await self._mark_processed(row_id)

    async def _mark_processed(self, row_id: int) -> None:
        async with self.engine.sessionmaker() as session, session.begin():
            await session.execute(
                update(ZaloOAInbox).where(ZaloOAInbox.id == row_id)
                .values(processed_at=self.engine.clock(), raw=None)
            )  # fmt: skip

    async def _process_stored(self) -> None:
        """Process events stored before a stop and never processed (in arrival order)."""
        async with self.engine.sessionmaker() as session, session.begin():
            rows = (await session.execute(
                select(ZaloOAInbox.id, ZaloOAInbox.raw, ZaloOAInbox.attempts)
                .where(ZaloOAInbox.processed_at.is_(None)).order_by(ZaloOAInbox.id)
            )).all()  # fmt: skip
            if rows:
                await session.execute(
                    update(ZaloOAInbox).where(ZaloOAInbox.id.in_([r.id for r in rows]))
                    .values(attempts=ZaloOAInbox.attempts + 1)
                )  # fmt: skip
        for row in rows:
            event = None
            if row.attempts + 1 <= MAX_ATTEMPTS:
                with contextlib.suppress(ValueError, TypeError):
                    event = oa_event(json.loads(row.raw or ""))
            else:
                log.error("zalo-oa: giving up stored event %s after %d attempts", row.id,
                          row.attempts)  # fmt: skip
            if event is None:
                await self._mark_processed(row.id)
                continue
            message, row_id = event.message, row.id
            self._spawn(message.user_id, lambda m=message, r=row_id: self._process(r, m))
        if rows:
            log.info("zalo-oa: %d stored event(s) taken up again", len(rows))

    # ------------------------------------------------------------------ outbound

    async def send(self, user_id: str, replies: list[Reply]) -> SendResult:
        """Send replies to a follower, if the messaging window allows it."""
        now = self.engine.clock()
        async with self.engine.sessionmaker() as session:
            identity = await session.scalar(select(Identity).where(
                Identity.channel == OA_CHANNEL, Identity.external_id == user_id))  # fmt: skip
        reason = window_reason(identity, now, self.window)
        if reason is not None:
            log.info("zalo-oa: not writing to %s: %s", user_id, reason)
            return SendResult("skipped", reason)
        ids: list[str] = []
        try:
            for message in await self.render(replies):
                ids.append(await self._post(user_id, message))
        except ZaloOAError as exc:
            if exc.code == self.window_error:
                why = f"outside the messaging window (Zalo answered {exc.code})"
                return SendResult("skipped", why, tuple(ids))
            return SendResult("failed", f"zalo error {exc.code}: {exc.message}", tuple(ids))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult("failed", f"network: {exc!r}", tuple(ids))
        return SendResult("sent", None, tuple(ids))

    async def _post(self, user_id: str, message: dict[str, Any]) -> str:
        """Send one message; on -216 (token expired or revoked) refresh once and resend."""
        token = await self.tokens.access_token()
        try:
            return await self.client.send_cs(token, user_id, message)
        except ZaloOAError as exc:
            if exc.code != INVALID_TOKEN:
                raise
        token = await self.tokens.refresh(stale=token)
        return await self.client.send_cs(token, user_id, message)

    async def render(self, replies: list[Reply]) -> list[dict[str, Any]]:
        """Neutral replies as OA consultation messages."""
        numbered_at = last_with_buttons(replies)
        out: list[dict[str, Any]] = []
        for i, reply in enumerate(replies):
            image = await self.media.image_url(reply)
            if image is not None:
                out.append({"attachment": {"type": "template", "payload": {
                    "template_type": "media",
                    "elements": [{"media_type": "image", "url": image}],
                }}})  # fmt: skip
            buttons = reply.flat_buttons
            as_buttons = 0 < len(buttons) <= MAX_BUTTONS
            pieces = parts(plain_text(reply, number=i == numbered_at and not as_buttons))
            document = await self.media.document_url(reply)
            if document is not None:
                pieces.append(f"📎 {reply.document_name or 'file'}\n{document}")
            if as_buttons and not pieces:
                pieces = ["👇"]
            for j, piece in enumerate(pieces):
                message: dict[str, Any] = {"text": piece}
                if as_buttons and j == len(pieces) - 1:
                    message["attachment"] = {"type": "template", "payload": {"buttons": [
                        {"type": "oa.query.hide", "title": b.label,
                         "payload": BUTTON_PREFIX + b.payload}
                        for b in buttons
                    ]}}  # fmt: skip
                out.append(message)
        return out
