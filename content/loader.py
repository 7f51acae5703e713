"""Load and check the curriculum in `content/modules/*.yaml` (format: content/FORMAT.md).

The loader keeps the YAML line of every value, so `hocvuso content check` can say
`file:line: problem` for each mistake an author makes, and the bot refuses to start on
content that does not check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONTENT_DIR = Path(__file__).parent
MODULES_DIR = CONTENT_DIR / "modules"

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
LANGUAGES = ("vi", "en")
COMPETENCES = {
    "1.1", "1.2", "1.3",
    "2.1", "2.2", "2.3", "2.4", "2.5", "2.6",
    "3.1", "3.2", "3.3", "3.4",
    "4.1", "4.2", "4.3", "4.4",
    "5.1", "5.2", "5.3", "5.4",
    "6.1", "6.2", "6.3",
}  # fmt: skip
SKILLS = {
    "smartphone", "vneid", "public-services", "payment", "scams", "personal-data",
    "information", "e-commerce", "ai",
}  # fmt: skip
# Limits that come from the channels: Telegram 4,096 per message, Zalo 2,000, and Zalo OA
# cuts button titles after 35 characters.
CARD_MAX = 700
BUTTON_MAX = 35
MODULE_TITLE_MAX = 60
QUESTION_MAX = 300
EXPLAIN_MAX = 300
ZALO_MESSAGE_MAX = 2000
TELEGRAM_MESSAGE_MAX = 4096

Localized = dict[str, str]


def text_for(value: Localized, lang: str) -> str:
    """The text in `lang`, falling back to Vietnamese (every text has a vi version)."""
    return value.get(lang) or value["vi"]


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    text: Localized
    options: tuple[Localized, ...]
    answer: int  # 0-based index of the right option
    explain: Localized


@dataclass(frozen=True, slots=True)
class Card:
    text: Localized
    image: Path | None = None


@dataclass(frozen=True, slots=True)
class Lesson:
    id: str
    module_id: str
    title: Localized
    competences: tuple[str, ...]
    level: int
    skills: tuple[str, ...]
    cards: tuple[Card, ...]
    quiz: tuple[Question, ...]
    pass_percent: int

    @property
    def pass_score(self) -> int:
        """Right answers needed to pass: the pass share of the questions, rounded up."""
        return -(-len(self.quiz) * self.pass_percent // 100)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.quiz if q.id == question_id), None)


@dataclass(frozen=True, slots=True)
class Module:
    id: str
    order: int
    title: Localized
    short_title: Localized  # for buttons: at most 35 characters
    summary: Localized
    languages: tuple[str, ...]
    lessons: tuple[Lesson, ...]
    source: Path


@dataclass(slots=True)
class Curriculum:
    """The whole course, indexed for the conversation's lookups."""

    modules: tuple[Module, ...]
    lessons: dict[str, Lesson] = field(init=False)
    _modules: dict[str, Module] = field(init=False)

    def __post_init__(self) -> None:
        self._modules = {m.id: m for m in self.modules}
        self.lessons = {lesson.id: lesson for m in self.modules for lesson in m.lessons}

    def module(self, module_id: str) -> Module | None:
        return self._modules.get(module_id)

    def lesson(self, lesson_id: str) -> Lesson | None:
        return self.lessons.get(lesson_id)

    def module_of(self, lesson: Lesson) -> Module:
        return self._modules[lesson.module_id]

    def next_lesson(self, lesson: Lesson) -> Lesson | None:
        """The lesson after this one in the same module, or None at the module's end."""
        lessons = self.module_of(lesson).lessons
        idx = lessons.index(lesson)
        return lessons[idx + 1] if idx + 1 < len(lessons) else None

    def stats(self) -> dict[str, Any]:
        competences = sorted({c for lsn in self.lessons.values() for c in lsn.competences})
        languages = sorted({lang for m in self.modules for lang in m.languages})
        return {
            "modules": len(self.modules),
            "lessons": len(self.lessons),
            "cards": sum(len(lsn.cards) for lsn in self.lessons.values()),
            "questions": sum(len(lsn.quiz) for lsn in self.lessons.values()),
            "competences": competences,
            "domains": sorted({c.split(".")[0] for c in competences}),
            "languages": languages,
        }


