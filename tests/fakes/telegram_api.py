"""A local stand-in for Telegram's Bot API, served over real HTTP on 127.0.0.1.

Point python-telegram-bot at it with ``base_url=fake.base_url`` (and
``base_file_url=fake.base_file_url``), then simulate users with :meth:`add_text`,
:meth:`press_button`, ... and inspect what the bot did through :attr:`sent`,
:attr:`edits`, :attr:`callback_answers` and :attr:`calls`.

Only the subset of https://core.telegram.org/bots/api used by the project is implemented;
errors follow Telegram's shape and wording (HTTP status == ``error_code``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import math
import re
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

JSONDict = dict[str, Any]

__all__ = ["FakeTelegramAPI", "SentMessage", "TelegramAPIError", "UploadedFile", "WaitTimeout"]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64

BLOCKED_DESCRIPTION = "Forbidden: bot was blocked by the user"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"

#: Update types that Telegram leaves out unless explicitly requested via allowed_updates.
OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

#: Form-encoded parameters whose value is a plain string (everything else is JSON-decoded).
STRING_PARAMS = frozenset(
    {
        "text", "caption", "parse_mode", "url", "secret_token", "ip_address", "description",
        "short_description", "language_code", "action", "callback_query_id",
        "inline_message_id", "photo", "document", "file_id", "emoji", "title", "name", "query",
        "business_connection_id", "message_effect_id", "callback_data", "certificate",
    }
)  # fmt: skip

SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})

CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice",
        "upload_voice", "upload_document", "choose_sticker", "find_location",
        "record_video_note", "upload_video_note",
    }
)  # fmt: skip

BUTTON_ACTIONS = (
    "callback_data", "url", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "callback_game",
    "pay", "web_app", "copy_text",
)  # fmt: skip

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND_RE = re.compile(r"(?<![^\s])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


class TelegramAPIError(Exception):
    """An error answer: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSONDict:
        """The JSON body Telegram would answer with."""
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class WaitTimeout(AssertionError, TimeoutError):
    """Raised by the ``wait_*`` helpers; both an AssertionError and a TimeoutError."""


@dataclass
class UploadedFile:
    """A file uploaded with multipart/form-data."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class SentMessage:
    """One successful sendMessage/sendPhoto/sendDocument (or edit*, in ``edits``)."""

    method: str
    chat_id: int
    text: str | None = None
    reply_markup: JSONDict | None = None
    parse_mode: str | None = None
    message_id: int = 0
    photo: str | UploadedFile | None = None
    document: str | UploadedFile | None = None
    caption: str | None = None
    params: JSONDict = field(default_factory=dict)
    time: float = 0.0
    #: text (or caption) after entity parsing, i.e. what the user sees.
    plain_text: str | None = None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data-or-url) of the inline keyboard, flattened."""
        return FakeTelegramAPI.buttons(self)


@dataclass
class _Queued:
    update: JSONDict
    redelivered: bool = False
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


