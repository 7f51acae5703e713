"""What a handler step receives besides the message: one session, the identity and its
state, the person (once they consented), the course, the communes, and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.db.models import Identity, Person
from bot.services import progress
from handlers.types import IncomingMessage

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.localities import LocalityIndex
    from bot.settings import Settings
    from content.loader import Curriculum


@dataclass(slots=True)
class Context:
    msg: IncomingMessage
    session: AsyncSession
    identity: Identity
    curriculum: Curriculum
    localities: LocalityIndex
    settings: Settings
    now: datetime
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def person(self) -> Person | None:
        return self.identity.person

    @property
    def consented(self) -> bool:
        return self.identity.consent == "given" and self.identity.person is not None

    @property
    def state(self) -> str:
        return self.identity.state

    @property
    def data(self) -> dict[str, Any]:
        return self.identity.state_data or {}

    def goto(self, state: str, **data: Any) -> None:
        """Move the conversation to `state`. Keys starting with '_' survive a change of step."""
        kept = {k: v for k, v in self.data.items() if k.startswith("_")}
        self.identity.state = state
        self.identity.state_data = {**kept, **data}  # a new dict, so the change is saved

    def remember(self, **data: Any) -> None:
        self.identity.state_data = {**self.data, **data}

    def record(self, kind: str, **fields: Any) -> None:
        """Append a participation event, only for people who consented."""
        if self.consented and self.person is not None:
            progress.record(
                self.session, self.person, kind, at=self.now, channel=self.msg.channel, **fields
            )
