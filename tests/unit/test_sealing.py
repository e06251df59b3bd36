"""Sealing a conversation's text for PostgreSQL (store/sealing.py): the documented format,
opened independently of the module, and every way a value that was not sealed with this key
for this field is refused."""

from __future__ import annotations

import pytest

from chat_service.store import StoreError
from chat_service.store.sealing import AI, TITLE, USER, new_key, seal, unseal
from tests.support.sealed import open_sealed

TEXT = "naïve café 🧪 \x00 end"


def test_a_key_is_256_random_bits() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert {len(key) for key in keys} == {32}


@pytest.mark.parametrize(("field", "name"), [(USER, "user"), (AI, "ai"), (TITLE, "title")])
def test_a_sealed_value_has_the_documented_format(field: bytes, name: str) -> None:
    key = new_key()
    sealed = seal(key, TEXT, field)
    assert sealed[:1] == b"\x01"
    # version, nonce, the UTF-8 text's length of ciphertext, a 16-byte tag
    assert len(sealed) == 1 + 12 + len(TEXT.encode()) + 16
    assert TEXT.encode() not in sealed
    assert open_sealed(key, sealed, name) == TEXT
    assert unseal(key, sealed, field) == TEXT


def test_each_seal_takes_a_new_nonce() -> None:
    key = new_key()
    first, second = seal(key, TEXT, USER), seal(key, TEXT, USER)
    assert first[1:13] != second[1:13]
    assert first != second
    assert unseal(key, first, USER) == unseal(key, second, USER) == TEXT


def test_empty_text_round_trips() -> None:
    key = new_key()
    assert unseal(key, seal(key, "", AI), AI) == ""


def test_another_key_is_refused() -> None:
    sealed = seal(new_key(), TEXT, USER)
    refusal = r"^sealed text does not open with its conversation's key$"
    with pytest.raises(StoreError, match=refusal):
        unseal(new_key(), sealed, USER)


@pytest.mark.parametrize(("sealed_for", "opened_as"), [(USER, AI), (AI, USER), (USER, TITLE)])
def test_another_field_is_refused(sealed_for: bytes, opened_as: bytes) -> None:
    key = new_key()
    with pytest.raises(StoreError, match="does not open"):
        unseal(key, seal(key, TEXT, sealed_for), opened_as)


@pytest.mark.parametrize("position", [0, 1, 12, 13, -1])
def test_any_altered_byte_is_refused(position: int) -> None:
    key = new_key()
    sealed = bytearray(seal(key, TEXT, USER))
    sealed[position] ^= 0x01
    with pytest.raises(StoreError):
        unseal(key, bytes(sealed), USER)


@pytest.mark.parametrize(
    ("sealed", "message"),
    [
        (b"", "^sealed text of unknown format empty$"),
        (b"\x02" + bytes(40), "^sealed text of unknown format 02$"),
        (b"\x00" + bytes(40), "^sealed text of unknown format 00$"),
    ],
)
def test_an_unknown_format_is_refused(sealed: bytes, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        unseal(new_key(), sealed, USER)


def test_a_truncated_value_is_refused() -> None:
    key = new_key()
    sealed = seal(key, TEXT, USER)
    for length in (1, 12, 13, 28, len(sealed) - 1):
        with pytest.raises(StoreError, match="does not open"):
            unseal(key, sealed[:length], USER)
