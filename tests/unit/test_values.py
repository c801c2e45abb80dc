from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidInput
from domain.values import (
    PhoneKeyer,
    check_identifier,
    format_duration,
    mask_name,
    mask_phone,
    normalize_phone,
    parse_duration,
    parse_masked_phone,
)


@pytest.mark.parametrize(
    "raw",
    [
        "+86 138-1234-5678",
        "8613812345678",
        "138 1234 5678",
        "13812345678",
        "0086 138 1234 5678",
        "(+86) 138.1234.5678",
    ],
)
def test_chinese_mobile_numbers_in_any_common_format_normalize_to_eleven_digits(
    raw: str,
) -> None:
    assert normalize_phone(raw) == "13812345678"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1381234567",  # ten digits
        "138123456789",  # twelve digits
        "12812345678",  # no mobile range starts with 12
        "23812345678",
        "+1 138 1234 5678",
        "138****5678",
        "phone: 13812345678",
        "861381234567",  # 86 + ten digits is not a country code plus a number
    ],
)
def test_anything_but_a_mainland_mobile_number_is_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone(raw, field="phone")

    assert caught.value.field == "phone"
    assert caught.value.code == "invalid_phone"
    assert "11 digits" in str(caught.value)


def test_the_refusal_names_whichever_field_the_caller_passed() -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone("12345", field="visitor_phone")

    assert caught.value.field == "visitor_phone"


@pytest.mark.parametrize("raw", ["138****5678", "+86 138****5678", "138 **** 5678"])
def test_masked_numbers_keep_the_first_three_and_last_four_digits(raw: str) -> None:
    assert parse_masked_phone(raw) == "138****5678"


@pytest.mark.parametrize("raw", ["13812345678", "138***5678", "138*****5678", "128****5678", ""])
def test_anything_but_a_masked_pattern_is_not_taken_for_one(raw: str) -> None:
    assert parse_masked_phone(raw) is None


def test_a_full_number_is_shown_masked_and_a_name_keeps_only_the_family_name() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三丰") == "张**"
    assert mask_name("李四") == "李*"
    assert mask_name("  ") == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P3D", timedelta(days=3)),
        ("PT24H", timedelta(hours=24)),
        ("P30D", timedelta(days=30)),
        ("P1W", timedelta(weeks=1)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT90M", timedelta(minutes=90)),
    ],
)
def test_durations_in_weeks_days_and_time_units_are_accepted(
    text: str, expected: timedelta
) -> None:
    assert parse_duration(text, "protection") == expected


@pytest.mark.parametrize(
    "text", ["P1M", "P1Y", "garbage", "", "P", "PT", "P1DT", "P0D", "3D", "p3d", "P-1D"]
)
def test_months_years_zero_and_garbage_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, "report_validity")

    assert caught.value.field == "report_validity"
    assert caught.value.code == "invalid_duration"


def test_durations_are_written_back_in_a_canonical_form() -> None:
    assert format_duration(timedelta(hours=24)) == "P1D"
    assert format_duration(timedelta(days=1, hours=12)) == "P1DT12H"
    assert format_duration(timedelta(minutes=90)) == "PT1H30M"
    assert format_duration(parse_duration("P3D", "x")) == "P3D"


def test_identifiers_refuse_spaces_and_overlong_values() -> None:
    assert check_identifier("partner-A_1", "partner_id") == "partner-A_1"
    for bad in ["", "has space", "-leading", "x" * 65]:
        with pytest.raises(InvalidInput) as caught:
            check_identifier(bad, "partner_id")
        assert caught.value.field == "partner_id"


def test_client_ids_depend_on_project_number_and_secret_but_never_show_the_number() -> None:
    keyer = PhoneKeyer(b"0123456789abcdef")
    other_secret = PhoneKeyer(b"fedcba9876543210")

    one = keyer.client_id("p1", "13812345678")

    assert one == keyer.client_id("p1", "13812345678")
    assert one != keyer.client_id("p2", "13812345678")
    assert one != keyer.client_id("p1", "13812345679")
    assert one != other_secret.client_id("p1", "13812345678")
    assert "13812345678" not in keyer.digest("13812345678")
    assert "12345678" not in str(one).replace("-", "")


def test_a_short_phone_hashing_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        PhoneKeyer(b"short")


@pytest.mark.parametrize(
    "text", ["P3654D", "P99999999D", "P99999999999999999999W", "PT99999999999H"]
)
def test_durations_past_ten_years_are_refused_without_overflowing(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, "protection")

    assert caught.value.field == "protection"
    assert caught.value.code == "duration_out_of_range"


def test_ten_years_is_the_longest_duration_accepted() -> None:
    assert parse_duration("P3653D", "protection") == timedelta(days=3653)
