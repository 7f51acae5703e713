"""Certificates of completing a module: issuing, checking a code, and drawing the PNG.

Codes are random (`secrets`), ~50 bits, in an alphabet without look-alike characters, so they
can be typed from paper and cannot be enumerated. The picture is drawn with Pillow and a
shipped font that has every Vietnamese glyph (Source Sans Pro, SIL OFL).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Certificate, Person
from bot.i18n import _, current_language, fmt_admin_date
from bot.services import progress
from content.loader import Module, text_for

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I
CODE_PREFIX = "HVS"


def new_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(10))
    return f"{CODE_PREFIX}-{body[:5]}-{body[5:]}"


def normalize_code(text: str) -> str | None:
    """'hvs 7k3mq 9tx2a', 'HVS-7K3MQ-9TX2A' -> 'HVS-7K3MQ-9TX2A'; None if it cannot be a code."""
    raw = "".join(ch for ch in text.upper() if ch.isalnum())
    if raw.startswith(CODE_PREFIX):
        raw = raw[len(CODE_PREFIX):]
    if len(raw) != 10 or any(ch not in ALPHABET for ch in raw):
        return None
    return f"{CODE_PREFIX}-{raw[:5]}-{raw[5:]}"


async def issue(session: AsyncSession, person: Person, module: Module, now: datetime,
                *, channel: str | None = None) -> tuple[Certificate, bool]:
    """The person's certificate for the module, issued now if they have none.
    Returns (certificate, newly_issued)."""
    existing = await session.scalar(select(Certificate).where(
        Certificate.person_id == person.id, Certificate.module_id == module.id,
        Certificate.revoked_at.is_(None)))
    if existing is not None:
        return existing, False
    cert = Certificate(code=new_code(), person_id=person.id, module_id=module.id,
                       holder_name=(person.display_name or "").strip() or "—",
                       language=person.language, issued_at=now)
    session.add(cert)
    await session.flush()
    progress.record(session, person, "certificate_issued", at=now, channel=channel,
                    module_id=module.id, detail={"code": cert.code})
    return cert, True


async def find(session: AsyncSession, code: str) -> Certificate | None:
    normalized = normalize_code(code)
    if normalized is None:
        return None
    return await session.scalar(select(Certificate).where(Certificate.code == normalized))


async def of_person(session: AsyncSession, person_id: int) -> list[Certificate]:
    rows = await session.scalars(select(Certificate).where(
        Certificate.person_id == person_id, Certificate.revoked_at.is_(None)
    ).order_by(Certificate.issued_at))
    return list(rows)


# ---------------------------------------------------------------------------- the picture

WIDTH, HEIGHT = 1600, 1130  # A4 landscape proportions
INK = (33, 37, 41)
RED = (176, 28, 32)
GOLD = (190, 150, 60)
PAPER = (255, 252, 244)
GREY = (90, 90, 90)
SHADES = 16  # of each ink on paper: what anti-aliased text and lines are made of


@cache
def _palette():
    """Every colour a certificate has: each ink blended into the paper in SHADES steps.

    Mapping the drawing onto this fixed palette and saving it as an indexed PNG takes about
    6 ms and gives a 110 KB file; saving it in full colour took 25-38 ms for 200 KB (measured
    on the 1600 x 1130 picture), which is most of what passing a topic costs the bot.
    """
    from PIL import Image

    colours = [tuple(round(p + (c - p) * i / (SHADES - 1))
                     for p, c in zip(PAPER, ink, strict=True))
               for ink in (INK, RED, GOLD, GREY) for i in range(SHADES)]  # fmt: skip
    palette = Image.new("P", (1, 1))
    palette.putpalette([value for colour in colours for value in colour])
    return palette


@cache
def _font_dir() -> Path:
    import font_source_sans_pro

    return Path(font_source_sans_pro.font_directory)


@cache
def _font(weight: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(_font_dir() / f"SourceSansPro-{weight}.ttf"), size)


def _wrap(draw, text: str, font, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            line = candidate
        else:
            if line:
                lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def render_png(cert: Certificate, module: Module, *, place: str, verify_hint: str) -> bytes:
    """Draw the certificate in the language it was issued in."""
    token = current_language.set(cert.language)
    try:
        return _draw(cert, text_for(module.title, cert.language), place, verify_hint)
    finally:
        current_language.reset(token)


def _draw(cert: Certificate, module_title: str, place: str, verify_hint: str) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    d = ImageDraw.Draw(img)
    d.rectangle((30, 30, WIDTH - 30, HEIGHT - 30), outline=GOLD, width=6)
    d.rectangle((48, 48, WIDTH - 48, HEIGHT - 48), outline=GOLD, width=2)
    cx = WIDTH // 2

    def centered(y: int, text: str, font, fill=INK) -> int:
        d.text((cx, y), text, font=font, fill=fill, anchor="mt")
        return y + font.size + 14

    y = 160
    y = centered(y, _('THE "BÌNH DÂN HỌC VỤ SỐ" MOVEMENT'), _font("Semibold", 34))
    y += 30
    y = centered(y, _("CERTIFICATE OF COMPLETION"), _font("Bold", 78), RED)
    y += 20
    y = centered(y, _("This certifies that"), _font("Regular", 36))
    y += 10
    y = centered(y, cert.holder_name, _font("Bold", 68))
    y += 10
    y = centered(y, _("has completed every lesson and quiz of the topic"), _font("Regular", 36))
    title_font = _font("Semibold", 48)
    for line in _wrap(d, module_title, title_font, WIDTH - 300)[:2]:
        y = centered(y, line, title_font, RED)
    y += 40
    y = centered(y, f"{place}, {fmt_admin_date(cert.issued_at)}", _font("It", 34))
    y = centered(y, _("Verification code: {code}").format(code=cert.code), _font("Bold", 34))
    centered(y, verify_hint, _font("Regular", 26))
    small = _font("Regular", 24)
    note = _("This certifies completing this course on hocvuso. It is not the official "
             "confirmation of basic digital skills under Decision 757/QĐ-BKHCN.")
    yy = HEIGHT - 150
    for line in _wrap(d, note, small, WIDTH - 260):
        d.text((cx, yy), line, font=small, fill=GREY, anchor="mt")
        yy += 32
    out = BytesIO()
    indexed = img.quantize(palette=_palette(), dither=Image.Dither.NONE)
    indexed.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def image_path(data_dir: Path, cert: Certificate) -> Path:
    return data_dir / "certificates" / f"{cert.code}.png"


def ensure_image(data_dir: Path, cert: Certificate, module: Module, *, place: str,
                 verify_hint: str) -> Path:
    """Render the certificate once and keep it (rendering is deterministic)."""
    path = image_path(data_dir, cert)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Its own temporary name: two threads may draw the same certificate at once.
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(render_png(cert, module, place=place, verify_hint=verify_hint))
        tmp.replace(path)
    return path
