"""Find a user's commune from what they type, including names that no longer exist.

Data comes from the `vietnam-provinces` package (National Statistics Office of Viet Nam
lists): the current units (34 provinces; xã / phường / đặc khu, no districts since the
1 July 2025 reform), the pre-2025 provinces, districts and communes, and the official
conversion table between the two. It is read once, when a `LocalityIndex` is built.

Legacy names matter because people kept their old addresses: "xã Hải Tây, huyện Hải Hậu,
tỉnh Nam Định" is still how many residents (and their papers) say where they live, yet none
of those three units exists any more. Search therefore goes through the old commune and
district names to the current commune they became part of, and `Match.via` says which old
name led there, so the bot can show "Xã Hải Quang (from Xã Hải Tây (cũ))".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "BUTTON_LABEL_MAX",
    "MAX_INPUT_CHARS",
    "Commune",
    "LocalityIndex",
    "Match",
    "normalize",
]

MAX_INPUT_CHARS = 100
"""Typed text is cut to this length before matching; no address needs more."""
BUTTON_LABEL_MAX = 35
_MAX_QUERY_WORDS = 12
_MAX_SEGMENTS = 4

# Letters that NFKD leaves alone; apostrophes vanish so "H'Leo" and "Hleo" compare equal.
_FOLD = {"đ": "d", "ð": "d"}
_APOSTROPHES = frozenset("'’ʼ`")
_LETTER_MARKS = {"\u0306": 1, "\u0302": 2, "\u031b": 3}  # breve, circumflex, horn
_TONE_MARKS = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}

_COMMUNE, _DISTRICT, _PROVINCE = "commune", "district", "province"

# Administrative words a user may put before a name (normalized) -> (unit type, level).
_TYPE_WORDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("xa",): ("xã", _COMMUNE),
    ("x",): ("xã", _COMMUNE),
    ("phuong",): ("phường", _COMMUNE),
    ("p",): ("phường", _COMMUNE),
    ("thi", "tran"): ("thị trấn", _COMMUNE),
    ("tt",): ("thị trấn", _COMMUNE),
    ("dac", "khu"): ("đặc khu", _COMMUNE),
    ("huyen",): ("huyện", _DISTRICT),
    ("h",): ("huyện", _DISTRICT),
    ("quan",): ("quận", _DISTRICT),
    ("q",): ("quận", _DISTRICT),
    ("thi", "xa"): ("thị xã", _DISTRICT),
    ("tx",): ("thị xã", _DISTRICT),
    # Typed before a commune-sized name, "thành phố" means an old city such as Nam Định.
    ("thanh", "pho"): ("thành phố", _DISTRICT),
    ("tp",): ("thành phố", _DISTRICT),
    ("tinh",): ("tỉnh", _PROVINCE),
}
_PROVINCE_WORDS: tuple[tuple[str, ...], ...] = (("tinh",), ("thanh", "pho"), ("tp",), ())
_PROVINCE_ALIASES: dict[str, int] = {"hcm": 79, "tphcm": 79}

# Rank tiers, lower is better, per kind of match (exact, prefix, infix). Old district names
# jump ahead when the user typed "huyện"/"quận"/"thị xã"/"thành phố": that names the district.
_EXACT, _PREFIX, _INFIX = 0, 1, 2
_TIERS_CURRENT = (0, 1, 6)
_TIERS_OLD_COMMUNE = (2, 4, None)
_TIERS_OLD_DISTRICT = (3, 5, None)
_TIERS_OLD_DISTRICT_FIRST = (-2, -1, None)

type _Accent = tuple[str, tuple[int, ...]] | None


def _fold(text: str) -> str:
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text.lower()):
        if unicodedata.combining(ch) or ch in _APOSTROPHES:
            continue
        ch = _FOLD.get(ch, ch)
        out.append(ch if ch.isalnum() else " ")
    return "".join(out).lower()


def normalize(text: str) -> str:
    """Fold text for accent- and case-insensitive comparison.

    Strips every Vietnamese diacritic (đ -> d), lowercases, turns punctuation, symbols and
    whitespace runs into single spaces and trims: "GIAO THỦY", "Giao Thuỷ" and "giao  thuy"
    all give "giao thuy". Apostrophes are dropped, not spaced ("Ea H'Leo" -> "ea hleo").
    """
    return " ".join(_fold(text).split())


def _accent(word: str) -> _Accent:
    """Diacritics of one word, tone position ignored ("thuỷ" == "thủy"); None if it has none."""
    letters: list[str] = []
    tones: list[int] = []
    for ch in unicodedata.normalize("NFD", word.lower().replace("ð", "đ")):
        if ch in _TONE_MARKS:
            tones.append(_TONE_MARKS[ch])
        elif ch in _LETTER_MARKS or not unicodedata.combining(ch):
            letters.append(ch)
    base = unicodedata.normalize("NFC", "".join(letters))
    if not tones and base.isascii():
        return None
    return base, tuple(sorted(tones))


_WORD_SPLIT = re.compile(r"[^\w'’ʼ`]+")


def _tokens(text: str) -> tuple[tuple[str, ...], tuple[_Accent, ...]]:
    """Normalized words plus, aligned with them, the diacritics each word was typed with."""
    words: list[str] = []
    accents: list[_Accent] = []
    for raw in _WORD_SPLIT.split(unicodedata.normalize("NFC", text)):
        if raw:
            folded, marks = _word_tokens(raw)
            words.extend(folded)
            accents.extend(marks)
    return tuple(words), tuple(accents)


@lru_cache(maxsize=8192)
def _word_tokens(raw: str) -> tuple[tuple[str, ...], tuple[_Accent, ...]]:
    folded = tuple(_fold(raw).split())
    marks = (_accent(raw),) if len(folded) == 1 else (None,) * len(folded)
    return folded, marks


def _collation_key(text: str) -> tuple[str, str, str]:
    """Vietnamese alphabetical order: a < ă < â, d < đ, o < ô < ơ ...; tones break ties."""
    letters: list[int] = []  # ord(base letter) * 4 + letter mark, so "đ" sorts right after "d"
    tones: list[int] = []
    for ch in unicodedata.normalize("NFD", text.lower()):
        if not unicodedata.combining(ch):
            letters.append(ord("d") * 4 + 1 if ch == "đ" else ord(ch) * 4)
            tones.append(0)
        elif letters and ch in _LETTER_MARKS:
            letters[-1] += _LETTER_MARKS[ch]
        elif tones and ch in _TONE_MARKS:
            tones[-1] = _TONE_MARKS[ch]
    return "".join(map(chr, letters)), "".join(map(str, tones)), text


def _strip_prefix(name: str, prefixes: Sequence[str]) -> str:
    """ "Xã Hải Hậu" -> "Hải Hậu" (case-insensitive: the data has one "xã ..." in lowercase)."""
    lowered = name.lower()
    for prefix in prefixes:
        if lowered.startswith(prefix.lower() + " "):
            return name[len(prefix) + 1 :].strip()
    return name.strip()


def _split_type(words: Sequence[str]) -> tuple[int, str | None, str | None]:
    """Leading administrative word(s): (how many words, unit type, level)."""
    for size in (2, 1):
        head = tuple(words[:size])
        if len(head) == size and head in _TYPE_WORDS:
            return size, *_TYPE_WORDS[head]
    return 0, None, None


def _word_match(query: tuple[str, ...], name: tuple[str, ...]) -> tuple[int, int] | None:
    """(kind, start): exact; each typed word a prefix of the name's words from the start
    ("giao th" ~ "giao thuy"); the same further in ("thuy" ~ "giao thuy"); else None."""
    n, m = len(query), len(name)
    if n == 0 or n > m:
        return None
    if query == name:
        return _EXACT, 0
    for start in range(m - n + 1):
        if all(name[start + i].startswith(q) for i, q in enumerate(query)):
            return (_PREFIX if start == 0 else _INFIX), start
    return None


def _segments(text: str) -> list[str]:
    """Comma-separated parts ("Hải Tây, Hải Hậu, Nam Định") of the capped input."""
    cut = text[:MAX_INPUT_CHARS]
    for sep in ";\n|/":
        cut = cut.replace(sep, ",")
    return [part for part in cut.split(",") if normalize(part)][:_MAX_SEGMENTS]


@dataclass(frozen=True, slots=True)
class Commune:
    """A current (post-July-2025) commune-level unit."""

    code: int
    name: str
    short_name: str
    division_type: str
    province_code: int
    province_name: str

    @property
    def label(self) -> str:
        """ "Xã Hải Hậu, Tỉnh Ninh Bình": for messages; may be too long for a button."""
        return f"{self.name}, {self.province_name}"

    @property
    def button_label(self) -> str:
        """The name alone ("Xã Hải Hậu"), shortened only if over `BUTTON_LABEL_MAX` chars."""
        for candidate in (self.name, self.short_name):
            if len(candidate) <= BUTTON_LABEL_MAX:
                return candidate
        return self.short_name[: BUTTON_LABEL_MAX - 1] + "…"


@dataclass(frozen=True)
class Match:
    """A search hit. `via` is the old name that led here ("Huyện Hải Hậu (cũ)"), or None."""

    commune: Commune
    via: str | None


@dataclass(frozen=True, slots=True)
class _Entry:
    """A searchable name (current or old) and the current communes it stands for."""

    words: tuple[str, ...]
    accents: tuple[_Accent, ...]
    unit_type: str
    via: str | None
    codes: tuple[int, ...]


class _Group:
    """Entries of one kind, with a word-prefix index so a search scans only likely ones."""

    __slots__ = ("_by_prefix", "entries")

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self.entries = tuple(entries)
        by_prefix: dict[str, list[_Entry]] = {}
        for entry in self.entries:
            keys = {word[:size] for word in entry.words for size in (1, 2)}
            for key in keys:
                by_prefix.setdefault(key, []).append(entry)
        self._by_prefix = {key: tuple(found) for key, found in by_prefix.items()}

    def candidates(self, first_word: str) -> tuple[_Entry, ...]:
        """Entries with a word starting like `first_word`: every possible match is among them."""
        return self._by_prefix.get(first_word[:2], ())


def _entry(name: str, unit_type: str, via: str | None, codes: Iterable[int]) -> _Entry:
    words, accents = _tokens(_strip_prefix(name, (unit_type,)))
    return _Entry(words, accents, unit_type, via, tuple(codes))


class LocalityIndex:
    """Communes of the provinces a deployment serves, searchable by current and old names.

    Build once at start-up and share it: it is immutable, so concurrent searches are safe.
    Only the in-scope communes and the old names leading to them are kept, as plain data.
    """

    def __init__(self, province_codes: Iterable[int]) -> None:
        from vietnam_provinces import Province, ProvinceCode, Ward
        from vietnam_provinces.legacy import District as LegacyDistrict
        from vietnam_provinces.legacy import DistrictCode as LegacyDistrictCode

        codes = tuple(dict.fromkeys(int(c) for c in province_codes))
        if not codes:
            raise ValueError("LocalityIndex needs at least one province code")
        self._province_codes = codes
        self._province_names: dict[int, str] = {}
        self._province_keys: dict[tuple[str, ...], int] = {}
        self._communes: dict[int, Commune] = {}
        old_communes: dict[tuple[str, str], set[int]] = {}  # (old name, type) -> communes
        old_districts: dict[int, set[int]] = {}  # old district code -> communes

        for pcode in codes:
            try:
                province = Province.from_code(ProvinceCode(pcode))
            except ValueError as exc:
                raise ValueError(f"unknown province code {pcode}") from exc
            self._province_names[pcode] = province.name
            self._add_province_key(province.name, pcode)
            for old_province in province.get_legacy_sources():
                self._add_province_key(old_province.name, pcode)

            for ward in Ward.iter_by_province(province.code):
                unit_type = ward.division_type.value
                commune = Commune(
                    code=int(ward.code),
                    name=ward.name,
                    short_name=_strip_prefix(ward.name, (unit_type,)),
                    division_type=unit_type,
                    province_code=pcode,
                    province_name=province.name,
                )
                self._communes[commune.code] = commune
                for old in ward.get_legacy_sources():
                    key = (old.name, old.division_type.value)
                    old_communes.setdefault(key, set()).add(commune.code)
                    old_districts.setdefault(int(old.district_code), set()).add(commune.code)

        for alias, pcode in _PROVINCE_ALIASES.items():
            if pcode in self._province_names:
                self._province_keys.setdefault((alias,), pcode)
        self._province_suffixes = sorted(
            (prefix + key for key in self._province_keys for prefix in _PROVINCE_WORDS),
            key=len,
            reverse=True,
        )

        ordered = sorted(self._communes.values(), key=lambda c: _collation_key(c.short_name))
        self._sorted = tuple(ordered)
        self._order = {c.code: i for i, c in enumerate(ordered)}
        by_order = self._order.__getitem__

        self._current = _Group(_entry(c.name, c.division_type, None, (c.code,)) for c in ordered)
        self._old_communes = _Group(
            _entry(name, unit_type, f"{name} (cũ)", sorted(found, key=by_order))
            for (name, unit_type), found in sorted(old_communes.items())
        )
        districts: list[_Entry] = []
        for dcode, found in sorted(old_districts.items()):
            try:
                district = LegacyDistrict.from_code(LegacyDistrictCode(dcode))
            except ValueError:
                continue
            via = f"{district.name} (cũ)"
            unit_type = district.division_type.value
            districts.append(_entry(district.name, unit_type, via, sorted(found, key=by_order)))
        self._old_districts = _Group(districts)
        self._district_by_words: dict[tuple[str, ...], frozenset[int]] = {}
        for entry in districts:
            known = self._district_by_words.get(entry.words, frozenset())
            self._district_by_words[entry.words] = known | set(entry.codes)

    def _add_province_key(self, name: str, pcode: int) -> None:
        key = tuple(normalize(_strip_prefix(name, ("tỉnh", "thành phố"))).split())
        self._province_keys.setdefault(key, pcode)

    # -- lookups ---------------------------------------------------------------------------

    @property
    def province_codes(self) -> tuple[int, ...]:
        """Province codes in scope, in the order given."""
        return self._province_codes

    def get(self, code: int) -> Commune | None:
        """The in-scope commune with this code, or None (also for other provinces' codes)."""
        try:
            return self._communes.get(code)
        except TypeError:  # unhashable junk, e.g. from a callback payload
            return None

    def in_scope(self, code: int) -> bool:
        """Whether `code` is a commune code of a province in scope (e.g. a stored choice)."""
        return self.get(code) is not None

    def communes(self) -> list[Commune]:
        """All in-scope communes in Vietnamese alphabetical order of their short names."""
        return list(self._sorted)

    def provinces(self) -> list[tuple[int, str]]:
        """(code, "Tỉnh Ninh Bình") for each province in scope, in the order given."""
        return [(code, self._province_names[code]) for code in self._province_codes]

    def resolve_province(self, text: str) -> tuple[int, str] | None:
        """The in-scope province that a province name, current or pre-2025, now belongs to.

        "Nam Định", "tỉnh Hà Nam", "ninh binh" -> (37, "Tỉnh Ninh Bình"); provinces outside
        the scope give None. Only the first comma part counts, so "Hải Hậu, Nam Định" is a
        commune, not a province. Independent of `search`: "Nam Định" is also Phường Nam Định.
        """
        if not isinstance(text, str) or not (segments := _segments(text)):
            return None
        words = tuple(normalize(segments[0]).split())
        for prefix in _PROVINCE_WORDS:
            if words[: len(prefix)] == prefix:
                pcode = self._province_keys.get(words[len(prefix) :])
                if pcode is not None:
                    return pcode, self._province_names[pcode]
        return None

    # -- search ----------------------------------------------------------------------------

    def search(self, text: str, limit: int = 8) -> list[Match]:
        """Up to `limit` in-scope communes for typed text, best first.

        Order: exact current name; current names starting with the typed words; old commune
        names; old district names (first when the user typed "huyện ..."); current names that
        contain the words further in. A commune appears once, at its best rank; ties go to
        the typed type word and diacritics, then alphabetical order. A province name alone
        lists no communes: ask `resolve_province`.
        """
        if not isinstance(text, str) or not isinstance(limit, int) or limit <= 0:
            return []
        parts = [_tokens(segment) for segment in _segments(text)]
        parts = [
            (words, accents)
            for words, accents in parts
            if len(words) <= _MAX_QUERY_WORDS and any(ch.isalpha() for ch in "".join(words))
        ]
        hits: list[tuple[int, str | None]] = []
        # The commune is usually the first part ("Hải Tây, Hải Hậu") but people also lead with
        # a hamlet ("Xóm 3, Hải Tây"): take the first part that matches; later ones are context.
        for index, (words, accents) in enumerate(parts):
            hits = self._rank(words, accents, self._context(parts[index + 1 :]))
            if hits:
                break
        else:  # maybe a province typed without a comma: "Hải Hậu Nam Định"
            for index, (words, accents) in enumerate(parts):
                cut = self._trailing_province_len(words)
                if cut:
                    context = self._context(parts[index + 1 :])
                    hits = self._rank(words[:-cut], accents[:-cut], context)
                    if hits:
                        break
        return [Match(self._communes[code], via) for code, via in hits[:limit]]

    def _context(self, parts: Sequence[tuple[tuple[str, ...], object]]) -> frozenset[int]:
        """Communes of an old district named in a later part ("Hải Tây, huyện Hải Hậu")."""
        found: frozenset[int] = frozenset()
        for words, _ in parts:
            found |= self._district_by_words.get(words[_split_type(words)[0] :], frozenset())
        return found

    def _trailing_province_len(self, words: tuple[str, ...]) -> int:
        for suffix in self._province_suffixes:
            if suffix and len(words) > len(suffix) and words[-len(suffix) :] == suffix:
                return len(suffix)
        return 0

    def _rank(
        self, words: tuple[str, ...], accents: tuple[_Accent, ...], context: frozenset[int]
    ) -> list[tuple[int, str | None]]:
        size, typed_type, level = _split_type(words)
        # Both readings: "xa bang" is "xã Bằng..." or the commune Xà Bang.
        variants: list[tuple[tuple[str, ...], tuple[_Accent, ...], str | None, str | None]] = []
        if size and len(words) > size and level != _PROVINCE:
            variants.append((words[size:], accents[size:], typed_type, level))
        variants.append((words, accents, None, None))

        best: dict[int, tuple[tuple[int, ...], str | None]] = {}
        for vindex, (query, typed, want_type, vlevel) in enumerate(variants):
            groups = (
                (self._current, _TIERS_CURRENT),
                (self._old_communes, _TIERS_OLD_COMMUNE),
                (
                    self._old_districts,
                    _TIERS_OLD_DISTRICT_FIRST if vlevel == _DISTRICT else _TIERS_OLD_DISTRICT,
                ),
            )
            for group, tiers in groups:
                for entry in group.candidates(query[0]):
                    found = _word_match(query, entry.words)
                    if found is None or (tier := tiers[found[0]]) is None:
                        continue
                    start = found[1]
                    type_miss = want_type is not None and entry.unit_type != want_type
                    # A word typed with diacritics that differ ("Phù Mỹ" for Phú Mỹ) ranks lower.
                    accent_miss = any(
                        mark is not None
                        and entry.words[start + i] == word
                        and entry.accents[start + i] != mark
                        for i, (word, mark) in enumerate(zip(query, typed, strict=True))
                    )
                    for code in entry.codes:
                        rank = (
                            tier,
                            int(type_miss),
                            int(accent_miss),
                            int(code not in context),
                            vindex,
                            self._order[code],
                        )
                        if code not in best or rank < best[code][0]:
                            best[code] = (rank, entry.via)
        return [(code, via) for code, (_, via) in sorted(best.items(), key=lambda kv: kv[1][0])]
