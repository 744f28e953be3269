"""`fold`, what the Elasticsearch store indexes and searches free text as (the SQLite store's
`unicode61 remove_diacritics` tokens): ASCII by a byte table, the rest through Unicode
decomposition; both give lowercase words separated by spaces."""

from __future__ import annotations

import random
import unicodedata

import pytest

from soc.store import elasticsearch
from soc.store.documents import UNDECOMPOSABLE
from soc.store.elasticsearch import _MARKS, _NON_WORD, fold


def _whole_text_fold(text: str) -> list[str]:
    """The words of `text` decomposed all at once (what `fold` did before it decomposed only
    the words beyond ASCII)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(UNDECOMPOSABLE))
    return _NON_WORD.sub(" ", _MARKS.sub("", decomposed).lower()).split()


def test_ascii_letters_and_digits_are_kept_lowercased_and_the_rest_are_spaces() -> None:
    every = "".join(map(chr, range(128)))
    expected = "".join(c.lower() if c.isalnum() else " " for c in every)
    assert fold(every) == expected
    assert fold("GET /Admin/Login.PHP?id=1_0") == "get  admin login php id 1 0"


def test_vietnamese_and_other_marks_fold_to_their_base_letters() -> None:
    assert fold("Sở Thông tin và Truyền thông ĐÀ NẴNG").split() == [
        *("so", "thong", "tin", "va", "truyen", "thong", "da", "nang")
    ]
    assert fold("Łódź, Øresund: \u0131i").split() == ["lodz", "oresund", "ii"]  # dotless i
    assert fold("") == ""


@pytest.mark.parametrize("word_by_word", [True, False], ids=["word-by-word", "whole"])
def test_text_mostly_ascii_folds_to_the_words_of_decomposing_it_whole(
    word_by_word: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert's text: ASCII details split by `¦`, a Vietnamese host, a fullwidth digit, a
    combining mark on an ASCII letter, Greek whose final sigma depends on its neighbours.
    Folded word by word (text mostly ASCII) and all at once (text mostly beyond it)."""
    monkeypatch.setattr(elasticsearch, "_WORD_BY_WORD_BELOW", 0 if word_by_word else 10**9)
    alert = (
        "SSH brute force\nUser: root ¦ From: 203.0.113.7 ¦ Host: máy-chủ-01\n"
        "Cafe\u0301 ①x \u039f\u0394\u039f\u03a3a \u039f\u0394\u039f\u03a3 ﬁle\u00a0tab\tĐồng_Nai"
    )
    assert fold(alert).split() == _whole_text_fold(alert)
    assert "may" in fold(alert).split() and "cafe" in fold(alert).split()
    # Beyond ASCII only by the separators alerts write: the same words as decomposed whole.
    plain = "SSH Failed Password\nUser: root ¦ From: 203.0.113.0 ¦ Cmd: /bin/sh -c 'curl…"
    assert fold(plain).split() == _whole_text_fold(plain)
    assert fold(plain).split()[-4:] == ["bin", "sh", "c", "curl"]
    pieces = [
        "root",
        " ",
        "¦",
        "Đà",
        "x",
        "\u0301",
        "Σ",
        "a",
        "-",
        "\u3000",
        "1",
        "ǅ",
        "\n",
        "ß",
        "…",
    ]
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert fold(text).split() == _whole_text_fold(text), text
