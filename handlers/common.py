"""Small replies several flows share."""

from __future__ import annotations

from bot.i18n import _
from handlers.types import Reply


def unknown_command(name: str) -> list[Reply]:
    """The answer to a command the person may not use: the same whether it does not exist or
    is reserved for officers, so nothing reveals that officer commands exist."""
    return [Reply(_("I do not know the command /{name}. Type /help to see what I can "
                    "do.").format(name=name[:32]))]
