"""Certificates of completing a module: issuing, checking a code, and drawing the PNG.

Codes are random (`secrets`), ~50 bits, in an alphabet without look-alike characters, so they
can be typed from paper and cannot be enumerated. The picture is drawn with Pillow and a
shipped font that has every Vietnamese glyph (Source Sans Pro, SIL OFL).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import cache, lru_cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Certificate, Person
from bot.i18n import LANGUAGES, _, current_language, fmt_admin_date
from bot.services import progress
from content.loader import Module, text_for

if TYPE_CHECKING:  # Pillow is imported when a picture is first drawn
    from PIL import Image
    from PIL.ImageFont import FreeTypeFont

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
def _font(weight: str, size: int) -> FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.truetype(str(_font_dir() / f"SourceSansPro-{weight}.ttf"), size)


@lru_cache(maxsize=64)
def _wrap(text: str, font: FreeTypeFont, width: int) -> tuple[str, ...]:
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if font.getlength(candidate) <= width:
            line = candidate
        else:
            if line:
                lines.append(line)
            line = word
    if line:
        lines.append(line)
    return tuple(lines)


def render_png(cert: Certificate, module: Module, *, place: str, verify_hint: str) -> bytes:
    """Draw the certificate in the language it was issued in."""
    token = current_language.set(cert.language)
    try:
        return _draw(cert, text_for(module.title, cert.language), place, verify_hint)
    finally:
        current_language.reset(token)


# Where the lines go: every line down to "has completed ..." is at a fixed height (the holder's
# name is one line), so is the note at the bottom; the module title has 1 or 2 lines, and the
# place, code and hint follow it.
CX = WIDTH // 2
Y_HEADING, Y_TITLE, Y_CERTIFIES, Y_NAME, Y_COMPLETED, Y_MODULE = 160, 238, 350, 410, 502, 552
Y_NOTE, NOTE_LEADING = HEIGHT - 150, 32
LEADING = 14  # between a line's font size and the next line


@lru_cache(maxsize=len(LANGUAGES))  # ~1.9 MB each
def _template(language: str) -> Image.Image:
    """The borders and every static line of one language, already mapped onto the palette.

    Drawing a certificate took ~12 ms of the bot's CPU per module passed, most of it spent
    drawing and quantizing the same borders and sentences every time. Now a certificate
    copies the template and draws only its own lines (`_stamp`). The caller has set
    `current_language` to `language`."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    d = ImageDraw.Draw(img)
    d.rectangle((30, 30, WIDTH - 30, HEIGHT - 30), outline=GOLD, width=6)
    d.rectangle((48, 48, WIDTH - 48, HEIGHT - 48), outline=GOLD, width=2)
    for y, text, font, fill in (
        (Y_HEADING, _('THE "BÌNH DÂN HỌC VỤ SỐ" MOVEMENT'), _font("Semibold", 34), INK),
        (Y_TITLE, _("CERTIFICATE OF COMPLETION"), _font("Bold", 78), RED),
        (Y_CERTIFIES, _("This certifies that"), _font("Regular", 36), INK),
        (Y_COMPLETED, _("has completed every lesson and quiz of the topic"),
         _font("Regular", 36), INK),
    ):
        d.text((CX, y), text, font=font, fill=fill, anchor="mt")
    small = _font("Regular", 24)
    note = _("This certifies completing this course on hocvuso. It is not the official "
             "confirmation of basic digital skills under Decision 757/QĐ-BKHCN.")
    for i, line in enumerate(_wrap(note, small, WIDTH - 260)):
        d.text((CX, Y_NOTE + i * NOTE_LEADING), line, font=small, fill=GREY, anchor="mt")
    return img.quantize(palette=_palette(), dither=Image.Dither.NONE)


@cache
def _shades(ink: tuple[int, int, int]) -> bytes:
    """For each text coverage 0-255, the palette index of `ink` drawn that strongly on paper:
    what drawing in colour and then quantizing would give."""
    from PIL import Image

    ramp = Image.new("RGB", (256, 1), PAPER)
    ramp.paste(ink, mask=Image.frombytes("L", (256, 1), bytes(range(256))))
    return ramp.quantize(palette=_palette(), dither=Image.Dither.NONE).tobytes()


_COVERED = bytes([0] + [255] * 255)  # where the coverage is 0, the picture stays as it is


def _stamp(img: Image.Image, y: int, text: str, font: FreeTypeFont,
           fill: tuple[int, int, int]) -> None:
    """Draw one centred line onto the indexed picture.

    The text's coverage is drawn in a small greyscale box and turned into palette indices
    with a table, which is cheaper than drawing in colour and quantizing."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text, anchor="mt")
    box = (max(CX + left, 0), max(y + top, 0), min(CX + right, WIDTH), min(y + bottom, HEIGHT))
    if box[0] >= box[2] or box[1] >= box[3]:
        return
    coverage = Image.new("L", (box[2] - box[0], box[3] - box[1]))
    ImageDraw.Draw(coverage).text((CX - box[0], y - box[1]), text, font=font, fill=255,
                                  anchor="mt")
    raw = coverage.tobytes()
    img.paste(Image.frombytes("P", coverage.size, raw.translate(_shades(fill))), box[:2],
              Image.frombytes("L", coverage.size, raw.translate(_COVERED)))


def _draw(cert: Certificate, module_title: str, place: str, verify_hint: str) -> bytes:
    img = _template(current_language.get()).copy()
    lines = [(Y_NAME, cert.holder_name, _font("Bold", 68), INK)]
    y = Y_MODULE
    title_font = _font("Semibold", 48)
    for line in _wrap(module_title, title_font, WIDTH - 300)[:2]:
        lines.append((y, line, title_font, RED))
        y += title_font.size + LEADING
    y += 40
    for text, font in ((f"{place}, {fmt_admin_date(cert.issued_at)}", _font("It", 34)),
                       (_("Verification code: {code}").format(code=cert.code),
                        _font("Bold", 34)),
                       (verify_hint, _font("Regular", 26))):
        lines.append((y, text, font, INK))
        y += font.size + LEADING
    for line in lines:
        _stamp(img, *line)
    out = BytesIO()
    img.save(out, format="PNG", compress_level=1)
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
