"""Tests for bot.localities, checked against the vietnam-provinces data itself."""

from __future__ import annotations

import time
import unicodedata

import pytest
from vietnam_provinces import Ward
from vietnam_provinces.legacy import Ward as LegacyWard

from bot.localities import BUTTON_LABEL_MAX, Commune, LocalityIndex, Match, normalize

NINH_BINH = 37
HA_NOI = 1
HAI_HAU_DISTRICT = 366  # Huyện Hải Hậu, former Nam Định


@pytest.fixture(scope="module")
def nb() -> LocalityIndex:
    return LocalityIndex(province_codes=(NINH_BINH,))


@pytest.fixture(scope="module")
def hn() -> LocalityIndex:
    return LocalityIndex(province_codes=(HA_NOI,))


def first(index: LocalityIndex, text: str) -> Match:
    results = index.search(text)
    assert results, f"no result for {text!r}"
    return results[0]


# -- building and lookups ---------------------------------------------------------------------


def test_ninh_binh_has_129_communes(nb: LocalityIndex) -> None:
    communes = nb.communes()
    assert len(communes) == 129
    assert len({c.code for c in communes}) == 129
    assert {c.province_code for c in communes} == {NINH_BINH}
    assert {c.province_name for c in communes} == {"Tỉnh Ninh Bình"}
    assert {c.division_type for c in communes} <= {"xã", "phường", "đặc khu"}
    assert nb.provinces() == [(NINH_BINH, "Tỉnh Ninh Bình")]
    assert nb.province_codes == (NINH_BINH,)


def test_build_is_fast() -> None:
    LocalityIndex(province_codes=(NINH_BINH,))  # package modules imported
    started = time.perf_counter()
    LocalityIndex(province_codes=(NINH_BINH,))
    assert time.perf_counter() - started < 1.0


def test_bad_scopes_are_rejected() -> None:
    with pytest.raises(ValueError):
        LocalityIndex(province_codes=())
    with pytest.raises(ValueError):
        LocalityIndex(province_codes=(36,))  # Nam Định no longer exists as a province


def test_communes_in_vietnamese_alphabetical_order(nb: LocalityIndex) -> None:
    names = [c.name for c in nb.communes()]
    # Đ comes after D (not with it, not after Z); Ă/Â come after A.
    assert (
        names.index("Phường Duy Tiên") < names.index("Xã Đại Hoàng") < names.index("Xã Gia Hưng")
    )
    assert names.index("Xã Bắc Lý") < names.index("Xã Bình An")
    assert names.index("Xã Hải An") < names.index("Xã Hải Anh") < names.index("Xã Hải Hậu")
    nb.communes().clear()
    assert len(nb.communes()) == 129


def test_commune_fields_and_labels(nb: LocalityIndex) -> None:
    hai_hau = first(nb, "Hải Hậu").commune
    assert isinstance(hai_hau, Commune)
    assert hai_hau.name == "Xã Hải Hậu"
    assert hai_hau.short_name == "Hải Hậu"
    assert hai_hau.division_type == "xã"
    assert hai_hau.province_code == NINH_BINH
    assert hai_hau.province_name == "Tỉnh Ninh Bình"
    assert hai_hau.label == "Xã Hải Hậu, Tỉnh Ninh Bình"
    assert hai_hau.button_label == "Xã Hải Hậu"
    assert nb.get(hai_hau.code) == hai_hau
    for commune in nb.communes():
        assert len(commune.button_label) <= BUTTON_LABEL_MAX
        assert commune.name.endswith(commune.short_name)
        # Typed text matches the button text through normalize.
        assert first(nb, commune.button_label).commune == commune


def test_long_names_get_a_short_button_label() -> None:
    long = Commune(1, "Phường " + "Quốc Tử Giám " * 4, "Quốc Tử Giám " * 4, "phường", 1, "X")
    assert len(long.button_label) <= BUTTON_LABEL_MAX


