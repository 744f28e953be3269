"""Hints: what a producer says about a document it publishes, so that the indexer can store the
bytes as they are. Anything short of complete, well-formed hints sends the record down the
decoding path instead (where the store itself derives them)."""

import pytest

from soc.store.base import Encoded
from soc.store.documents import HINT_ID, HINT_TEXT, HINT_TIME, encoded, hints

RAW = b'{"event":{"id":"ev-1"}}'
GOOD = ((HINT_ID, b"ev-1"), (HINT_TIME, b"1764316800000000"), (HINT_TEXT, "Đăng nhập".encode()))


def test_complete_hints_give_the_record_to_store() -> None:
    assert encoded(RAW, GOOD) == Encoded("ev-1", 1764316800000000, "Đăng nhập", RAW)
    assert encoded(RAW, (*GOOD, ("other", b"x"))) == encoded(RAW, GOOD)


@pytest.mark.parametrize(
    "headers",
    [
        (),
        GOOD[:2],
        ((HINT_ID, b""), *GOOD[1:]),
        (GOOD[0], (HINT_TIME, b"yesterday"), GOOD[2]),
        (*GOOD[:2], (HINT_TEXT, b"\xff\xfe")),
        ((HINT_ID, b"ev-1"), (HINT_TIME, b"1"), ("soc.other", b"")),
    ],
    ids=["none", "no text", "empty id", "time not a number", "text not utf-8", "wrong names"],
)
def test_incomplete_or_malformed_hints_are_not_used(headers: tuple[tuple[str, bytes], ...]) -> None:
    assert encoded(RAW, headers) is None


def test_no_bytes_no_record() -> None:
    assert encoded(None, GOOD) is None


def test_a_document_without_an_id_gets_no_hints() -> None:
    assert hints("events", {"message": "no id"}) == ()
