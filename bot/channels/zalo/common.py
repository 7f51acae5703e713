"""What both Zalo channels share: reading a capped webhook body, the result of a send, and
turning neutral replies into plain text with numbered choices."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from bot.channels.render import numbered, split_text, to_plain
from handlers.types import Reply

TEXT_MAX = 2000  # both Zalo APIs: text and captions of 1-2,000 characters
MAX_WEBHOOK_BODY = 256 * 1024


class BodyTooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int = MAX_WEBHOOK_BODY) -> bytes:
    """The raw request body, refusing more than `limit` bytes without reading them all."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge
    return body


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one send: `sent`, `skipped` (not attempted, or refused by Zalo for
    a reason of policy such as the messaging window) or `failed`; `reason` says why."""

    status: Literal["sent", "skipped", "failed"]
    reason: str | None = None
    message_ids: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == "sent"


def last_with_buttons(replies: list[Reply]) -> int:
    """Index of the last reply offering buttons: the only one whose choices can be typed
    (the engine remembers only those), so the only one numbered."""
    return max((i for i, r in enumerate(replies) if r.buttons), default=-1)


def plain_text(reply: Reply, *, number: bool) -> str:
    """The reply as plain text, its buttons as numbered lines when `number` is set."""
    return numbered(reply) if number else to_plain(reply.text)


def parts(text: str) -> list[str]:
    """Text split at paragraph boundaries into pieces Zalo accepts (empty text: nothing)."""
    return [p for p in split_text(text, TEXT_MAX) if p.strip()]
