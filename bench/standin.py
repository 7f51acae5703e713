"""A lightweight Bot API stand-in for benchmarks: `https://api.telegram.org/bot<TOKEN>/<method>`
over real HTTP on 127.0.0.1, with a configurable network round trip.

tests/fakes/telegram_api.py validates every detail for tests (HTML entities, rate limits,
deep copies of every message); at thousands of requests a second that bookkeeping would make the
stand-in, not the bot, the bottleneck. This one follows the same contract (form, JSON and
multipart bodies; `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description"}`
with the HTTP status equal to the error code; getUpdates long polling with `offset`, `limit`
and `timeout`; one long poll at a time) and keeps only what a load generator needs.

The round trip is modelled as half on the way in (before the request is handled, so a message
counts as delivered half a round trip after the bot sent it) and half on the way back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

JSONDict = dict[str, Any]
#: sendMessage & co.: the callback gets (chat_id, message dict as returned, arrival time).
SendHook = Callable[[int, JSONDict, float], None]

_TAG = re.compile(r"<[^>]+>")
_COMPLEX = frozenset({"reply_markup", "link_preview_options", "allowed_updates", "commands",
                      "scope", "reply_parameters", "entities", "caption_entities"})  # fmt: skip


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


class StandIn:
    """The Bot API subset both benchmark bots use, with a round-trip delay of `rtt` seconds."""

    def __init__(self, token: str, *, rtt: float = 0.08, on_send: SendHook | None = None) -> None:
        self.token = token
        self.rtt = rtt
        self.on_send = on_send
        bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSONDict = {"id": bot_id, "is_bot": True, "first_name": "Bench Bot",
                                   "username": "bench_bot"}  # fmt: skip
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.get_updates_calls = 0
        self._pending: deque[JSONDict] = deque()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._poll_generation = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._handlers: dict[str, Callable[[JSONDict], Any]] = {
            "getme": self._get_me, "getupdates": self._get_updates,
            "deletewebhook": self._true, "setmycommands": self._true,
            "deletemycommands": self._true, "setmydescription": self._true,
            "sendmessage": self._send_message, "sendphoto": self._send_media,
            "senddocument": self._send_media, "answercallbackquery": self._true,
            "sendchataction": self._true, "editmessagetext": self._edit,
            "editmessagereplymarkup": self._edit, "getwebhookinfo": self._webhook_info,
            "close": self._true, "logout": self._true,
        }  # fmt: skip

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._poll_generation += 1
        self._wakeup.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def reset(self) -> None:
        """Forget queued updates and counters between two bots."""
        self._pending.clear()
        self.requests = 0
        self.errors.clear()
        self.get_updates_calls = 0

    # ------------------------------------------------------------------ updates

    def push(self, update: JSONDict) -> int:
        """Queue an update (its `update_id` is assigned here) and wake a waiting long poll."""
        update_id = next(self._update_ids)
        update["update_id"] = update_id
        self._pending.append(update)
        self._wakeup.set()
        return update_id

    def text_update(self, user: JSONDict, text: str) -> JSONDict:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        message: JSONDict = {"message_id": next(self._message_ids), "from": user, "chat": chat,
                             "date": int(time.time()), "text": text}  # fmt: skip
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(text.split(" ", 1)[0])}]  # fmt: skip
        return {"message": message}

    def callback_update(self, user: JSONDict, data: str, message: JSONDict) -> JSONDict:
        """A pressed inline button of `message` (a message the bot sent, as returned)."""
        return {"callback_query": {
            "id": str(next(self._message_ids)), "from": user, "message": message,
            "chat_instance": str(user["id"]), "data": data,
        }}  # fmt: skip

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        half = self.rtt / 2
        if half:
            await asyncio.sleep(half)  # the request on the wire
        method = request.match_info["method"].lower()
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._handlers.get(method)
            if handler is None:
                raise ApiError(404, "Not Found")
            params = await _params(request)
            self.requests += 1
            result = await handler(params)
            body: JSONDict = {"ok": True, "result": result}
            status = 200
        except ApiError as exc:
            self.errors[exc.description] = self.errors.get(exc.description, 0) + 1
            body = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            status = exc.code
        if half and method != "getupdates":  # a long poll's answer leaves when it is ready
            await asyncio.sleep(half)  # the answer on the wire
        return web.Response(body=json.dumps(body).encode(), status=status,
                            content_type="application/json")  # fmt: skip

    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}  # fmt: skip

    async def _webhook_info(self, params: JSONDict) -> JSONDict:
        return {"url": "", "has_custom_certificate": False,
                "pending_update_count": len(self._pending)}  # fmt: skip

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        self.get_updates_calls += 1
        offset = int(params.get("offset") or 0)
        limit = min(100, max(1, int(params.get("limit") or 100)))
        timeout = float(params.get("timeout") or 0)
        while self._pending and offset and self._pending[0]["update_id"] < offset:
            self._pending.popleft()  # confirmed
        self._poll_generation += 1
        generation = self._poll_generation
        self._wakeup.set()  # a newer poll ends an older one, as on Telegram
        deadline = time.monotonic() + timeout
        while not self._pending:
            self._wakeup.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request")
        batch = list(itertools.islice(self._pending, limit))
        if self.rtt:
            await asyncio.sleep(self.rtt / 2)  # the answer on the wire
        return batch

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = _chat_id(params)
        text = str(params.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        message = self._message(chat_id, params, text=_TAG.sub("", text))
        if self.on_send is not None:
            self.on_send(chat_id, message, time.monotonic())
        return message

    async def _send_media(self, params: JSONDict) -> JSONDict:
        chat_id = _chat_id(params)
        kind = "photo" if "photo" in params else "document"
        if kind not in params:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        file = {"file_id": f"{kind}-{next(self._message_ids)}", "file_unique_id": "u"}
        extra: JSONDict = {kind: [{**file, "width": 800, "height": 600}] if kind == "photo"
                           else file}  # fmt: skip
        if params.get("caption"):
            extra["caption"] = _TAG.sub("", str(params["caption"]))
        message = self._message(chat_id, params, **extra)
        if self.on_send is not None:
            self.on_send(chat_id, message, time.monotonic())
        return message

    async def _edit(self, params: JSONDict) -> JSONDict:
        chat_id = _chat_id(params)
        return self._message(chat_id, params, text=_TAG.sub("", str(params.get("text") or "")))

    def _message(self, chat_id: int, params: JSONDict, **content: Any) -> JSONDict:
        message: JSONDict = {
            "message_id": next(self._message_ids), "from": self.bot_user,
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "date": int(time.time()), **content,
        }  # fmt: skip
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message


async def _params(request: web.Request) -> JSONDict:
    """Parameters from the query string and a form, multipart or JSON body, as Telegram reads
    them: in forms, complex values are JSON-serialised strings."""
    params: JSONDict = dict(request.query)
    if request.can_read_body:
        ctype = request.content_type
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else value.file.read()
        else:
            try:
                data = json.loads(await request.read())
            except ValueError as exc:
                raise ApiError(400, "Bad Request: can't parse JSON object") from exc
            if not isinstance(data, dict):
                raise ApiError(400, "Bad Request: can't parse JSON object")
            params.update(data)
    for key in _COMPLEX.intersection(params):
        if isinstance(params[key], str):
            try:
                params[key] = json.loads(params[key])
            except ValueError as exc:
                raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from exc
    return params


def _chat_id(params: JSONDict) -> int:
    try:
        return int(params["chat_id"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "Bad Request: chat_id is empty") from None
