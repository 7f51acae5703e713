"""The neutral messages every channel speaks: what came in, and what to send back.

Channels turn their platform's update into an `IncomingMessage` and render each `Reply`
their own way (Telegram: inline keyboard; Zalo OA: query buttons; Zalo Bot and the console:
numbered lines). Nothing here knows a platform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Kind(StrEnum):
    TEXT = "text"  # typed text, including /commands
    BUTTON = "button"  # a pressed button: `payload` is set
    STICKER = "sticker"
    MEDIA = "media"  # photo, voice, video, file, location ...
    EDITED = "edited"  # an edited earlier message
    FOLLOW = "follow"  # the person followed / opened the bot (Zalo OA)
    UNFOLLOW = "unfollow"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One thing a person did, as the core sees it."""

    channel: str  # "telegram", "zalo-bot", "zalo-oa", "console"
    user_id: str  # the platform's id of the person
    chat_id: str  # where replies go
    kind: Kind = Kind.TEXT
    text: str = ""
    payload: str | None = None
    update_id: str | None = None  # for deduplication; None = do not deduplicate
    display_name: str | None = None
    language_hint: str | None = None
    is_private: bool = True


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    payload: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Text (markup: `**bold**` only), an optional image and rows of buttons."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    image: Path | None = None
    image_name: str | None = None  # what to call the file when sent as a document
    document: bytes | None = None
    document_name: str | None = None
    # Makes `image` if it does not exist yet. The engine calls it after the commit, in a
    # thread: drawing a certificate (~10 ms) need not hold up the transaction, which other
    # people's messages may share, nor the event loop.
    make_image: Callable[[], object] | None = field(default=None, compare=False)

    @property
    def flat_buttons(self) -> list[Button]:
        return [b for row in self.buttons for b in row]


def rows(*buttons: Button | None, per_row: int = 1) -> tuple[tuple[Button, ...], ...]:
    """Lay buttons out `per_row` to a row, skipping None."""
    items = [b for b in buttons if b is not None]
    return tuple(tuple(items[i : i + per_row]) for i in range(0, len(items), per_row))