def test_get_and_in_scope(nb: LocalityIndex, hn: LocalityIndex) -> None:
    ba_dinh = first(hn, "Ba Đình").commune
    assert hn.in_scope(ba_dinh.code)
    assert not nb.in_scope(ba_dinh.code)
    assert nb.get(ba_dinh.code) is None
    for junk in (0, -1, 10**12, "x", None, [], 3.5):
        assert nb.get(junk) is None  # type: ignore[arg-type]
        assert not nb.in_scope(junk)  # type: ignore[arg-type]


# -- current names ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["hai hau", "Hải Hậu", "xã Hải Hậu", "HAI HAU", " hải   HẬU. "])
def test_hai_hau_first(nb: LocalityIndex, text: str) -> None:
    match = first(nb, text)
    assert match.commune.name == "Xã Hải Hậu"
    assert match.via is None


@pytest.mark.parametrize(
    "text", ["Giao Thuy", "giao thủy", "Giao Thuỷ", "GIAO THỦY", "xa giao thuy"]
)
def test_giao_thuy_either_spelling(nb: LocalityIndex, text: str) -> None:
    match = first(nb, text)
    assert normalize(match.commune.name) == "xa giao thuy"  # the data spells it "Thuỷ"
    assert match.via is None


def test_prefix(nb: LocalityIndex) -> None:
    results = nb.search("giao th")
    assert normalize(results[0].commune.short_name) == "giao thuy"
    direct = [m for m in results if m.via is None]
    assert all(normalize(m.commune.short_name).startswith("giao th") for m in direct)

    results = nb.search("hai", limit=20)
    hai = [c for c in nb.communes() if normalize(c.short_name).startswith("hai ")]
    assert len(hai) >= 2
    assert [m.commune for m in results[: len(hai)]] == hai
    assert all(m.via is None for m in results[: len(hai)])


def test_abbreviated_type_words(nb: LocalityIndex) -> None:
    assert first(nb, "p. Nam Định").commune.name == "Phường Nam Định"
    assert first(nb, "P.Nam Dinh").commune.name == "Phường Nam Định"
    assert first(nb, "x.Hải Hậu").commune.name == "Xã Hải Hậu"
    assert first(nb, "phuong Hoa Lu").commune.name == "Phường Hoa Lư"


def test_trailing_province_is_ignored(nb: LocalityIndex) -> None:
    for text in (
        "Hải Hậu, Ninh Bình",
        "xã Hải Hậu, tỉnh Ninh Bình",
        "hai hau, ninh binh",
        "Hải Hậu, Nam Định",
        "Hải Hậu Nam Định",
        "xa hai hau tinh ninh binh",
    ):
        assert first(nb, text).commune.name == "Xã Hải Hậu", text


def test_results_are_unique_limited_and_stable(nb: LocalityIndex) -> None:
    results = nb.search("Hải Hậu", limit=50)
    codes = [m.commune.code for m in results]
    assert len(codes) == len(set(codes))
    assert len(nb.search("hai", limit=3)) == 3
    assert nb.search("hai", limit=0) == []
    assert nb.search("Hải Hậu", limit=50) == results
    assert [m.commune for m in nb.search("hai", limit=3)] == [
        m.commune for m in nb.search("hai", limit=8)[:3]
    ]


# -- legacy names -----------------------------------------------------------------------------


def _from_old_district(index: LocalityIndex, district_code: int) -> set[int]:
    """What the package says the old district became, restricted to the index's scope."""
    found = Ward.search_from_legacy_district(code=district_code)
    return {int(w.ward.code) for w in found if index.in_scope(int(w.ward.code))}


def test_old_district_with_type_word(nb: LocalityIndex) -> None:
    expected = _from_old_district(nb, HAI_HAU_DISTRICT)
    assert len(expected) >= 2
    for text in ("huyện Hải Hậu", "Huyen hai hau", "h. Hải Hậu"):
        results = nb.search(text, limit=50)
        assert {m.commune.code for m in results} == expected, text
        assert all(m.via == "Huyện Hải Hậu (cũ)" for m in results), text


def test_name_of_commune_and_old_district(nb: LocalityIndex) -> None:
    results = nb.search("Hải Hậu", limit=50)
    assert results[0].commune.name == "Xã Hải Hậu"
    assert results[0].via is None  # the direct match keeps its better rank
    rest = {m.commune.code: m.via for m in results[1:]}
    assert set(rest) == _from_old_district(nb, HAI_HAU_DISTRICT) - {results[0].commune.code}
    assert set(rest.values()) == {"Huyện Hải Hậu (cũ)"}


