"""`fold`, what the Elasticsearch store indexes and searches free text as (the SQLite store's
`unicode61 remove_diacritics` tokens): ASCII by a byte table, the rest through Unicode
decomposition; both give lowercase words separated by spaces."""

from __future__ import annotations

from soc.store.elasticsearch import fold


def test_ascii_letters_and_digits_are_kept_lowercased_and_the_rest_are_spaces() -> None:
    every = "".join(map(chr, range(128)))
    expected = "".join(c.lower() if c.isalnum() else " " for c in every)
    assert fold(every) == expected
    assert fold("GET /Admin/Login.PHP?id=1_0") == "get  admin login php id 1 0"


def test_vietnamese_and_other_marks_fold_to_their_base_letters() -> None:
    assert fold("Sở Thông tin và Truyền thông ĐÀ NẴNG") == "so thong tin va truyen thong da nang"
    assert fold("Łódź, Øresund: \u0131i") == "lodz oresund ii"  # dotless i
    assert fold("") == ""
