"""Scheduled jobs. Module-level functions (APScheduler's rule for persistable jobs); each opens
its own session and commits at its end."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, or_, select

from bot.db.models import Identity, Person
from bot.i18n import TZ, _, current_language
from bot.runtime import Runtime
from bot.services import privacy, progress
from content.loader import text_for
from handlers.types import Button, Reply, rows

log = logging.getLogger(__name__)


async def forget_unconsented(rt: Runtime) -> int:
    """Delete identities that never answered the consent question within the retention period
    (only the platform id and the conversation step were kept for them)."""
    cutoff = rt.clock() - timedelta(days=rt.settings.unconsented_retention_days)
    async with rt.sessionmaker() as session, session.begin():
        result = await session.execute(
            delete(Identity).where(
                Identity.consent == "pending",
                Identity.person_id.is_(None),
                Identity.last_inbound_at < cutoff,
            )
        )
    if result.rowcount:
        log.info("forgot %d identities that never consented", result.rowcount)
    return int(result.rowcount or 0)


REMINDER_IDLE = timedelta(days=2)
QUIET_FROM, QUIET_UNTIL = 21, 7  # local hours: no reminder from 21:00 to 07:00


async def send_reminders(rt: Runtime) -> int:
    """Nudge people who opted in, at their hour, when they have not learned for 2 days;
    at most once a (local) day, never in quiet hours. Returns how many were sent."""
    now = rt.clock()
    local = now.astimezone(TZ)
    if local.hour >= QUIET_FROM or local.hour < QUIET_UNTIL:
        return 0
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    outgoing: list[tuple[str, str, list[Reply]]] = []
    async with rt.sessionmaker() as session, session.begin():
        people = await session.scalars(select(Person).where(
            Person.reminder_hour == local.hour,
            Person.last_active_at < now - REMINDER_IDLE,
            or_(Person.last_reminded_at.is_(None), Person.last_reminded_at < day_start),
        ))
        for person in people:
            identities = [i for i in await progress.identities_of(session, person.id)
                          if i.unreachable_at is None and i.channel in rt.senders]
            if not identities:
                continue
            identity = max(identities, key=lambda i: i.last_inbound_at)
            next_id = progress.suggest_next(
                rt.curriculum, await progress.lesson_rows(session, person.id))
            if next_id is None:
                continue
            lesson = rt.curriculum.lessons[next_id]
            token = current_language.set(person.language)
            try:
                text = _("Hello! It has been a couple of days. Your next lesson, "
                         "\"{lesson}\", takes about 3 minutes.").format(
                             lesson=text_for(lesson.title, person.language))
                buttons = (Button(_("▶ Learn now"), f"les:{lesson.id}"),
                           Button(_("Stop reminders"), "remind:off"))
            finally:
                current_language.reset(token)
            person.last_reminded_at = now
            identity.state_data = {**(identity.state_data or {}),
                                   "_buttons": [[b.label, b.payload] for b in buttons]}
            outgoing.append((identity.channel, identity.chat_id,
                             [Reply(text, rows(*buttons))]))
    sent = 0
    for channel, chat_id, replies in outgoing:
        try:
            result = await rt.senders[channel](chat_id, replies)
        except Exception:  # one failed chat must not stop the others
            log.exception("reminder to %s/%s failed", channel, chat_id)
            continue
        # Zalo's channels say what happened (e.g. skipped: outside the OA messaging window);
        # the day's reminder stays used up either way, so nobody is nudged twice.
        if getattr(result, "ok", True):
            sent += 1
        else:
            log.info("reminder to %s/%s not sent: %s %s", channel, chat_id,
                     result.status, result.reason)  # fmt: skip
    return sent


async def refresh_zalo_oa_token(rt: Runtime) -> bool:
    """Refresh the Zalo OA token pair when it is about 20 hours old (the access token lives
    25 h). Runs often and is cheap when nothing is due; whichever process takes the lease on
    the token row refreshes, the others find the new pair. True if this call refreshed."""
    from bot.channels.zalo.oa_tokens import TokenStoreEmpty
    from bot.channels.zalo.setup import oa_client, token_store

    client = oa_client(rt.settings)
    try:
        return bool(await token_store(rt, client).refresh_if_due())
    except TokenStoreEmpty:
        return False
    finally:
        await client.close()


ZALO_INBOX_KEEP = timedelta(days=3)  # longer than Zalo keeps retrying a webhook


async def purge_zalo_leftovers(rt: Runtime) -> int:
    """Forget processed Zalo OA events (their keys only guard against redelivery), expired
    media links and the files written for them."""
    from bot.channels.zalo.outbox import purge_outbox
    from bot.db.models import ZaloOAInbox
    from bot.web import media

    now = rt.clock()
    async with rt.sessionmaker() as session, session.begin():
        result = await session.execute(delete(ZaloOAInbox).where(
            ZaloOAInbox.processed_at.is_not(None),
            ZaloOAInbox.processed_at < now - ZALO_INBOX_KEEP,
        ))  # fmt: skip
        removed = int(result.rowcount or 0) + await media.purge(session, now)
    return removed + purge_outbox(rt.settings.data_dir, media.LIFETIME)


async def erase_inactive(rt: Runtime) -> int:
    """Erase people who have not used the bot for the retention period (default 3 years);
    their events stay as pseudonymous rows, so past totals do not change."""
    cutoff = rt.clock() - timedelta(days=rt.settings.retention_days)
    async with rt.sessionmaker() as session, session.begin():
        people = list(await session.scalars(
            select(Person).where(Person.last_active_at < cutoff).limit(500)))
        for person in people:
            await privacy.erase(session, person, rt.clock())
    if people:
        log.info("erased %d people inactive since before %s", len(people), cutoff.date())
    return len(people)