@pytest.mark.parametrize(
    ("text", "district"),
    [
        ("Ý Yên", "Huyện Ý Yên (cũ)"),
        ("huyện Giao Thủy", "Huyện Giao Thủy (cũ)"),
        ("Nghĩa Hưng", "Huyện Nghĩa Hưng (cũ)"),
        ("thị xã Kim Bảng", "Thị xã Kim Bảng (cũ)"),
        ("tp Nam Định", "Thành phố Nam Định (cũ)"),
        ("thành phố Hoa Lư", "Thành phố Hoa Lư (cũ)"),
    ],
)
def test_old_districts(nb: LocalityIndex, text: str, district: str) -> None:
    vias = [m.via for m in nb.search(text, limit=50)]
    assert vias.count(district) >= 2


def test_old_commune_name_leads_to_its_current_commune(nb: LocalityIndex) -> None:
    match = first(nb, "Hải Tây")  # merged into Xã Hải Quang in 2025
    assert match.commune.name == "Xã Hải Quang"
    assert match.via == "Xã Hải Tây (cũ)"
    assert first(nb, "xã Hải Tây").via == "Xã Hải Tây (cũ)"
    assert first(nb, "thị trấn Cồn").via == "Thị trấn Cồn (cũ)"
    assert first(nb, "Xóm 3, Hải Tây, huyện Hải Hậu").commune.name == "Xã Hải Quang"


def _starts(typed: str, name: str) -> bool:
    typed_words, name_words = typed.split(), name.split()
    return len(typed_words) <= len(name_words) and all(
        w.startswith(t) for w, t in zip(name_words, typed_words, strict=False)
    )


def test_every_vanished_commune_of_old_hai_hau(nb: LocalityIndex) -> None:
    current = [normalize(c.short_name) for c in nb.communes()]
    old_wards = list(LegacyWard.iter_by_district(HAI_HAU_DISTRICT))  # type: ignore[arg-type]
    checked = 0
    for old in old_wards:
        short = normalize(old.name[len(old.division_type.value) + 1 :])
        if any(_starts(short, name) for name in current):
            continue  # the name still exists (or starts one): the direct match wins
        expected = {int(w.ward.code) for w in Ward.search_from_legacy(code=int(old.code))}
        results = {m.commune.code: m.via for m in nb.search(short, limit=20)}
        hits = expected & set(results)
        assert hits, old.name
        assert {results[code] for code in hits} == {f"{old.name} (cũ)"}, old.name
        checked += 1
    assert checked >= 10


def test_old_province_names(nb: LocalityIndex) -> None:
    expected = (NINH_BINH, "Tỉnh Ninh Bình")
    for text in (
        "Nam Định",
        "nam dinh",
        "tỉnh Nam Định",
        "ha nam",
        "Hà Nam",
        "Ninh Bình",
        "TINH HA NAM",
    ):
        assert nb.resolve_province(text) == expected, text
    for text in ("Hà Nội", "Hải Hậu", "Hải Hậu, Nam Định", "", "nam", "🙂", None):
        assert nb.resolve_province(text) is None, text  # type: ignore[arg-type]
    assert nb.search("tỉnh Nam Định") == []


# -- scope ------------------------------------------------------------------------------------


def test_scope(nb: LocalityIndex, hn: LocalityIndex) -> None:
    assert all(m.commune.province_code == NINH_BINH for m in nb.search("Ba Đình", limit=50))
    assert not any("Ba Đình" in m.commune.name for m in nb.search("Ba Đình", limit=50))
    match = first(hn, "Ba Đình")
    assert (match.commune.name, match.commune.province_code) == ("Phường Ba Đình", HA_NOI)
    # Xã Ba Đình exists too, in Thanh Hóa: out of scope for both.
    assert all(m.commune.province_code == HA_NOI for m in hn.search("Ba Đình", limit=50))
    assert all(m.commune.province_code == HA_NOI for m in hn.search("Hải Tây", limit=50))
    assert hn.resolve_province("Nam Định") is None
    assert hn.resolve_province("Hà Nội") == (HA_NOI, "Thành phố Hà Nội")


