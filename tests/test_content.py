"""`hocvuso content check` and `content stats` on the shipped course and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.cli import main
from content.loader import MODULES_DIR, check, load

SHIPPED = sorted(MODULES_DIR.glob("*.yaml"))


def test_shipped_content_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["content", "check"]) == 0
    assert "content OK" in capsys.readouterr().out


def test_stats_meet_the_curriculum_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["content", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["modules"] >= 8 and stats["lessons"] >= 32 and stats["questions"] >= 160
    assert len({c.split(".")[0] for c in stats["competences"]}) >= 5
    assert "vi" in stats["languages"] and "en" in stats["languages"]


def test_every_lesson_is_phone_sized() -> None:
    course = load()
    for lesson in course.lessons.values():
        assert 3 <= len(lesson.cards) <= 6
        assert 4 <= len(lesson.quiz) <= 6
        for card in lesson.cards:
            assert len(card.text["vi"]) <= 700
        for q in lesson.quiz:
            assert 2 <= len(q.options) <= 4 and 0 <= q.answer < len(q.options)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    folder = tmp_path / "modules"
    folder.mkdir()
    for path in SHIPPED[:2]:
        shutil.copy(path, folder / path.name)
    return folder


def line_of(path: Path, needle: str, start: int = 0) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def replace_once(path: Path, old: str, new: str) -> int:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    line = text[: text.index(old)].count("\n") + 1 + (1 if old.startswith("\n") else 0)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return line


def run_check(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["content", "check", "--dir", str(folder)]) == 1
    return capsys.readouterr().out


def first_file(folder: Path) -> Path:
    return sorted(folder.glob("*.yaml"))[0]


BROKEN = [
    # (what to replace, replacement, expected message part)
    ("answer: 2", "answer: 7", "answer: expected the number of an option"),
    ("competences: [", "competences: [\"9.9\", ", "unknown competence code '9.9'"),
    ("level: 1", "level: 12", "level: expected 1-8"),
    ("\n    quiz:", "\n    quizz:", "unknown field 'quizz'"),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN)
def test_broken_files_are_reported_with_line(copy: Path, capsys: pytest.CaptureFixture[str],
                                             old: str, new: str, message: str) -> None:
    path = first_file(copy)
    line = replace_once(path, old, new)
    out = run_check(copy, capsys)
    assert f"{path.name}:{line}: " in out and message in out, out


def test_card_too_long(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = first_file(copy)
    line = replace_once(path, "\n    cards:\n", "\n    cards:\n      - text: \""
                        + "Rất dài " * 120 + "\"\n") + 1
    out = run_check(copy, capsys)
    assert f"{path.name}:{line}: card (vi):" in out and "max 700" in out


def test_button_label_too_long(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = first_file(copy)
    text = path.read_text(encoding="utf-8")
    start = text.index("        options:")
    nl = text.index("\n", start) + 1
    end = text.index("\n", nl)
    option_line = text[nl:end]
    prefix = option_line[: option_line.index("- ") + 2]
    path.write_text(text[:nl] + prefix + '"' + "Một lựa chọn quá dài cho nút bấm Zalo" + '"'
                    + text[end:], encoding="utf-8")
    line = text[:nl].count("\n") + 1
    out = run_check(copy, capsys)
    assert f"{path.name}:{line}: option (vi):" in out and "max 35" in out, out


def test_duplicate_lesson_id_across_files(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = sorted(copy.glob("*.yaml"))
    first_lesson = load(copy).module(load(copy).modules[0].id).lessons[0].id
    second = load(copy).modules[1].lessons[0].id
    line = replace_once(b, f"id: {second}", f"id: {first_lesson}")
    out = run_check(copy, capsys)
    assert f"{b.name}:{line}: duplicate lesson id '{first_lesson}'" in out
    assert a.name in out


def test_missing_translation_when_language_declared(copy: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = first_file(copy)
    replace_once(path, "languages: [vi]", "languages: [vi, en]")
    out = run_check(copy, capsys)
    assert "missing 'en' text (the module declares en)" in out


def test_dangling_image_and_bad_yaml(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = first_file(copy)
    card = '      - image: images/khong-co.png\n        text: "Thẻ có ảnh"\n'
    line = replace_once(path, "\n    cards:\n", "\n    cards:\n" + card) + 1
    out = run_check(copy, capsys)
    assert f"{path.name}:{line}: image not found: images/khong-co.png" in out
    bad = copy / "99-bad.yaml"
    bad.write_text("id: x\nlessons: [\n  - {", encoding="utf-8")
    out = run_check(copy, capsys)
    assert "99-bad.yaml:" in out and "not valid YAML" in out


def test_empty_and_odd_files(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    _course, problems = check(folder)
    assert problems and "no module files" in problems[0].message
    (folder / "a.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    (folder / "b.yaml").write_text("", encoding="utf-8")
    (folder / "c.yaml").write_bytes(b"\xff\xfe\x00bad")
    _course, problems = check(folder)
    assert len(problems) >= 3
    assert all(p.line >= 1 for p in problems)


def test_long_module_title_needs_a_short_one(copy: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = next(p for p in sorted(copy.glob("*.yaml")) if "short_title" not in p.read_text())
    line = replace_once(path, "\ntitle: \"", "\ntitle: \"Tiêu đề dài ")
    out = run_check(copy, capsys)
    assert f"{path.name}:{line}: module title is longer than 35" in out, out
