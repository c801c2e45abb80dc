"""Value objects and pure helpers shared by the aggregates.

Phone rules follow what Chinese sales offices accept: an 11-digit mainland mobile
number, written with or without the +86/0086 country code, spaces or dashes. The masked
form keeps the first three and last four digits (前三后四).

Input is NFKC-normalized first (full-width １３８ and ＋８６ are how Chinese IMEs type
digits) and must then be ASCII digits: another script's digits (٠١٢, ০১২, …) are refused
rather than read, so one buyer can never be written two ways into two identities.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidInput

NAMESPACE = uuid.UUID("6f1d2a0e-5b1c-4e8e-9d55-1b0c4a7e9c11")

_SEPARATORS = re.compile(r"[\s\-().]")
# ASCII classes on purpose: Python's \d matches every script's decimal digits.
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_MASKED = re.compile(r"^(1[3-9][0-9])\*{4}([0-9]{4})$")
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _strip_country_code(raw: str) -> str:
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            return digits[len(prefix) :]
    # 86 followed by a full 11-digit mobile number: a country code written without "+".
    if digits.startswith("86") and len(digits) == 13:
        return digits[2:]
    return digits


def normalize_phone(raw: str, field: str = "phone") -> str:
    """Return the 11-digit mobile number, or raise InvalidInput naming ``field``."""
    number = _strip_country_code(raw)
    if not _MOBILE.match(number):
        raise InvalidInput(
            field,
            "must be a mainland China mobile number of 11 digits starting with 13-19, "
            "e.g. 13812345678 or +86 138-1234-5678",
            code="invalid_phone",
        )
    return number


def parse_masked_phone(raw: str, field: str = "phone") -> str | None:
    """Return the canonical masked form ``138****5678`` if ``raw`` is one, else None."""
    candidate = _strip_country_code(raw)
    match = _MASKED.match(candidate)
    if not match:
        return None
    return f"{match.group(1)}****{match.group(2)}"


def has_foreign_characters(text: str) -> bool:
    """True when ``text`` holds anything outside printable ASCII (e.g. ٣٨ digits)."""
    return any(not (" " <= ch <= "~") for ch in text)


def mask_phone(number: str) -> str:
    """前三后四: the only form of a phone number that leaves the service."""
    return f"{number[:3]}****{number[-4:]}"


# What stands for an erased buyer's 前三后四 in answers and views: even the mask narrows
# the number to 10⁴ candidates, so it goes with the buyer's keys.
ERASED_PHONE_MASK = "***********"


def mask_name(name: str) -> str:
    """Keep the family name (first character) and hide the rest: 张三丰 → 张**."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


def check_identifier(value: str, field: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InvalidInput(
            field,
            "must be 1-64 characters: letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit",
            code="invalid_identifier",
        )
    return value


class PhoneKeyer:
    """Keyed hash of a normalized phone number.

    The key (YINGKE_SECRET) keeps a leaked store from being reversed by hashing all
    ~10^9 mobile numbers; without the key the ids reveal nothing.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the phone-hashing secret must be at least 16 bytes")
        self._secret = secret

    def digest(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def client_id(self, project_id: str, number: str) -> uuid.UUID:
        return self.client_id_of(project_id, self.digest(number))

    @staticmethod
    def client_id_of(project_id: str, digest: str) -> uuid.UUID:
        """``client_id`` from the number's ``digest``, for a caller that needs both."""
        return uuid.uuid5(NAMESPACE, f"client:{project_id}:{digest}")

    def masked_pool_id(self, project_id: str, masked: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"masked:{project_id}:{self.digest(masked)}")


_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


# No business period (validity, protection, cadence) is longer than this; longer ones are
# typos that would push deadlines past the calendar's end.
MAX_DURATION = timedelta(days=3653)


# Valid durations already parsed: every decision reads the policy's periods again, and a
# what-if replay takes hundreds of thousands of decisions. Bounded: texts come from input.
_PARSED: dict[str, timedelta] = {}


def parse_duration(text: str, field: str) -> timedelta:
    """ISO-8601 durations in weeks, days, hours, minutes and seconds.

    Months and years are refused: "P1M" is 28 to 31 days depending on the date, and a
    protection period must mean the same thing on every replay.
    """
    known = _PARSED.get(text) if isinstance(text, str) else None
    if known is not None:
        return known
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise InvalidInput(
            field,
            "must be an ISO-8601 duration in weeks, days, hours, minutes or seconds, "
            "e.g. P3D, PT24H, P1DT12H (months and years are not allowed)",
            code="invalid_duration",
        )
    # Each part is capped before timedelta sees it: "P9999999999D" would overflow it, and
    # any duration past MAX_DURATION would overflow a date it is added to on some replay.
    parts = {k: min(int(v), 10**7) for k, v in match.groupdict().items() if v}
    delta = timedelta(**parts)
    if delta <= timedelta(0):
        raise InvalidInput(field, "must be longer than zero", code="invalid_duration")
    if delta > MAX_DURATION:
        raise InvalidInput(
            field, "must be at most ten years (P3653D)", code="duration_out_of_range"
        )
    if len(_PARSED) < 1024:
        _PARSED[text] = delta
    return delta


def format_duration(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    time += f"{seconds}S" if seconds else ""
    return out + ("T" + time if time else "") if (days or time) else "PT0S"


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput("at", "must carry a time zone, e.g. 2026-03-03T10:00:00+08:00")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Actor:
    """Who issued a command: recorded on every event."""

    id: str
    role: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "role": self.role}


SYSTEM = Actor(id="system", role="system")


# China keeps one offset all year, so the office zone needs no tz database to be right.
_CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; refused with the field named if it is not one."""
    if name in ("Asia/Shanghai", "Asia/Chongqing", "PRC"):
        return _CHINA
    try:
        if not name or len(name) > 64 or name.startswith("/") or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidInput(
            "time_zone", "must be an IANA time zone such as Asia/Shanghai", code="unknown_zone"
        ) from None
