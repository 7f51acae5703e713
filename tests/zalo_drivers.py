"""Drivers for tests/journey.py over Zalo: a person in the Zalo app, as the local fakes see
them. Both read choices the way the person does: numbered lines at the end of a message
(typed back as "2"), or OA query buttons (pressed: their payload comes back as text)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.zalo.parse import BUTTON_PREFIX
from bot.db.models import Identity
from tests.fakes.zalo_bot_api import BotSent, FakeZaloBotAPI
from tests.fakes.zalo_oa_api import FakeZaloOA, OASent

NUMBERED = re.compile(r"^(\d+)\. (.+)$")


def numbered_choices(text: str) -> list[str]:
    """The labels of the numbered lines that end a message ("…\n\n1. Đồng ý\n2. Không")."""
    block = text.rsplit("\n\n", 1)[-1].splitlines()
    labels = []
    for n, line in enumerate(block, 1):
        match = NUMBERED.match(line)
        if match is None or int(match.group(1)) != n:
            return []
        labels.append(match.group(2))
    return labels


async def offered(sessionmaker: async_sessionmaker[AsyncSession], channel: str,
                  user_id: str) -> list[tuple[str, str]]:  # fmt: skip
    """What the core will resolve a typed number to: the identity's last offered buttons."""
    async with sessionmaker() as session:
        identity = await session.scalar(select(Identity).where(
            Identity.channel == channel, Identity.external_id == user_id))  # fmt: skip
    data: dict[str, Any] = (identity.state_data or {}) if identity else {}
    return [(label, payload) for label, payload in data.get("_buttons") or []]


class _Numbered:
    """Shared by both drivers: the numbered choices the person saw, checked against what the
    core will resolve each number to (so "type 2" really means the second label shown)."""

    channel = ""
    user_id = ""
    sessionmaker: async_sessionmaker[AsyncSession]
    buttons: list[tuple[str, str]]
    typed: bool = True

    async def _learn_numbers(self, texts: list[str]) -> bool:
        labels = next((ls for t in reversed(texts) if (ls := numbered_choices(t))), [])
        if not labels:
            return False
        core = await offered(self.sessionmaker, self.channel, self.user_id)
        assert [label for label, _ in core] == labels, (labels, core)
        self.buttons, self.typed = core, True
        return True

    def _number(self, what: str) -> str:
        for i, (_label, payload) in enumerate(self.buttons, 1):
            if payload == what:
                return str(i)
        for i, (label, _payload) in enumerate(self.buttons, 1):
            if what.lower() in label.lower():
                return str(i)
        raise AssertionError(f"no choice {what!r} among {self.buttons}")


class ZaloBotDriver(_Numbered):
    """A person chatting with a Zalo bot: types text, types numbers for choices."""

    channel = "zalo-bot"

    def __init__(self, fake: FakeZaloBotAPI, sessionmaker: async_sessionmaker[AsyncSession],
                 user_id: str = "zu-7001", name: str = "Lan") -> None:  # fmt: skip
        self.fake = fake
        self.sessionmaker = sessionmaker
        self.user_id = user_id
        self.name = name
        self.buttons = []
        self.seen = 0

    async def say(self, text: str) -> list[BotSent]:
        self.fake.add_text(self.user_id, text, name=self.name)
        await self.fake.settle()
        messages = self.fake.messages_to(self.user_id)
        new, self.seen = messages[self.seen :], len(messages)
        assert new, f"no answer to {text!r}"
        await self._learn_numbers([m.body for m in new])
        return new

    async def press(self, what: str) -> list[BotSent]:
        return await self.say(self._number(what))


class ZaloOADriver(_Numbered):
    """A follower of a Zalo OA: presses query buttons, or types numbers when a message
    offered more choices than the 5 buttons Zalo allows."""

    channel = "zalo-oa"

    def __init__(self, fake: FakeZaloOA, channel_obj: Any,
                 sessionmaker: async_sessionmaker[AsyncSession],
                 user_id: str = "zoa-8001") -> None:  # fmt: skip
        self.fake = fake
        self.oa = channel_obj
        self.sessionmaker = sessionmaker
        self.user_id = user_id
        self.buttons = []
        self.seen = 0

    async def _after(self, status: int) -> list[OASent]:
        assert status == 200
        await self.oa.drain()
        messages = self.fake.messages_to(self.user_id)
        new, self.seen = messages[self.seen :], len(messages)
        with_buttons = [m for m in new if m.buttons]
        await self._learn_numbers([m.text or "" for m in new])
        last_numbered = next((i for i in range(len(new) - 1, -1, -1)
                              if numbered_choices(new[i].text or "")), -1)  # fmt: skip
        if with_buttons and new.index(with_buttons[-1]) > last_numbered:
            self.buttons = [
                (t, p.removeprefix(BUTTON_PREFIX)) for t, p in with_buttons[-1].buttons
            ]
            self.typed = False
        return new  # no new choices at all: the old ones still stand

    async def say(self, text: str) -> list[OASent]:
        return await self._after(await self.fake.send_text(self.user_id, text))

    async def follow(self) -> list[OASent]:
        return await self._after(await self.fake.follow(self.user_id))

    async def press(self, what: str) -> list[OASent]:
        if self.typed:
            return await self.say(self._number(what))
        payload = next((p for _, p in self.buttons if p == what), None) or next(
            (p for label, p in self.buttons if what.lower() in label.lower()), None
        )
        if payload is None:
            raise AssertionError(f"no button {what!r} among {self.buttons}")
        return await self._after(await self.fake.press(self.user_id, BUTTON_PREFIX + payload))
