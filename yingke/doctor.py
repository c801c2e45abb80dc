"""`yingke doctor`: find data written before the store learned to refuse it.

Before phone input was NFKC-normalized and held to ASCII digits, a number typed in
full-width or another script's digits could register a second buyer. Such buyers carry
their masked phone in those characters; this lists them so a manager can resolve each
(transfer, dispute ruling or erasure) by hand. It only reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from eventsourcing.utils import get_topic

from domain.application import EventStore
from domain.client import Client
from domain.values import has_foreign_characters

_PAGE = 1000


@dataclass(frozen=True)
class Suspect:
    client_id: str
    project_id: str
    phone_masked: str
    registered_at: str


def foreign_phone_clients(store: EventStore) -> Iterator[Suspect]:
    """Every registered buyer whose stored masked phone holds a non-ASCII character."""
    topic = get_topic(Client.ClientRegistered)
    start = 0
    while True:
        page = store.recorder.select_notifications(
            start=start, limit=_PAGE, topics=[topic], inclusive_of_start=False
        )
        if not page:
            return
        for notification in page:
            event = store.mapper.to_domain_event(notification)
            assert isinstance(event, Client.ClientRegistered)
            if has_foreign_characters(event.phone_masked):
                yield Suspect(
                    str(event.originator_id),
                    event.project_id,
                    event.phone_masked,
                    event.timestamp.isoformat(),
                )
        start = page[-1].id
