"""Zalo's JSON -> IncomingMessage. Pure functions, safe on any input: anything that is not a
recognisable event a person sent gives None (the webhook then answers 200 and ignores it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.types import IncomingMessage, Kind

BOT_CHANNEL = "zalo-bot"
OA_CHANNEL = "zalo-oa"
# What an OA query button sends back as the person's text: "#b:" + our payload. The button is
# of type oa.query.hide, so the person never sees it; typed by hand it is checked like any
# button (against the current step), so forging one gains nothing.
BUTTON_PREFIX = "#b:"
MAX_ID = 64
MAX_TEXT = 8192

BOT_KINDS = {
    "message.text.received": Kind.TEXT,
    "message.image.received": Kind.MEDIA,
    "message.sticker.received": Kind.STICKER,
    "message.voice.received": Kind.MEDIA,
    "message.unsupported.received": Kind.MEDIA,
}
OA_MEDIA_EVENTS = {
    "user_send_image", "user_send_gif", "user_send_link", "user_send_audio", "user_send_video",
    "user_send_file", "user_send_location", "user_send_business_card",
}  # fmt: skip


def _id(value: Any) -> str | None:
    """Ids are opaque strings (sometimes sent as numbers); anything else is not an id."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= MAX_ID and text.isprintable() else None


def _str(value: Any, limit: int = MAX_TEXT) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------- Zalo Bot


def bot_update(raw: Any) -> IncomingMessage | None:
    """A Zalo Bot Platform update (as getUpdates returns it, or a webhook body
    `{"ok": true, "result": update}`) as a neutral message; None for anything else."""
    update = _dict(raw)
    if "result" in update and "event_name" not in update:
        update = _dict(update["result"])
    kind = BOT_KINDS.get(_str(update.get("event_name"), 64))
    message = _dict(update.get("message"))
    sender = _dict(message.get("from"))
    chat = _dict(message.get("chat"))
    user_id, chat_id = _id(sender.get("id")), _id(chat.get("id"))
    if kind is None or user_id is None or chat_id is None or sender.get("is_bot") is True:
        return None
    message_id = _id(message.get("message_id"))
    name = _str(sender.get("display_name") or sender.get("name"), 128).strip() or None
    text = _str(message.get("text")) if kind == Kind.TEXT else ""
    return IncomingMessage(
        channel=BOT_CHANNEL, user_id=user_id, chat_id=chat_id, kind=kind, text=text,
        update_id=f"m:{message_id}" if message_id else None, display_name=name,
        is_private=_str(chat.get("chat_type"), 16).upper() != "GROUP",
    )  # fmt: skip


# ---------------------------------------------------------------------------- Zalo OA


@dataclass(frozen=True, slots=True)
class OAEvent:
    """A webhook event worth storing: the neutral message and its deduplication key."""

    name: str
    key: str
    message: IncomingMessage


def oa_event(raw: Any) -> OAEvent | None:
    """An OA webhook body as an event a person caused; None for the OA's own echoes, receipts
    (user_received_message, user_seen_message), unknown events and malformed bodies."""
    body = _dict(raw)
    name = _str(body.get("event_name"), 64)
    timestamp = _id(body.get("timestamp"))
    if name == "follow" or name == "unfollow":
        user_id = _id(_dict(body.get("follower")).get("id")) or _id(
            _dict(body.get("sender")).get("id")
        )
        if user_id is None:
            return None
        kind = Kind.FOLLOW if name == "follow" else Kind.UNFOLLOW
        key = f"{name}:{user_id}:{timestamp or ''}"
        return OAEvent(name, key, IncomingMessage(
            channel=OA_CHANNEL, user_id=user_id, chat_id=user_id, kind=kind, update_id=key,
        ))  # fmt: skip
    if name == "user_send_text":
        kind = Kind.TEXT
    elif name == "user_send_sticker":
        kind = Kind.STICKER
    elif name in OA_MEDIA_EVENTS:
        kind = Kind.MEDIA
    else:
        return None
    user_id = _id(_dict(body.get("sender")).get("id"))
    message = _dict(body.get("message"))
    msg_id = _id(message.get("msg_id"))
    if user_id is None or msg_id is None:
        return None
    text = _str(message.get("text")) if kind == Kind.TEXT else ""
    payload = None
    if text.startswith(BUTTON_PREFIX):
        kind, payload, text = Kind.BUTTON, text.removeprefix(BUTTON_PREFIX)[:256], ""
    key = f"msg:{msg_id}"
    return OAEvent(name, key, IncomingMessage(
        channel=OA_CHANNEL, user_id=user_id, chat_id=user_id, kind=kind, text=text,
        payload=payload, update_id=key,
    ))  # fmt: skip
