"""One buyer, one identity: a number written in any digit script either normalizes to the
same eleven ASCII digits or is refused; it never becomes a second buyer."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.values import has_foreign_characters, normalize_phone, parse_masked_phone

NUMBER = "13764472345"

# The zero of every run of decimal digits (category Nd) in Unicode: ASCII, full-width,
# Arabic-Indic, Devanagari, mathematical bold, …
ZEROS = [
    code
    for code in range(sys.maxunicode + 1)
    if unicodedata.category(chr(code)) == "Nd" and unicodedata.digit(chr(code)) == 0
]
SEPARATORS = ["", "", "", " ", "-", ".", "(", ")", "\u3000", "\uff0d", "\u00a0", "\t"]
PREFIXES = ["", "+86", "\uff0b\uff18\uff16", "0086", "86"]


def test_every_unicode_digit_block_is_in_the_draw() -> None:
    # Python 3.11 (Unicode 14) has 65 runs of ten decimal digits.
    assert len(ZEROS) >= 60
    assert ord("0") in ZEROS and 0xFF10 in ZEROS and 0x0660 in ZEROS


@st.composite
def written_numbers(draw: st.DrawFn) -> tuple[str, list[str]]:
    prefix = draw(st.sampled_from(PREFIXES))
    digits = [chr(draw(st.sampled_from(ZEROS)) + int(d)) for d in NUMBER]
    parts = [prefix]
    for digit in digits:
        parts.append(draw(st.sampled_from(SEPARATORS)))
        parts.append(digit)
    return "".join(parts), digits


@given(written_numbers())
def test_a_number_in_any_digit_script_is_the_same_buyer_or_refused(
    written: tuple[str, list[str]],
) -> None:
    raw, digits = written
    readable = all(unicodedata.normalize("NFKC", d) in "0123456789" for d in digits)
    if readable:
        assert normalize_phone(raw) == NUMBER
    else:
        with pytest.raises(InvalidInput) as caught:
            normalize_phone(raw, field="phone")
        assert caught.value.code == "invalid_phone"
        assert caught.value.field == "phone"


@pytest.mark.parametrize(
    "raw",
    [
        "13\uff17\uff16\uff14\uff14\uff17\uff12\uff13\uff14\uff15",  # full-width, as IMEs type
        "\uff11\uff13\uff17\uff16\uff14\uff14\uff17\uff12\uff13\uff14\uff15",
        "\uff0b\uff18\uff16 137-6447-2345",
    ],
)
def test_full_width_digits_normalize_to_the_ascii_number(raw: str) -> None:
    assert normalize_phone(raw) == NUMBER


@pytest.mark.parametrize(
    "raw",
    [
        "\u0661\u0663\u0667\u0666\u0664\u0664\u0667\u0662\u0663\u0664\u0665",  # Arabic-Indic
        "13\u0667\u0666\u0664\u0664\u0667\u0662\u0663\u0664\u0665",  # mixed with ASCII
        "1376447234\u09eb",  # Bengali five at the end
        "1376447234five",
    ],
)
def test_other_digit_scripts_and_letters_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone(raw)
    assert caught.value.code == "invalid_phone"


def test_a_masked_pattern_in_another_script_is_not_taken_for_one() -> None:
    assert parse_masked_phone("\u0661\u0663\u0668****5678") is None
    assert parse_masked_phone("\uff11\uff13\uff18\uff0a\uff0a\uff0a\uff0a5678") == "138****5678"


def test_stored_masks_with_foreign_characters_are_detected() -> None:
    assert has_foreign_characters("\u0661\u0663\u0668****5678")
    assert not has_foreign_characters("138****5678")
