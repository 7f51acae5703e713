"""The certificate picture drawn from a cached template (see bot.services.certificates) looks
exactly like the same picture drawn from scratch, as an indexed PNG."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from io import BytesIO

from PIL import Image, ImageChops, ImageDraw

from bot.db.models import Certificate
from bot.i18n import _, current_language, fmt_admin_date
from bot.services import certificates as c
from content.loader import Curriculum, Module, text_for

PLACE = "Xã Hải Hậu"
LONG_TITLE = ("Một chủ đề có tiêu đề rất dài để kiểm tra việc xuống dòng trên giấy chứng nhận "
              "hoàn thành khoá học")


def certificate(name: str = "Nguyễn Thị Hồng Nhung", language: str = "vi",
                code: str = "HVS-7K3MQ-9TX2A") -> Certificate:
    return Certificate(code=code, holder_name=name, language=language, module_id="m",
                       issued_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


def render(cert: Certificate, module: Module) -> Image.Image:
    png = c.render_png(cert, module, place=PLACE, verify_hint=f"/verify {cert.code}")
    image = Image.open(BytesIO(png))
    image.load()
    return image


def from_scratch(cert: Certificate, module: Module) -> Image.Image:
    """The whole picture drawn in colour and then quantized: the plain way."""
    token = current_language.set(cert.language)
    try:
        img = Image.new("RGB", (c.WIDTH, c.HEIGHT), c.PAPER)
        d = ImageDraw.Draw(img)
        d.rectangle((30, 30, c.WIDTH - 30, c.HEIGHT - 30), outline=c.GOLD, width=6)
        d.rectangle((48, 48, c.WIDTH - 48, c.HEIGHT - 48), outline=c.GOLD, width=2)
        title = c._font("Semibold", 48)
        lines = [(_('THE "BÌNH DÂN HỌC VỤ SỐ" MOVEMENT'), c._font("Semibold", 34), c.INK, 30),
                 (_("CERTIFICATE OF COMPLETION"), c._font("Bold", 78), c.RED, 20),
                 (_("This certifies that"), c._font("Regular", 36), c.INK, 10),
                 (cert.holder_name, c._font("Bold", 68), c.INK, 10),
                 (_("has completed every lesson and quiz of the topic"),
                  c._font("Regular", 36), c.INK, 0)]
        wrapped = c._wrap(text_for(module.title, cert.language), title, c.WIDTH - 300)
        lines += [(line, title, c.RED, 0) for line in wrapped]
        lines[-1] = (*lines[-1][:3], 40)
        lines += [(f"{PLACE}, {fmt_admin_date(cert.issued_at)}", c._font("It", 34), c.INK, 0),
                  (_("Verification code: {code}").format(code=cert.code),
                   c._font("Bold", 34), c.INK, 0),
                  (f"/verify {cert.code}", c._font("Regular", 26), c.INK, 0)]
        y = 160
        for text, font, fill, gap in lines:
            d.text((c.CX, y), text, font=font, fill=fill, anchor="mt")
            y += font.size + 14 + gap
        small = c._font("Regular", 24)
        note = _("This certifies completing this course on hocvuso. It is not the official "
                 "confirmation of basic digital skills under Decision 757/QĐ-BKHCN.")
        for i, line in enumerate(c._wrap(note, small, c.WIDTH - 260)):
            d.text((c.CX, c.HEIGHT - 150 + 32 * i), line, font=small, fill=c.GREY, anchor="mt")
        return img.quantize(palette=c._palette(), dither=Image.Dither.NONE)
    finally:
        current_language.reset(token)


def differing_rows(a: Image.Image, b: Image.Image) -> tuple[int, int] | None:
    box = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox()
    return None if box is None else (box[1], box[3])


def test_looks_exactly_like_drawing_from_scratch(curriculum: Curriculum) -> None:
    short = curriculum.modules[0]
    long = dataclasses.replace(short, title={"vi": LONG_TITLE, "en": "A topic with a very long "
                                             "title that wraps onto a second line on the page"})
    for language in ("vi", "en"):
        for module in (short, long):
            cert = certificate(language=language)
            picture = render(cert, module)
            assert (picture.format, picture.mode, picture.size) == ("PNG", "P", (1600, 1130))
            assert differing_rows(picture, from_scratch(cert, module)) is None
    assert len(c._wrap(LONG_TITLE, c._font("Semibold", 48), c.WIDTH - 300)) == 2


def test_a_name_changes_only_the_name_line(curriculum: Curriculum) -> None:
    module = curriculum.modules[0]
    rows = differing_rows(render(certificate("Lê Văn An"), module),
                          render(certificate("Nguyễn Thị Hồng Nhung"), module))
    assert rows is not None and rows[0] >= c.Y_NAME and rows[1] <= c.Y_COMPLETED


def test_languages_do_not_share_a_template(curriculum: Curriculum) -> None:
    module = curriculum.modules[0]
    rows = differing_rows(render(certificate(language="vi"), module),
                          render(certificate(language="en"), module))
    assert rows is not None and rows[0] < c.Y_NAME and rows[1] > c.HEIGHT - 150
