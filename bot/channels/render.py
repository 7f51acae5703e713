"""Rendering helpers shared by channels: markup conversion and numbered choices for channels
without buttons (Zalo Bot Platform, the console)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from handlers.types import Reply

BOLD_RE = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)


def to_html(text: str) -> str:
    """Our one markup (**bold**) as Telegram HTML, everything else escaped."""
    return BOLD_RE.sub(r"<b>\1</b>", html.escape(text, quote=False))


def to_plain(text: str) -> str:
    return BOLD_RE.sub(r"\1", text)


def numbered(reply: Reply, markup: Callable[[str], str] = to_plain) -> str:
    """The reply's text followed by its buttons as numbered lines: "1. Đồng ý"."""
    text = markup(reply.text)
    buttons = reply.flat_buttons
    if not buttons:
        return text
    lines = [f"{i}. {b.label}" for i, b in enumerate(buttons, 1)]
    return f"{text}\n\n" + "\n".join(lines)


def split_text(text: str, limit: int) -> list[str]:
    """Split at paragraph, then line, then word boundaries so each part fits `limit`."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for sep, pieces in (("\n\n", text.split("\n\n")),):
        for piece in pieces:
            candidate = f"{current}{sep}{piece}" if current else piece
            if len(candidate) <= limit:
                current = candidate
                continue
            if current:
                parts.append(current)
            while len(piece) > limit:
                cut = piece.rfind("\n", 0, limit)
                if cut <= 0:
                    cut = piece.rfind(" ", 0, limit)
                if cut <= 0:
                    cut = limit
                parts.append(piece[:cut].rstrip())
                piece = piece[cut:].lstrip()
            current = piece
    if current:
        parts.append(current)
    return parts