# ---------------------------------------------------------------------------- YAML with lines


class _Doc:
    """Plain Python values of a YAML file plus the line of every path inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[tuple[Any, ...], int] = {}
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        self.data = self._convert(node, ()) if node is not None else None

    def _convert(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        # A mapping value is reported at its key's line (set below), other nodes at their own.
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                if key in out:
                    self.lines[(*path, key, "__dup__")] = key_node.start_mark.line + 1
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self._convert(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, (*path, i)) for i, v in enumerate(node.value)]
        return _scalar(node)

    def line(self, path: tuple[Any, ...]) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------- checking


@dataclass(frozen=True, slots=True)
class Problem:
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        try:
            shown = self.file.relative_to(Path.cwd())
        except ValueError:
            shown = self.file
        return f"{shown}:{self.line}: {self.message}"


class ContentError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _ModuleReader:
    """Turns one parsed file into a Module, collecting every problem instead of stopping."""

    def __init__(self, doc: _Doc, root: Path) -> None:
        self.doc = doc
        self.root = root
        self.problems: list[Problem] = []
        self.languages: tuple[str, ...] = ("vi",)

    def problem(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(self.doc.path, self.doc.line(path), message))

    def localized(self, value: Any, path: tuple[Any, ...], what: str, limit: int) -> Localized:
        if isinstance(value, str):
            out = {"vi": value}
        elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            out = {str(k): v for k, v in value.items()}
            for lang in out:
                if lang not in LANGUAGES:
                    self.problem(path, f"{what}: unknown language '{lang}'")
        else:
            self.problem(path, f"{what}: expected text or a mapping of languages to text")
            return {"vi": ""}
        for lang in self.languages:
            if not out.get(lang, "").strip():
                self.problem(path, f"{what}: missing '{lang}' text (the module declares {lang})")
        for lang, text in out.items():
            if len(text.strip()) > limit:
                self.problem(path, f"{what} ({lang}): {len(text.strip())} characters, max {limit}")
        out.setdefault("vi", "")
        return {k: v.strip() for k, v in out.items()}

    def ident(self, value: Any, path: tuple[Any, ...], what: str) -> str:
        if not isinstance(value, str) or not ID_RE.match(value):
            self.problem(path, f"{what}: id must be 1-20 of a-z, 0-9 and '-', got {value!r}")
            return str(value)
        return value

    def read(self) -> Module | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), "a module file must be a mapping (id, title, lessons, ...)")
            return None
        for key in data:
            if key not in {
                "id",
                "order",
                "languages",
                "title",
                "short_title",
                "summary",
                "pass_percent",
                "lessons",
            }:
                self.problem((key,), f"unknown field '{key}'")
        for key in ("id", "order", "title", "lessons"):
            if key not in data:
                self.problem((), f"missing field '{key}'")
        langs = data.get("languages", ["vi"])
        if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
            self.problem(("languages",), "languages: expected a list such as [vi, en]")
            langs = ["vi"]
        for lang in langs:
            if lang not in LANGUAGES:
                self.problem(("languages",), f"languages: unknown language '{lang}'")
        if "vi" not in langs:
            self.problem(("languages",), "languages: Vietnamese (vi) is required")
        self.languages = tuple(x for x in langs if x in LANGUAGES) or ("vi",)
        module_id = self.ident(data.get("id"), ("id",), "module")
        order = data.get("order", 0)
        if not isinstance(order, int) or isinstance(order, bool):
            self.problem(("order",), "order: expected a whole number")
            order = 0
        pass_percent = data.get("pass_percent", 80)
        if not isinstance(pass_percent, int) or not 1 <= pass_percent <= 100:
            self.problem(("pass_percent",), "pass_percent: expected a whole number 1-100")
            pass_percent = 80
        title = self.localized(data.get("title", ""), ("title",), "module title", MODULE_TITLE_MAX)
        if "short_title" in data:
            short = self.localized(data["short_title"], ("short_title",), "short title",
                                   BUTTON_MAX)
        elif any(len(t) > BUTTON_MAX for t in title.values()):
            self.problem(("title",), f"module title is longer than {BUTTON_MAX} characters: "
                         "add a short_title for the menu button")
            short = title
        else:
            short = title
        summary = self.localized(data.get("summary", ""), ("summary",), "summary", CARD_MAX)
        lessons_raw = data.get("lessons")
        lessons: list[Lesson] = []
        if not isinstance(lessons_raw, list) or not lessons_raw:
            self.problem(("lessons",), "lessons: expected a list of at least one lesson")
        else:
            for i, raw in enumerate(lessons_raw):
                lesson = self.lesson(raw, ("lessons", i), module_id, pass_percent)
                if lesson:
                    lessons.append(lesson)
        return Module(
            module_id, order, title,
            short, summary, self.languages, tuple(lessons), self.doc.path
        )

    def lesson(
        self, raw: Any, path: tuple[Any, ...], module_id: str, pass_percent: int
    ) -> Lesson | None:
        if not isinstance(raw, dict):
            self.problem(path, "a lesson must be a mapping (id, title, cards, quiz, ...)")
            return None
        for key in raw:
            if key not in {"id", "title", "competences", "level", "skills", "cards", "quiz"}:
                self.problem((*path, key), f"unknown field '{key}'")
        lesson_id = self.ident(raw.get("id"), (*path, "id"), "lesson")
        title = self.localized(raw.get("title", ""), (*path, "title"), "lesson title", BUTTON_MAX)
        comps = raw.get("competences")
        if not isinstance(comps, list) or not comps:
            self.problem(
                (*path, "competences"), "competences: list at least one code, e.g. ['4.2']"
            )
            comps = []
        competences = tuple(str(c) for c in comps)
        for j, code in enumerate(competences):
            if code not in COMPETENCES:
                self.problem(
                    (*path, "competences", j),
                    f"unknown competence code '{code}' (TT 02/2025: 1.1 ... 6.3)",
                )
        level = raw.get("level", 1)
        if not isinstance(level, int) or not 1 <= level <= 8:
            self.problem((*path, "level"), "level: expected 1-8")
            level = 1
        skills = tuple(str(s) for s in raw.get("skills", []) or [])
        for j, skill in enumerate(skills):
            if skill not in SKILLS:
                self.problem((*path, "skills", j), f"unknown skill tag '{skill}'")
        cards_raw = raw.get("cards")
        cards: list[Card] = []
        if not isinstance(cards_raw, list) or not 3 <= len(cards_raw) <= 6:
            self.problem((*path, "cards"), "cards: a lesson has 3 to 6 cards")
        for j, card in enumerate(cards_raw if isinstance(cards_raw, list) else []):
            cpath = (*path, "cards", j)
            if not isinstance(card, dict) or "text" not in card:
                self.problem(cpath, "a card needs a text")
                continue
            for key in card:
                if key not in {"text", "image"}:
                    self.problem((*cpath, key), f"unknown field '{key}'")
            image = None
            if card.get("image") is not None:
                image = (self.root / str(card["image"])).resolve()
                if not image.is_relative_to(self.root.resolve()) or not image.is_file():
                    self.problem((*cpath, "image"), f"image not found: {card['image']}")
                    image = None
            cards.append(
                Card(self.localized(card["text"], (*cpath, "text"), "card", CARD_MAX), image)
            )
        quiz_raw = raw.get("quiz")
        quiz: list[Question] = []
        if not isinstance(quiz_raw, list) or not 4 <= len(quiz_raw) <= 6:
            self.problem((*path, "quiz"), "quiz: a lesson has 4 to 6 questions")
        seen: set[str] = set()
        for j, q in enumerate(quiz_raw if isinstance(quiz_raw, list) else []):
            question = self.question(q, (*path, "quiz", j))
            if question is None:
                continue
            if question.id in seen:
                self.problem((*path, "quiz", j, "id"), f"duplicate question id '{question.id}'")
            seen.add(question.id)
            quiz.append(question)
        return Lesson(
            lesson_id,
            module_id,
            title,
            competences,
            level,
            skills,
            tuple(cards),
            tuple(quiz),
            pass_percent,
        )

    def question(self, raw: Any, path: tuple[Any, ...]) -> Question | None:
        if not isinstance(raw, dict):
            self.problem(path, "a question must be a mapping (id, question, options, answer)")
            return None
        for key in raw:
            if key not in {"id", "question", "options", "answer", "explain"}:
                self.problem((*path, key), f"unknown field '{key}'")
        qid = self.ident(raw.get("id"), (*path, "id"), "question")
        text = self.localized(
            raw.get("question", ""), (*path, "question"), "question", QUESTION_MAX
        )
        opts_raw = raw.get("options")
        options: list[Localized] = []
        if not isinstance(opts_raw, list) or not 2 <= len(opts_raw) <= 4:
            self.problem((*path, "options"), "options: a question has 2 to 4 options")
        for k, opt in enumerate(opts_raw if isinstance(opts_raw, list) else []):
            options.append(self.localized(opt, (*path, "options", k), "option", BUTTON_MAX))
        answer = raw.get("answer")
        if (
            not isinstance(answer, int)
            or isinstance(answer, bool)
            or not (1 <= answer <= len(options))
        ):
            self.problem(
                (*path, "answer"),
                f"answer: expected the number of an option, 1 to {len(options)}, got {answer!r}",
            )
            answer = 1
        explain = self.localized(
            raw.get("explain", ""), (*path, "explain"), "explanation", EXPLAIN_MAX
        )
        total = len(text["vi"]) + sum(len(o["vi"]) + 8 for o in options)
        if total > ZALO_MESSAGE_MAX:
            self.problem(
                path,
                f"question with its options is {total} characters; Zalo takes {ZALO_MESSAGE_MAX}",
            )
        return Question(qid, text, tuple(options), answer - 1, explain)


def _module_files(directory: Path) -> Iterator[Path]:
    yield from sorted(directory.glob("*.yaml"))
    yield from sorted(directory.glob("*.yml"))


def check(directory: Path = MODULES_DIR) -> tuple[Curriculum | None, list[Problem]]:
    """Read every module file; return the curriculum (None if any problem) and the problems."""
    problems: list[Problem] = []
    modules: list[Module] = []
    root = directory.parent
    lesson_seen: dict[str, Path] = {}
    module_seen: dict[str, Path] = {}
    files = list(_module_files(directory))
    if not files:
        problems.append(Problem(directory, 1, "no module files (*.yaml) found"))
    for path in files:
        try:
            doc = _Doc(path)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problems.append(Problem(path, line, f"not valid YAML: {getattr(exc, 'problem', exc)}"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(path, 1, f"cannot read: {exc}"))
            continue
        for dup_path, line in doc.lines.items():
            if dup_path and dup_path[-1] == "__dup__":
                problems.append(Problem(path, line, f"duplicate key '{dup_path[-2]}'"))
        reader = _ModuleReader(doc, root)
        module = reader.read()
        problems.extend(reader.problems)
        if module is None:
            continue
        if module.id in module_seen:
            problems.append(
                Problem(
                    path,
                    doc.line(("id",)),
                    f"duplicate module id '{module.id}' (also in {module_seen[module.id].name})",
                )
            )
        module_seen[module.id] = path
        for i, lesson in enumerate(module.lessons):
            if lesson.id in lesson_seen:
                problems.append(
                    Problem(
                        path,
                        doc.line(("lessons", i, "id")),
                        f"duplicate lesson id '{lesson.id}' (also in "
                        f"{lesson_seen[lesson.id].name})",
                    )
                )
            lesson_seen[lesson.id] = path
        modules.append(module)
    if problems:
        return None, problems
    modules.sort(key=lambda m: (m.order, m.id))
    return Curriculum(tuple(modules)), []


def load(directory: Path = MODULES_DIR) -> Curriculum:
    """The curriculum, or ContentError listing every problem."""
    curriculum, problems = check(directory)
    if curriculum is None:
        raise ContentError(problems)
    return curriculum
