"""`hocvuso chat`: the same conversation in a terminal, buttons shown as numbered choices."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.channels.render import BOLD_RE, numbered, to_plain
from bot.engine import Engine
from handlers.types import IncomingMessage, Kind, Reply

CHANNEL = "console"


def _ansi_bold(text: str) -> str:
    return BOLD_RE.sub("\033[1m\\1\033[0m", text)


def render(reply: Reply, *, color: bool) -> str:
    text = numbered(reply, _ansi_bold if color else to_plain)
    if reply.image is not None:
        text += f"\n[hình: {reply.image.name}]"
    if reply.document is not None:
        text += f"\n[tệp: {reply.document_name}]"
    return text


async def run_console(
    engine: Engine,
    *,
    user_id: str = "local",
    name: str = "Bạn",
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> None:
    """Read lines, hand each to the engine, print the replies. Ends at EOF or /quit."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    color = stdout.isatty()
    loop = asyncio.get_running_loop()
    print("hocvuso — trò chuyện trong terminal. Gõ /quit để thoát.\n", file=stdout)
    first = True
    while True:
        if first:
            line = "/start"
            first = False
        else:
            stdout.write("> ")
            stdout.flush()
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            line = line.rstrip("\n")
            if line.strip() in ("/quit", "/exit"):
                break
        msg = IncomingMessage(
            channel=CHANNEL,
            user_id=user_id,
            chat_id=user_id,
            kind=Kind.TEXT,
            text=line,
            display_name=name,
        )
        for reply in await engine.handle(msg):
            print(render(reply, color=color) + "\n", file=stdout)
    print("Tạm biệt!", file=stdout)