def test_several_provinces_type_word_and_diacritics_break_ties() -> None:
    index = LocalityIndex(province_codes=(HA_NOI, 38, 51))  # Hà Nội, Thanh Hóa, Quảng Ngãi
    assert index.provinces()[0] == (HA_NOI, "Thành phố Hà Nội")
    assert first(index, "xã Ba Đình").commune.province_code == 38
    assert first(index, "phường Ba Đình").commune.province_code == HA_NOI
    exact = [m.commune.name for m in index.search("Ba Đình") if m.via is None]
    assert exact[:2] == ["Phường Ba Đình", "Xã Ba Đình"]  # before Xã Ba Dinh (Quảng Ngãi)
    assert "Xã Ba Dinh" in exact


# -- normalize and robustness -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Giao Thuỷ", "giao thuy"),
        ("giao thuy", "giao thuy"),
        ("GIAO THỦY", "giao thuy"),
        ("Giao Thủy", "giao thuy"),
        (unicodedata.normalize("NFD", "Giao Thuỷ"), "giao thuy"),
        ("  Hải\tHậu,,  Nam-Định!! ", "hai hau nam dinh"),
        ("ĐẮK LẮK", "dak lak"),
        ("Ea H'Leo", "ea hleo"),
        ("Xã Ý Yên", "xa y yen"),
        ("Phường Văn Miếu - Quốc Tử Giám", "phuong van mieu quoc tu giam"),
        ("🙂 a\x00b \u200b", "a b"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


ODD_INPUTS = [
    "",
    " ",
    "\n\t",
    "a" * 5000,
    "Hải Hậu " * 700,
    "🙂" * 50,
    "🏠 xã 🙂",
    "12345",
    "0",
    "１２３",
    "'; DROP TABLE users; --",
    "1 OR 1=1",
    "\x00\x01\x02\x1b[31m",
    "\u202e\u200b\ufeff",
    "x",
    "xã",
    "huyện",
    "tỉnh",
    "thành phố",
    "p.",
    ",,,,",
    "%s %d {0} ${x}",
    "<script>alert(1)</script>",
    "中文地址",
    "\U0010ffff\ud7ff\ud800",
    "Hải Hậu\x00",
    "a" * 99 + "Hải Hậu",
]


def test_odd_inputs_never_raise(nb: LocalityIndex) -> None:
    started = time.perf_counter()
    for text in ODD_INPUTS:
        results = nb.search(text)
        assert isinstance(results, list)
        assert len(results) <= 8
        assert all(nb.in_scope(m.commune.code) for m in results)
        nb.resolve_province(text)
        normalize(text)
    for text in ("", " ", "a" * 5000, "🙂" * 50, "12345", "\x00\x01\x02", ",,,,", "中文地址"):
        assert nb.search(text) == [], text
    assert nb.search(None) == []  # type: ignore[arg-type]
    assert nb.search(b"hai hau") == []  # type: ignore[arg-type]
    assert time.perf_counter() - started < 1.0


def test_input_is_capped(nb: LocalityIndex) -> None:
    assert nb.search("Hải Hậu" + " " * 200 + "x") != []
    assert nb.search(" " * 100 + "Hải Hậu") == []


def test_any_text_gives_in_scope_matches(nb: LocalityIndex) -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(
        text=st.one_of(
            st.text(max_size=300),
            st.text(alphabet="xã phường huyện Hải Hậu Nam Định Giao Thủy, .'-đĐ", max_size=60),
        ),
        limit=st.integers(min_value=-2, max_value=20),
    )
    def check(text: str, limit: int) -> None:
        results = nb.search(text, limit=limit)
        assert isinstance(results, list)
        assert len(results) <= max(limit, 0)
        assert len({m.commune.code for m in results}) == len(results)
        for match in results:
            assert isinstance(match, Match)
            assert nb.in_scope(match.commune.code)
            assert match.via is None or match.via.endswith("(cũ)")

    check()
