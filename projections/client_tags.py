"""client_tags: the demand profile (客户画像) of each buyer as short tags, for browsing the
public pool: what a consultant needs to pick a buyer to claim, without any free text.

Tags are ``key:value`` codes in a fixed order: ``purpose:self_use``, ``rooms:3``,
``budget:3000000-5000000`` (yuan), ``area:90-120`` (m²), ``district:<name>``,
``floor:high``, ``focus:school``, ``family:young_family``, ``age:35_44``.
"""

from __future__ import annotations

from typing import Any

from domain.client import Client
from projections.runtime import Rows, Table

TABLE = Table(
    "client_tags",
    ("client_id",),
    {"client_id": "text", "project_id": "text", "tags": "text", "updated_at": "ts"},
)
SEPARATOR = "|"


def _range(low: Any, high: Any) -> str:
    def plain(value: Any) -> str:
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return f"{plain(low)}-{plain(high)}"


def tags_of(profile: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    if profile.get("purpose"):
        tags.append(f"purpose:{profile['purpose']}")
    tags += [f"rooms:{rooms}" for rooms in profile.get("layouts") or []]
    if profile.get("budget_min") is not None or profile.get("budget_max") is not None:
        tags.append(f"budget:{_range(profile.get('budget_min'), profile.get('budget_max'))}")
    if profile.get("area_min") is not None or profile.get("area_max") is not None:
        tags.append(f"area:{_range(profile.get('area_min'), profile.get('area_max'))}")
    tags += [f"district:{d}" for d in profile.get("districts") or []]
    if profile.get("floor_preference"):
        tags.append(f"floor:{profile['floor_preference']}")
    tags += [f"focus:{f}" for f in profile.get("focus") or []]
    if profile.get("family_structure"):
        tags.append(f"family:{profile['family_structure']}")
    if profile.get("age_band"):
        tags.append(f"age:{profile['age_band']}")
    # The separator inside a district name would split the tag; keep the rest of it.
    return [t.replace(SEPARATOR, "/") for t in tags]


def split(tags: str | None) -> list[str]:
    return [t for t in (tags or "").split(SEPARATOR) if t]


class ClientTags:
    name = "client_tags"
    tables: tuple[Table, ...] = (TABLE,)

    def handles(self, event: Any) -> bool:
        return isinstance(
            event, (Client.ClientRegistered, Client.ProfileUpdated, Client.PersonalDataErased)
        )

    def apply(self, rows: Rows, event: Any, position: int) -> None:
        client_id = str(event.originator_id)
        if isinstance(event, Client.ClientRegistered):
            rows.put(
                TABLE.name,
                {
                    "client_id": client_id,
                    "project_id": event.project_id,
                    "tags": "",
                    "updated_at": event.timestamp,
                },
            )
            return
        row = rows.get(TABLE.name, client_id)
        if row is None:
            return
        # An erased buyer's profile goes with the rest of their personal data.
        tags = "" if isinstance(event, Client.PersonalDataErased) else None
        if tags is None:
            tags = SEPARATOR.join(tags_of(event.profile))
        rows.put(TABLE.name, {**row, "tags": tags, "updated_at": event.timestamp})