# --------------------------------------------------------------------------- text parsing


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_START = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)([^<>]*)>")
_HTML_END = re.compile(r"</([A-Za-z][A-Za-z0-9-]*)?\s*>")
_HTML_ATTR = re.compile(r"""([A-Za-z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HTML_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([A-Za-z]+));")


def _unescape(value: str) -> str:
    return _HTML_ENTITY.sub(lambda m: _decode_entity(m) or m.group(0), value)


def _decode_entity(match: re.Match[str]) -> str | None:
    dec, hexa, name = match.groups()
    if name is not None:
        return _HTML_NAMED.get(name)
    code = int(dec) if dec is not None else int(hexa, 16)
    return chr(code) if 0 < code <= 0x10FFFF else None


def parse_html(text: str) -> tuple[str, list[JSONDict]]:
    """Parse Telegram-flavoured HTML into (plain text, entities); raise 400 like Telegram."""

    def fail(why: str) -> TelegramAPIError:
        return TelegramAPIError(400, f"Bad Request: can't parse entities: {why}")

    def byte_offset(index: int) -> int:
        return len(text[:index].encode())

    out: list[str] = []
    pos16 = 0
    stack: list[JSONDict] = []
    entities: list[JSONDict] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "&":
            match = _HTML_ENTITY.match(text, i)
            decoded = _decode_entity(match) if match else None
            piece = decoded if decoded is not None else "&"
            i = match.end() if (match and decoded is not None) else i + 1
        elif char == "<":
            if text.startswith("</", i):
                end = _HTML_END.match(text, i)
                if end is None:
                    raise fail(f"Unclosed end tag at byte offset {byte_offset(i)}")
                name = (end.group(1) or "").lower()
                if not stack:
                    raise fail(f"Unexpected end tag at byte offset {byte_offset(i)}")
                top = stack.pop()
                if name and name != top["tag"]:
                    raise fail(
                        f'Unmatched end tag at byte offset {byte_offset(i)}, expected "</'
                        f'{top["tag"]}>", found "</{name}>"'
                    )
                _close_html_tag(top, pos16, stack, entities)
                i = end.end()
                continue
            start = _HTML_START.match(text, i)
            if start is None:
                if ">" not in text[i:]:
                    raise fail(f"Unclosed start tag at byte offset {byte_offset(i)}")
                bad = re.match(r"<([^\s>]*)", text[i:])
                name = bad.group(1) if bad else ""
                raise fail(f'Unsupported start tag "{name}" at byte offset {byte_offset(i)}')
            name = start.group(1).lower()
            if name not in _HTML_TAGS:
                raise fail(f'Unsupported start tag "{name}" at byte offset {byte_offset(i)}')
            attrs = {
                m.group(1).lower(): _unescape(next((g for g in m.groups()[1:] if g), ""))
                for m in _HTML_ATTR.finditer(start.group(2))
            }
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise fail(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(i)}'
                )
            stack.append({"tag": name, "start": pos16, "attrs": attrs})
            i = start.end()
            continue
        else:
            piece = char
            i += 1
        out.append(piece)
        pos16 += _utf16_len(piece)
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1]["tag"]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_html_tag(
    frame: JSONDict, pos16: int, stack: list[JSONDict], entities: list[JSONDict]
) -> None:
    """Turn a closed HTML tag into a MessageEntity (Telegram drops empty ones)."""
    length = pos16 - frame["start"]
    tag, attrs = frame["tag"], frame["attrs"]
    if tag == "code" and stack and stack[-1]["tag"] == "pre":
        language = attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1]["language"] = language.removeprefix("language-")
        return
    if length <= 0:
        return
    entity: JSONDict = {"type": _HTML_TAGS[tag], "offset": frame["start"], "length": length}
    if tag == "a":
        if not attrs.get("href"):
            return
        entity["url"] = attrs["href"]
    elif tag == "pre" and frame.get("language"):
        entity["language"] = frame["language"]
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    entities.append(entity)


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[JSONDict]]:
    """Apply ``parse_mode``; Markdown variants are accepted but not interpreted."""
    if not parse_mode:
        return text, []
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text)
    if mode in ("markdown", "markdownv2"):
        return text, []
    raise TelegramAPIError(400, "Bad Request: unsupported parse_mode")


def command_entities(text: str) -> list[JSONDict]:
    """``bot_command`` entities for ``/commands`` at word starts, as Telegram adds them."""
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: m.start()]),
            "length": _utf16_len(m.group(0)),
        }
        for m in _COMMAND_RE.finditer(text)
    ]


def _decode_form_value(key: str, value: str) -> Any:
    """Form bodies carry JSON-serialised values except for string parameters."""
    if key in STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


# --------------------------------------------------------------------------- the fake


class FakeTelegramAPI:
    """In-process HTTP server imitating ``https://api.telegram.org/bot<TOKEN>/<method>``."""

    def __init__(
        self, token: str = "123456:TEST-TOKEN", *, bot_username: str = "hocvuso_test_bot"
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        bot_id = token.split(":", 1)[0]
        self.bot_id = int(bot_id) if bot_id.isdigit() else 123456
        self.bot_user: JSONDict = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "HocVuSo Test Bot",
            "username": bot_username,
        }

        # records
        self.sent: list[SentMessage] = []
        self.edits: list[SentMessage] = []
        self.callback_answers: list[JSONDict] = []
        self.calls: list[tuple[str, JSONDict]] = []
        self.chat_actions: list[tuple[int, str]] = []
        self.deleted: list[tuple[int, int]] = []
        self.updates: list[JSONDict] = []
        self.webhook_responses: list[int] = []
        self.webhook_deliveries: list[tuple[int, int]] = []
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.descriptions: dict[str, str] = {}
        self.short_descriptions: dict[str, str] = {}
        self.files: dict[str, UploadedFile] = {}

        # limits and fault injection (all off by default)
        self.global_rate: float | None = None
        self.per_chat_rate: float | None = None
        self.blocked_chats: set[int] = set()
        self.fail_next: list[int] = []
        self.latency: float = 0.0
        self.strict_chats: bool = False
        self.rejected_429 = 0

        # webhook delivery tuning
        self.webhook_max_attempts = 4
        self.webhook_retry_delay = 0.05
        self.webhook_timeout = 10.0

        self._handlers: dict[str, Callable[[JSONDict], Any]] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._set_my_description,
            "getMyDescription": self._get_my_description,
            "setMyShortDescription": self._set_my_short_description,
            "getMyShortDescription": self._get_my_short_description,
            "getFile": self._get_file,
        }
        self._canonical = {name.lower(): name for name in self._handlers}

        self._users: dict[int, JSONDict] = {}
        self._chats: dict[int, JSONDict] = {}
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._next_message_id: dict[int, int] = {}
        self._callback_ids: dict[str, bool] = {}  # id -> answered
        self._file_paths: dict[str, str] = {}  # file_path -> file_id
        self._pending: list[_Queued] = []
        self._next_update_id = 1
        self._ids = itertools.count(1)
        self._allowed_updates: list[str] | None = None
        self._webhook: JSONDict | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_busy = False
        self._poll_generation = 0
        self._global_window: deque[float] = deque()
        self._chat_windows: dict[int, deque[float]] = {}
        self._event = asyncio.Event()
        self._inflight = 0
        self._last_activity = time.monotonic()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on 127.0.0.1 with an OS-assigned port."""
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession()
        self._last_activity = time.monotonic()

    async def stop(self) -> None:
        """Wake pending long polls, stop webhook pushes and close the server."""
        self._closing = True
        self._notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("FakeTelegramAPI is not started")
        return self._port

    @property
    def url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:8123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url()`` / ``Bot(base_url=...)``; PTB appends token."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder().base_file_url()`` / ``Bot(base_file_url=...)``."""
        return f"{self.url}/file/bot"

    @property
    def webhook_url(self) -> str | None:
        """The webhook URL currently set, if any."""
        return self._webhook["url"] if self._webhook else None

    @property
    def webhook_secret(self) -> str | None:
        """The webhook secret token currently set, if any."""
        return self._webhook.get("secret_token") if self._webhook else None

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed (polling) or pushed (webhook)."""
        return [q.update for q in self._pending]

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        canonical = self._canonical.get(method.lower())
        counts = canonical != "getUpdates"
        if counts:
            self._inflight += 1
            self._touch()
        try:
            try:
                if request.match_info["token"] != self.token:
                    raise TelegramAPIError(401, "Unauthorized")
                if canonical is None:
                    raise TelegramAPIError(404, "Not Found")
                params = await self._read_params(request)
                self.calls.append((canonical, params))
                self._notify()
                result = await self._handlers[canonical](params)
                body: JSONDict = {"ok": True, "result": result}
                status = 200
            except TelegramAPIError as exc:
                if exc.code == 429:
                    self.rejected_429 += 1
                body, status = exc.payload(), exc.code
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            return web.json_response(body, status=status)
        finally:
            if counts:
                self._inflight -= 1
                self._touch()

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        body = TelegramAPIError(404, "Not Found").payload()
        return web.json_response(body, status=404)

    async def _handle_file(self, request: web.Request) -> web.Response:
        file_id = self._file_paths.get(request.match_info["path"])
        if request.match_info["token"] != self.token or file_id not in self.files:
            return await self._handle_unknown(request)
        upload = self.files[file_id]
        return web.Response(
            body=upload.data, content_type=upload.content_type or "application/octet-stream"
        )

    async def _read_params(self, request: web.Request) -> JSONDict:
        params: JSONDict = {k: _decode_form_value(k, v) for k, v in request.query.items()}
        if not request.can_read_body:
            return params
        ctype = request.content_type
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            files: dict[str, UploadedFile] = {}
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    upload = UploadedFile(
                        key, value.filename, value.content_type, value.file.read()
                    )
                    files[key] = params[key] = upload
                else:
                    params[key] = _decode_form_value(key, value)
            for key, value in list(params.items()):  # resolve attach://<name> references
                if isinstance(value, str) and value.startswith("attach://"):
                    name = value.removeprefix("attach://")
                    if name in files:
                        params[key] = files[name]
                        params.pop(name, None)
            return params
        raw = await request.read()
        if not raw.strip():
            return params
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise TelegramAPIError(400, "Bad Request: can't parse JSON object") from exc
        if not isinstance(data, dict):
            raise TelegramAPIError(400, "Bad Request: can't parse JSON object")
        params.update(data)
        return params

    # ------------------------------------------------------------------ notifications

    def _notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    async def _wait_event(self, event: asyncio.Event, limit: float) -> None:
        """Wait for ``event`` at most ``limit`` seconds."""
        if limit <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), limit)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _int(value: Any, default: int, name: str) -> int:
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise TelegramAPIError(400, f"Bad Request: invalid {name} specified") from exc

    def _chat_id(self, params: JSONDict) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise TelegramAPIError(400, "Bad Request: chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username", "").lower() == raw[1:].lower():
                    return int(chat["id"])
            raise TelegramAPIError(400, "Bad Request: chat not found")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError) as exc:
            raise TelegramAPIError(400, "Bad Request: chat not found") from exc
        if self.strict_chats and chat_id not in self._chats:
            raise TelegramAPIError(400, "Bad Request: chat not found")
        return chat_id

    def _chat(self, chat_id: int) -> JSONDict:
        if chat_id not in self._chats:
            if chat_id > 0:
                chat = {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
            else:
                kind = "supergroup" if str(chat_id).startswith("-100") else "group"
                chat = {"id": chat_id, "type": kind, "title": "Test group"}
            self._chats[chat_id] = chat
        return self._chats[chat_id]

    def _user(
        self,
        user_id: int,
        first_name: str | None = None,
        language_code: str | None = None,
        username: str | None = None,
    ) -> JSONDict:
        user = self._users.setdefault(
            user_id,
            {"id": user_id, "is_bot": False, "first_name": "An", "language_code": "vi"},
        )
        if first_name is not None:
            user["first_name"] = first_name
        if language_code is not None:
            user["language_code"] = language_code
        if username is not None:
            user["username"] = username
        return copy.deepcopy(user)

    def _user_chat(self, user: JSONDict, chat_type: str, chat_id: int | None) -> JSONDict:
        """The chat a simulated user writes in: their private chat, or a group."""
        if chat_id is None:
            if chat_type == "private":
                chat_id = user["id"]
            else:
                chat_id = -user["id"] if chat_type == "group" else -1_000_000_000_000 - user["id"]
        if chat_id in self._chats:
            chat = self._chats[chat_id]
        elif chat_type == "private":
            chat = self._chats[chat_id] = {"id": chat_id, "type": "private"}
        else:
            chat = self._chats[chat_id] = {"id": chat_id, "type": chat_type, "title": "Test group"}
        if chat["type"] == "private" and chat_id == user["id"]:
            chat["first_name"] = user["first_name"]
            if "username" in user:
                chat["username"] = user["username"]
        return chat

    def _store_message(self, chat: JSONDict, sender: JSONDict, content: JSONDict) -> JSONDict:
        chat_id = int(chat["id"])
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        message = {
            "message_id": message_id,
            "from": copy.deepcopy(sender),
            "chat": copy.deepcopy(chat),
            "date": int(time.time()),
            **content,
        }
        self._messages[(chat_id, message_id)] = message
        return message

    def _new_file_id(self, kind: str) -> tuple[str, str]:
        n = next(self._ids)
        return f"{kind}-{n:08d}-fake", f"AQAD{n:06d}"

    def _gate_send(self, chat_id: int) -> None:
        """Apply fail_next, blocked_chats and rate limits to a send call."""
        if self.fail_next:
            code = self.fail_next.pop(0)
            if code == 429:
                raise TelegramAPIError(429, "Too Many Requests: retry after 1", retry_after=1)
            if code == 403:
                raise TelegramAPIError(403, BLOCKED_DESCRIPTION)
            try:
                phrase = HTTPStatus(code).phrase
            except ValueError:
                phrase = "Error"
            raise TelegramAPIError(code, phrase if code >= 500 else f"{phrase}: simulated")
        if chat_id in self.blocked_chats:
            raise TelegramAPIError(403, BLOCKED_DESCRIPTION)
        now = time.monotonic()
        chat_window = self._chat_windows.setdefault(chat_id, deque())
        for window, rate in (
            (self._global_window, self.global_rate),
            (chat_window, self.per_chat_rate),
        ):
            while window and window[0] <= now - 1.0:
                window.popleft()
            if rate is not None and len(window) >= rate:
                retry = max(1, math.ceil(window[0] + 1.0 - now))
                raise TelegramAPIError(
                    429, f"Too Many Requests: retry after {retry}", retry_after=retry
                )
        self._global_window.append(now)
        chat_window.append(now)

    @staticmethod
    def _check_markup(markup: Any) -> JSONDict | None:
        if markup is None:
            return None
        if isinstance(markup, str):
            try:
                markup = json.loads(markup)
            except ValueError:
                markup = None
        if not isinstance(markup, dict):
            raise TelegramAPIError(
                400, "Bad Request: can't parse reply keyboard markup JSON object"
            )
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise TelegramAPIError(400, "Bad Request: can't parse inline keyboard button")
        for button in itertools.chain.from_iterable(rows):
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise TelegramAPIError(400, "Bad Request: can't parse inline keyboard button")
            if not any(key in button for key in BUTTON_ACTIONS):
                raise TelegramAPIError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise TelegramAPIError(400, "Bad Request: BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not re.match(r"^(https?|tg)://\S+$", str(url)):
                raise TelegramAPIError(400, "Bad Request: BUTTON_URL_INVALID")
        return markup

    def _record(
        self,
        target: list[SentMessage],
        method: str,
        chat_id: int,
        message: JSONDict,
        params: JSONDict,
        **extra: Any,
    ) -> SentMessage:
        record = SentMessage(
            method=method,
            chat_id=chat_id,
            reply_markup=self._check_markup(params.get("reply_markup")),
            parse_mode=params.get("parse_mode"),
            message_id=int(message["message_id"]),
            params=params,
            time=time.monotonic(),
            **extra,
        )
        target.append(record)
        self._notify()
        return record

    def _reply_to(self, chat_id: int, params: JSONDict) -> JSONDict:
        reply = params.get("reply_parameters")
        reply_id = reply.get("message_id") if isinstance(reply, dict) else None
        reply_id = reply_id or params.get("reply_to_message_id")
        original = self._messages.get((chat_id, int(reply_id))) if reply_id else None
        return {"reply_to_message": copy.deepcopy(original)} if original else {}

    # ------------------------------------------------------------------ methods

    async def _true(self, params: JSONDict) -> bool:
        return True

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self._webhook is not None:
            raise TelegramAPIError(409, WEBHOOK_CONFLICT)
        offset = self._int(params.get("offset"), 0, "offset")
        limit = min(100, max(1, self._int(params.get("limit"), 100, "limit")))
        try:
            timeout = min(50.0, max(0.0, float(params.get("timeout") or 0)))
        except (TypeError, ValueError) as exc:
            raise TelegramAPIError(400, "Bad Request: invalid timeout specified") from exc
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"])
        self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # terminates an older long poll, like Telegram does
        deadline = time.monotonic() + timeout
        while True:
            event = self._event
            if self._closing:
                return []
            if self._webhook is not None:
                raise TelegramAPIError(409, WEBHOOK_CONFLICT)
            if generation != self._poll_generation:
                raise TelegramAPIError(409, POLL_CONFLICT)
            batch = self._deliverable()[:limit]
            if batch:
                for queued in batch:
                    queued.delivered = True
                self._touch()
                return [copy.deepcopy(q.update) for q in batch]
            await self._wait_event(event, deadline - time.monotonic())
            if time.monotonic() >= deadline and not self._deliverable():
                return []

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._pending = [
                q
                for q in self._pending
                if q.update_id >= offset or (q.redelivered and not q.delivered)
            ]
        elif offset < 0:
            self._pending = self._pending[offset:]

    def _allowed(self, update: JSONDict) -> bool:
        kinds = [key for key in update if key != "update_id"]
        if not kinds:
            return True
        if self._allowed_updates:
            return kinds[0] in self._allowed_updates
        return kinds[0] not in OPT_IN_UPDATE_TYPES

    def _deliverable(self) -> list[_Queued]:
        """Pending updates the bot may receive; drops those filtered by allowed_updates."""
        self._pending = [q for q in self._pending if self._allowed(q.update)]
        return self._pending

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(params)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TelegramAPIError(400, "Bad Request: bad webhook: invalid URL")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(str(secret)):
            raise TelegramAPIError(400, "Bad Request: secret token contains unallowed characters")
        max_connections = min(
            100, max(1, self._int(params.get("max_connections"), 40, "max_connections"))
        )
        if params.get("drop_pending_updates"):
            self._pending.clear()
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"])
        previous = self._webhook or {}
        self._webhook = {
            "url": url,
            "secret_token": str(secret) if secret is not None else None,
            "max_connections": max_connections,
            "ip_address": params.get("ip_address"),
            "last_error_date": previous.get("last_error_date"),
            "last_error_message": previous.get("last_error_message"),
        }
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop())
        self._notify()
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self._webhook = None
        self._notify()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook is not None:
            info["max_connections"] = self._webhook["max_connections"]
            for key in ("ip_address", "last_error_date", "last_error_message"):
                if self._webhook.get(key) is not None:
                    info[key] = self._webhook[key]
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        return info

    def _text_content(self, params: JSONDict) -> tuple[str, str, list[JSONDict]]:
        text = params.get("text")
        if text is None or text == "":
            raise TelegramAPIError(400, "Bad Request: message text is empty")
        text = str(text)
        plain, entities = parse_text(text, params.get("parse_mode"))
        if isinstance(params.get("entities"), list):
            entities = params["entities"]
        if not plain.strip():
            raise TelegramAPIError(400, "Bad Request: message text is empty")
        if len(plain) > MAX_TEXT_LENGTH:
            raise TelegramAPIError(400, "Bad Request: message is too long")
        return text, plain, entities

    def _caption_content(self, params: JSONDict) -> tuple[str | None, JSONDict]:
        caption = params.get("caption")
        if caption is None or caption == "":
            return None, {}
        plain, entities = parse_text(str(caption), params.get("parse_mode"))
        if len(plain) > MAX_CAPTION_LENGTH:
            raise TelegramAPIError(400, "Bad Request: message caption is too long")
        content: JSONDict = {"caption": plain}
        if entities:
            content["caption_entities"] = entities
        return str(caption), content

    def _content_markup(self, markup: JSONDict | None) -> JSONDict:
        """Telegram only echoes inline keyboards in the returned Message."""
        if markup and "inline_keyboard" in markup:
            return {"reply_markup": copy.deepcopy(markup)}
        return {}

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        self._gate_fail_next_only(chat_id)
        text, plain, entities = self._text_content(params)
        markup = self._check_markup(params.get("reply_markup"))
        self._gate_send(chat_id)
        content: JSONDict = {"text": plain, **self._reply_to(chat_id, params)}
        if entities:
            content["entities"] = entities
        content.update(self._content_markup(markup))
        message = self._store_message(self._chat(chat_id), self.bot_user, content)
        self._record(
            self.sent, "sendMessage", chat_id, message, params, text=text, plain_text=plain
        )
        return message

    def _gate_fail_next_only(self, chat_id: int) -> None:
        """Injected failures hit before validation, like a flaky server would."""
        if self.fail_next:
            self._gate_send(chat_id)

    def _media_source(
        self, params: JSONDict, key: str, kind: str
    ) -> tuple[str | UploadedFile, str, str, int | None, str | None]:
        source = params.get(key)
        if source is None or source == "":
            raise TelegramAPIError(400, f"Bad Request: there is no {key} in the request")
        if isinstance(source, UploadedFile):
            file_id, unique_id = self._new_file_id(kind)
            self.files[file_id] = source
            return source, file_id, unique_id, len(source.data), source.filename
        if not isinstance(source, str):
            raise TelegramAPIError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if source.startswith(("http://", "https://")):
            file_id, unique_id = self._new_file_id(kind)
            name = urlsplit(source).path.rsplit("/", 1)[-1] or None
            return source, file_id, unique_id, None, name
        known = self.files.get(source)
        size = len(known.data) if known else None
        return source, source, f"AQAD{zlib.crc32(source.encode()):010d}", size, None

    async def _send_photo(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        self._gate_fail_next_only(chat_id)
        source, file_id, unique_id, size, _ = self._media_source(params, "photo", "photo")
        caption, content = self._caption_content(params)
        markup = self._check_markup(params.get("reply_markup"))
        self._gate_send(chat_id)
        photo: JSONDict = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "width": 800,
            "height": 600,
        }
        if size is not None:
            photo["file_size"] = size
        content = {"photo": [photo], **content, **self._content_markup(markup)}
        message = self._store_message(self._chat(chat_id), self.bot_user, content)
        self._record(
            self.sent,
            "sendPhoto",
            chat_id,
            message,
            params,
            photo=source,
            caption=caption,
            plain_text=content.get("caption"),
        )
        return message

    async def _send_document(self, params: JSONDict) -> JSONDict:
        chat_id = self._chat_id(params)
        self._gate_fail_next_only(chat_id)
        source, file_id, unique_id, size, name = self._media_source(params, "document", "doc")
        caption, content = self._caption_content(params)
        markup = self._check_markup(params.get("reply_markup"))
        self._gate_send(chat_id)
        document: JSONDict = {"file_id": file_id, "file_unique_id": unique_id}
        if name:
            document["file_name"] = name
        if isinstance(source, UploadedFile) and source.content_type:
            document["mime_type"] = source.content_type
        if size is not None:
            document["file_size"] = size
        content = {"document": document, **content, **self._content_markup(markup)}
        message = self._store_message(self._chat(chat_id), self.bot_user, content)
        self._record(
            self.sent,
            "sendDocument",
            chat_id,
            message,
            params,
            document=source,
            caption=caption,
            plain_text=content.get("caption"),
        )
        return message

    def _edit_target(self, params: JSONDict) -> tuple[int, JSONDict] | None:
        """The bot message an edit* call refers to; None for inline messages."""
        if params.get("inline_message_id"):
            return None
        chat_id = self._chat_id(params)
        if chat_id in self.blocked_chats:
            raise TelegramAPIError(403, BLOCKED_DESCRIPTION)
        message_id = self._int(params.get("message_id"), 0, "message_id")
        if not message_id:
            raise TelegramAPIError(400, "Bad Request: message identifier is not specified")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise TelegramAPIError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise TelegramAPIError(400, "Bad Request: message can't be edited")
        return chat_id, message

    def _apply_edit(
        self,
        method: str,
        target: tuple[int, JSONDict] | None,
        params: JSONDict,
        changes: JSONDict,
        **extra: Any,
    ) -> JSONDict | bool:
        markup = self._check_markup(params.get("reply_markup"))
        changes = {**changes, "reply_markup": self._content_markup(markup).get("reply_markup")}
        if target is None:
            self.edits.append(
                SentMessage(
                    method=method,
                    chat_id=0,
                    reply_markup=markup,
                    parse_mode=params.get("parse_mode"),
                    params=params,
                    time=time.monotonic(),
                    **extra,
                )
            )
            self._notify()
            return True
        chat_id, message = target
        if all((message.get(key) or None) == (value or None) for key, value in changes.items()):
            raise TelegramAPIError(400, NOT_MODIFIED)
        for key, value in changes.items():
            if value is None or value == []:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        self._record(self.edits, method, chat_id, message, params, **extra)
        return copy.deepcopy(message)

    async def _edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        target = self._edit_target(params)
        text, plain, entities = self._text_content(params)
        if target is not None and "text" not in target[1]:
            raise TelegramAPIError(400, "Bad Request: there is no text in the message to edit")
        changes = {"text": plain, "entities": entities}
        return self._apply_edit(
            "editMessageText", target, params, changes, text=text, plain_text=plain
        )

    async def _edit_message_caption(self, params: JSONDict) -> JSONDict | bool:
        target = self._edit_target(params)
        caption, content = self._caption_content(params)
        changes = {
            "caption": content.get("caption"),
            "caption_entities": content.get("caption_entities"),
        }
        return self._apply_edit(
            "editMessageCaption",
            target,
            params,
            changes,
            caption=caption,
            plain_text=content.get("caption"),
        )

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict | bool:
        target = self._edit_target(params)
        return self._apply_edit("editMessageReplyMarkup", target, params, {})

    async def _delete_message(self, params: JSONDict) -> bool:
        chat_id = self._chat_id(params)
        message_id = self._int(params.get("message_id"), 0, "message_id")
        if self._messages.pop((chat_id, message_id), None) is None:
            raise TelegramAPIError(400, "Bad Request: message to delete not found")
        self.deleted.append((chat_id, message_id))
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if self._callback_ids.get(query_id, True):  # unknown or already answered
            raise TelegramAPIError(400, QUERY_INVALID)
        if len(str(params.get("text") or "")) > 200:
            raise TelegramAPIError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._callback_ids[query_id] = True
        self.callback_answers.append(dict(params))
        self._notify()
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        chat_id = self._chat_id(params)
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise TelegramAPIError(400, "Bad Request: wrong parameter action in request")
        if chat_id in self.blocked_chats:
            raise TelegramAPIError(403, BLOCKED_DESCRIPTION)
        self.chat_actions.append((chat_id, str(action)))
        return True

    @staticmethod
    def _commands_key(params: JSONDict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if isinstance(commands, str):
            commands = _decode_form_value("commands", commands)
        if not isinstance(commands, list) or len(commands) > 100:
            raise TelegramAPIError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_RE.fullmatch(
                str(command.get("command", ""))
            ):
                raise TelegramAPIError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise TelegramAPIError(400, "Bad Request: command description is empty")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self.commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _set_my_description(self, params: JSONDict) -> bool:
        description = str(params.get("description") or "")
        if len(description) > 512:
            raise TelegramAPIError(400, "Bad Request: description is too long")
        self.descriptions[str(params.get("language_code") or "")] = description
        return True

    async def _get_my_description(self, params: JSONDict) -> JSONDict:
        return {"description": self.descriptions.get(str(params.get("language_code") or ""), "")}

    async def _set_my_short_description(self, params: JSONDict) -> bool:
        description = str(params.get("short_description") or "")
        if len(description) > 120:
            raise TelegramAPIError(400, "Bad Request: short description is too long")
        self.short_descriptions[str(params.get("language_code") or "")] = description
        return True

    async def _get_my_short_description(self, params: JSONDict) -> JSONDict:
        language = str(params.get("language_code") or "")
        return {"short_description": self.short_descriptions.get(language, "")}

    async def _get_file(self, params: JSONDict) -> JSONDict:
        file_id = str(params.get("file_id") or "")
        upload = self.files.get(file_id)
        if upload is None:
            raise TelegramAPIError(400, "Bad Request: invalid file_id")
        path = next((p for p, f in self._file_paths.items() if f == file_id), None)
        if path is None:
            suffix = (upload.filename or "").rpartition(".")[2] if upload.filename else "bin"
            path = f"documents/file_{len(self._file_paths)}.{suffix or 'bin'}"
            self._file_paths[path] = file_id
        return {
            "file_id": file_id,
            "file_unique_id": f"AQAD{zlib.crc32(file_id.encode()):010d}",
            "file_size": len(upload.data),
            "file_path": path,
        }

    # ------------------------------------------------------------------ webhook pushes

    async def _webhook_loop(self) -> None:
        while self._webhook is not None and not self._closing:
            event = self._event
            pending = self._deliverable()
            if not pending:
                await event.wait()
                continue
            queued = pending[0]
            self._webhook_busy = True
            try:
                done = await self._push(queued)
            finally:
                self._webhook_busy = False
            if done:
                with contextlib.suppress(ValueError):
                    self._pending.remove(queued)
            self._touch()
            self._notify()

    async def _push(self, queued: _Queued) -> bool:
        """POST one update, retrying; False if the webhook went away meanwhile."""
        for attempt in range(self.webhook_max_attempts):
            hook = self._webhook
            if hook is None or self._closing or self._session is None:
                return False
            headers = {}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            error = ""
            try:
                async with self._session.post(
                    hook["url"],
                    json=queued.update,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                ) as response:
                    status = response.status
                    error = f"Wrong response from the webhook: {status} {response.reason}"
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, error = 0, f"Connection failed: {exc!r}"
            queued.delivered = True
            self.webhook_responses.append(status)
            self.webhook_deliveries.append((queued.update_id, status))
            if 200 <= status < 300:
                return True
            hook["last_error_date"] = int(time.time())
            hook["last_error_message"] = error
            if attempt + 1 < self.webhook_max_attempts:
                await asyncio.sleep(self.webhook_retry_delay * 2**attempt)
        return True  # gave up: drop the update, as if Telegram stopped retrying

    # ------------------------------------------------------------------ simulating users

    def _enqueue(self, update: JSONDict, *, redelivered: bool = False) -> JSONDict:
        if "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        if not redelivered:
            self.updates.append(update)
        self._pending.append(_Queued(copy.deepcopy(update), redelivered=redelivered))
        self._touch()
        self._notify()
        return update

    def _user_message(
        self,
        user_id: int,
        content: JSONDict,
        *,
        chat_type: str = "private",
        chat_id: int | None = None,
        first_name: str | None = None,
        language_code: str | None = None,
    ) -> JSONDict:
        user = self._user(user_id, first_name, language_code)
        chat = self._user_chat(user, chat_type, chat_id)
        return self._store_message(chat, user, content)

    def add_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "An",
        chat_type: str = "private",
        chat_id: int | None = None,
        language_code: str = "vi",
    ) -> JSONDict:
        """Queue a text message update (``bot_command`` entities added for ``/commands``)."""
        content: JSONDict = {"text": text}
        entities = command_entities(text)
        if entities:
            content["entities"] = entities
        message = self._user_message(
            user_id,
            content,
            chat_type=chat_type,
            chat_id=chat_id,
            first_name=first_name,
            language_code=language_code,
        )
        return self._enqueue({"message": copy.deepcopy(message)})

    def add_sticker(
        self,
        user_id: int,
        *,
        emoji: str = "👍",
        chat_type: str = "private",
        chat_id: int | None = None,
    ) -> JSONDict:
        """Queue a sticker message update."""
        file_id, unique_id = self._new_file_id("sticker")
        sticker = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        message = self._user_message(
            user_id, {"sticker": sticker}, chat_type=chat_type, chat_id=chat_id
        )
        return self._enqueue({"message": copy.deepcopy(message)})

    def add_photo(
        self,
        user_id: int,
        *,
        caption: str | None = None,
        chat_type: str = "private",
        chat_id: int | None = None,
        data: bytes = b"\xff\xd8\xff\xe0fake-jpeg",
    ) -> JSONDict:
        """Queue a photo message update; the photo is downloadable via getFile."""
        sizes = []
        for width, height in ((90, 67), (800, 600)):
            file_id, unique_id = self._new_file_id("photo")
            self.files[file_id] = UploadedFile("photo", "photo.jpg", "image/jpeg", data)
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": unique_id,
                    "width": width,
                    "height": height,
                    "file_size": len(data),
                }
            )
        content: JSONDict = {"photo": sizes}
        if caption:
            content["caption"] = caption
        message = self._user_message(user_id, content, chat_type=chat_type, chat_id=chat_id)
        return self._enqueue({"message": copy.deepcopy(message)})

    def add_edited_text(
        self,
        user_id: int,
        text: str,
        *,
        message_id: int | None = None,
        chat_id: int | None = None,
    ) -> JSONDict:
        """Queue an ``edited_message`` for the user's last (or given) text message."""
        cid = chat_id if chat_id is not None else user_id
        message = None
        if message_id is not None:
            message = self._messages.get((cid, message_id))
        else:
            for (mchat, _), candidate in reversed(self._messages.items()):
                if mchat == cid and candidate["from"]["id"] == user_id and "text" in candidate:
                    message = candidate
                    break
        if message is None:  # nothing to edit yet: create the original silently
            user = self._user(user_id)
            chat = self._chats.get(cid) or self._user_chat(user, "private", chat_id)
            message = self._store_message(chat, user, {"text": text})
        message["text"] = text
        message.pop("entities", None)
        entities = command_entities(text)
        if entities:
            message["entities"] = entities
        message["edit_date"] = int(time.time())
        return self._enqueue({"edited_message": copy.deepcopy(message)})

    def press_button(
        self,
        user_id: int,
        callback_data: str,
        *,
        message_id: int | None = None,
        chat_id: int | None = None,
        strict: bool = True,
    ) -> JSONDict:
        """Queue a callback_query on the bot's last keyboard message to the chat (or the given).

        With ``strict`` the callback_data must be one of that message's buttons.
        """
        cid = chat_id if chat_id is not None else user_id
        if message_id is not None:
            message = self._messages.get((cid, message_id))
        else:
            message = next(
                (
                    m
                    for (mchat, _), m in reversed(self._messages.items())
                    if mchat == cid
                    and m["from"]["id"] == self.bot_id
                    and m.get("reply_markup", {}).get("inline_keyboard")
                ),
                None,
            )
        if message is None:
            which = f"message {message_id}" if message_id else "message with an inline keyboard"
            raise LookupError(f"no bot {which} in chat {cid}; sent: {self.describe_sent()}")
        if strict:
            options = [data for _, data in self.buttons(message)]
            if callback_data not in options:
                raise ValueError(
                    f"{callback_data!r} is not a button of message {message['message_id']} "
                    f"in chat {cid}; buttons: {self.buttons(message)}"
                )
        query_id = str(4_000_000_000_000_000 + next(self._ids))
        self._callback_ids[query_id] = False
        query = {
            "id": query_id,
            "from": self._user(user_id),
            "message": copy.deepcopy(message),
            "chat_instance": str(7_000_000_000 + abs(cid)),
            "data": callback_data,
        }
        return self._enqueue({"callback_query": query})

    def add_update(self, raw: JSONDict) -> JSONDict:
        """Queue any update as-is (``update_id`` assigned when missing)."""
        update = copy.deepcopy(raw)
        query = update.get("callback_query")
        if isinstance(query, dict) and "id" in query:
            self._callback_ids.setdefault(str(query["id"]), False)
        return self._enqueue(update)

    def redeliver(self, update_id: int) -> JSONDict:
        """Queue an already created update again, same update_id (to test deduplication)."""
        for update in self.updates:
            if update["update_id"] == update_id:
                return self._enqueue(copy.deepcopy(update), redelivered=True)
        raise LookupError(f"no update with update_id {update_id}")

    # ------------------------------------------------------------------ inspection

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        """Everything sent (sendMessage/Photo/Document) to ``chat_id``, in order."""
        return [m for m in self.sent if m.chat_id == chat_id]

    def last_to(self, chat_id: int) -> SentMessage:
        """The last message sent to ``chat_id``; AssertionError if there is none."""
        messages = self.messages_to(chat_id)
        if not messages:
            raise AssertionError(f"nothing sent to chat {chat_id}; sent: {self.describe_sent()}")
        return messages[-1]

    def get_message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """Current state (after edits) of a stored message, as a Telegram Message dict."""
        message = self._messages.get((chat_id, message_id))
        return copy.deepcopy(message) if message is not None else None

    def calls_of(self, method: str) -> list[JSONDict]:
        """Params of every call to ``method`` (case-insensitive)."""
        return [params for name, params in self.calls if name.lower() == method.lower()]

    @staticmethod
    def buttons(msg: SentMessage | JSONDict | None) -> list[tuple[str, str]]:
        """Flatten an inline keyboard into (label, callback_data or url) pairs.

        Accepts a SentMessage, a Message dict or a reply_markup dict.
        """
        if msg is None:
            return []
        markup = msg.reply_markup if isinstance(msg, SentMessage) else msg.get("reply_markup", msg)
        if not isinstance(markup, dict):
            return []
        rows = markup.get("inline_keyboard") or []
        return [
            (str(b.get("text", "")), str(b.get("callback_data") or b.get("url") or ""))
            for b in itertools.chain.from_iterable(rows)
        ]

    def describe_sent(self, chat_id: int | None = None) -> str:
        """Human-readable list of sent messages, for assertion messages."""
        records = self.sent if chat_id is None else self.messages_to(chat_id)
        if not records:
            return "(nothing)"
        lines = []
        for r in records:
            body = r.text if r.text is not None else f"[{r.method}] {r.caption or ''}"
            lines.append(f"  chat={r.chat_id} id={r.message_id} {body!r} buttons={r.buttons}")
        return "\n" + "\n".join(lines)

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the check, not for I/O
        describe: Callable[[], str] | None = None,
    ) -> None:
        """Wait until ``predicate()`` is true (re-checked on every API activity)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._event
            if predicate():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                detail = describe() if describe else f"sent: {self.describe_sent()}"
                raise WaitTimeout(f"condition not met within {timeout}s; {detail}")
            await self._wait_event(event, min(remaining, 0.25))

    async def wait_for_sent(
        self,
        n: int = 1,
        *,
        chat_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        """Wait until ≥ n messages were sent (to ``chat_id`` if given); return them all."""

        def current() -> list[SentMessage]:
            return self.sent if chat_id is None else self.messages_to(chat_id)

        where = "in total" if chat_id is None else f"to chat {chat_id}"
        await self.wait_for(
            lambda: len(current()) >= n,
            timeout=timeout,
            describe=lambda: (
                f"expected ≥{n} messages {where}, got {len(current())}; "
                f"all sent: {self.describe_sent()}"
            ),
        )
        return list(current())

    async def wait_for_edits(
        self,
        n: int = 1,
        *,
        chat_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        """Like :meth:`wait_for_sent`, for edit* calls."""

        def current() -> list[SentMessage]:
            return [e for e in self.edits if chat_id is None or e.chat_id == chat_id]

        await self.wait_for(
            lambda: len(current()) >= n,
            timeout=timeout,
            describe=lambda: f"expected ≥{n} edits, got {[(e.method, e.text) for e in current()]}",
        )
        return current()

    async def wait_idle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until no API call (other than an idle long poll) happened for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            busy = (
                self._inflight > 0
                or self._webhook_busy
                or (self._webhook is not None and bool(self._pending))
            )
            idle_for = now - self._last_activity
            if not busy and idle_for >= quiet:
                return
            if now >= deadline:
                recent = [name for name, _ in self.calls[-10:]]
                raise WaitTimeout(f"not idle after {timeout}s; recent calls: {recent}")
            step = 0.02 if busy else quiet - idle_for
            await asyncio.sleep(max(0.01, min(step, deadline - now)))
