"""Clients: finding a buyer, reading the buyer's evidence chain, erasing personal data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.client import Client, no_owner
from domain.errors import NotFound
from domain.ports import Clock, Folded, History, PersonalDataVault
from domain.sealing import ERASED, open_places, show_event_text
from domain.services.uow import Context, Done, UnitOfWork, fold
from domain.values import PhoneKeyer, check_identifier, mask_name, mask_phone, normalize_phone

# Event fields that are bookkeeping, not business facts, in the history view.
_HIDDEN_FIELDS = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "actor",
    "correlation_id",
    "phone_hash",
    "pii",
    "sealed",
}


@dataclass(frozen=True)
class ClientView:
    """A buyer as of ``at``, with the latest name the buyer gave, masked."""

    client: Client
    name_masked: str | None
    at: datetime


@dataclass(frozen=True)
class Loaded:
    """A buyer read once (chain-checked): its state and the events read for it (all of
    them when ``base`` is 0, else those after the snapshot at version ``base``), and the
    chain hash of its last event if the reader gave it."""

    client: Client
    events: list[Any]
    base: int = 0
    head: bytes | None = None


class FullHistory:
    """``History`` without snapshots: every event of the stream, read and folded."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def fold(self, stream: uuid.UUID, at: datetime | None, also: int | None = None) -> Folded:
        events = self.uow.events(stream)
        upto = events if at is None else [e for e in events if e.timestamp <= at]
        extra = next((e for e in events if e.originator_version == also), None)
        return Folded(fold(None, upto), events, upto, 0, also=extra)

    def whole(self, stream: uuid.UUID) -> Folded:
        return self.fold(stream, None)

    def many(self, streams: list[uuid.UUID]) -> dict[uuid.UUID, Folded]:
        found = {s: self.fold(s, None) for s in dict.fromkeys(streams)}
        return {s: f for s, f in found.items() if f.events}

    def event(self, stream: uuid.UUID, version: int) -> Any:
        found = self.uow.store.events.get(stream, gt=version - 1, lte=version)
        return next(iter(found), None)


@dataclass(frozen=True)
class ClientAt:
    """A command's outcome on one buyer: the stream after it, and when it happened."""

    client: Client
    at: datetime


# A report turned away (rejected: another holds the buyer) or that lost at the visit
# (closed): what its channel wrote is no name for the buyer. A rival channel would
# otherwise choose the name the owner's contact card shows.
_LOST = ("rejected", "closed")


def _lost_report(client: Client, event: Any) -> bool:
    report = client.reports.get(getattr(event, "report_id", None) or "")
    return report is not None and report.status in _LOST and event.pii == report.pii


class Clients:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        keyer: PhoneKeyer,
        vault: PersonalDataVault,
        history: History | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.keyer = keyer
        self.vault = vault
        self.folds = history or FullHistory(uow)

    def client(self, client_id: uuid.UUID) -> Client:
        return self.uow.get(Client, client_id, "client")

    def find(self, client_id: uuid.UUID) -> Client | None:
        return self.uow.find(Client, client_id)

    def loaded(self, client_id: uuid.UUID) -> Loaded | None:
        """The buyer and its events from one read and one replay, for a request that
        needs both (the access check, then ownership as of an instant)."""
        found = self.folds.fold(client_id, None)
        if not isinstance(found.state, Client):
            return None
        return Loaded(found.state, found.events, found.base, found.head)

    def whole(self, client_id: uuid.UUID) -> Loaded:
        """The buyer with every event of its stream (``base`` 0), from one read."""
        found = self.folds.whole(client_id)
        if not isinstance(found.state, Client):
            raise NotFound("client not found")
        return Loaded(found.state, found.events, 0, found.head)

    def many(self, client_ids: list[uuid.UUID]) -> dict[uuid.UUID, Loaded]:
        """Buyers with every event of their streams, read together (a list that names
        many buyers: my day, the inbox); ids of no buyer are left out."""
        found = self.folds.many(client_ids)
        return {
            i: Loaded(f.state, f.events) for i, f in found.items() if isinstance(f.state, Client)
        }

    def client_for(self, ctx: Context, project_id: str, number: str, now: datetime) -> Client:
        """The buyer with this number at the project, registered on first sight; an
        erased buyer comes back (their number sealed under a fresh key)."""
        digest = self.keyer.digest(number)  # the id's and, for a new buyer, the stream's
        client_id = self.keyer.client_id_of(project_id, digest)
        client = self.find(client_id)
        if client is not None and client.erased:
            client.come_back(self.vault.seal(client_id, {"phone": number}), now, ctx.trace)
        elif client is None:
            client = Client.register(
                client_id,
                project_id=project_id,
                phone_masked=mask_phone(number),
                phone_hash=digest,
                pii=self.vault.seal(client_id, {"phone": number}, new=True),
                at=now,
                trace=ctx.trace,
            )
        return client

    def lookup_client(self, project_id: str, phone: str) -> uuid.UUID:
        check_identifier(project_id, "project_id")
        client_id = self.keyer.client_id(project_id, normalize_phone(phone))
        if self.find(client_id) is None:
            raise NotFound("no client with this phone number at this project")
        return client_id

    def client_summary(self, client_id: uuid.UUID, client: Client | None = None) -> ClientView:
        """``client``: the buyer as the caller has just read it (not read again)."""
        client = client or self.client(client_id)
        return ClientView(client, self._latest_name(client), self.clock())

    def _latest_name(self, client: Client) -> str | None:
        tokens = [r.pii for r in client.reports.values() if r.status not in _LOST]
        for token in reversed(tokens):
            opened = self.vault.open(client.id, token)
            if opened and opened.get("name"):
                return mask_name(opened["name"])
        return None

    def buyer_name(self, client: Client, events: list[Any] | None = None) -> str | None:
        """The latest name written down for the buyer (a visit, a report that was not
        turned away), unsealed: for the people serving the buyer only. None once erased.
        ``events``: every event of the buyer's stream, if the caller read them."""
        if client.erased:
            return None
        for event in reversed(events if events is not None else self.uow.events(client.id)):
            token = getattr(event, "pii", None)
            if not token or _lost_report(client, event):
                continue
            opened = self.vault.open(client.id, token) or {}
            if opened.get("name"):
                name: str = opened["name"]
                return name
        return None

    def loss_note(
        self, client: Client, request_id: str, events: list[Any] | None = None
    ) -> str | None:
        """The note the owner wrote with a loss request, for whoever reviews it."""
        for event in events if events is not None else self.uow.events(client.id):
            if getattr(event, "request_id", None) == request_id and hasattr(event, "pii"):
                note = (self.vault.open(client.id, event.pii) or {}).get("note")
                return str(note) if note else None
        return None

    def erase_personal_data(self, ctx: Context, client_id: uuid.UUID) -> Done[Client]:
        """Destroy the buyer's key and the keys of masked reports matched to them."""

        def decide(now: datetime) -> tuple[list[Client], Client]:
            client = self.client(client_id)
            for report in client.reports.values():
                if report.masked:
                    self.vault.erase(uuid.UUID(report.report_id))
            self.vault.erase(client.id)
            client.erase(now, ctx.trace)
            return [client], client

        return self.uow.run(ctx, decide)

    # ------------------------------------------------------- evidence chain

    def history(
        self,
        client_id: uuid.UUID,
        reveal: bool = False,
        client: Client | None = None,
        events: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The stream as evidence; free text opened only when ``reveal`` (for those who
        may read the buyer's notes), ``[sealed]`` otherwise. ``client``: the buyer as the
        caller has just read it; ``events``: every event of it, if the caller read them
        (chain-checked), else they are read (and checked) here."""
        if events is None:
            events = self.uow.events(client_id)
        if client is None:
            client = fold(None, events)
            if not isinstance(client, Client):
                raise NotFound("client not found")
        return [
            self.describe(
                client.id, e, reveal=reveal, erased=client.text_erased(e.originator_version)
            )
            for e in events
        ]

    def profile(self, client: Client) -> dict[str, Any]:
        """The demand profile with its free-text source_detail opened (for a reader)."""
        profile = dict(client.profile)
        clear = {"source_detail": profile.pop("source_detail", None)}
        shown = open_places(self.vault, client.id, client.sealed_texts, clear, erased=client.erased)
        if shown["source_detail"] is not None:
            profile["source_detail"] = shown["source_detail"]
        if client.erased and profile.get("districts"):
            # Typed text (domain.sealing.FREE_TEXT): it goes with the buyer's personal data.
            profile["districts"] = ERASED
        return profile

    def describe(
        self, subject: uuid.UUID, event: Any, *, reveal: bool = False, erased: bool = False
    ) -> dict[str, Any]:
        """One event as evidence: its business facts, who and when; personal data masked,
        free text opened for a reader."""
        data = {k: v for k, v in vars(event).items() if k not in _HIDDEN_FIELDS}
        show_event_text(self.vault, subject, event, data, reveal=reveal, erased=erased)
        token = getattr(event, "pii", None)
        if token:
            opened = self.vault.open(subject, token)
            if opened is None:
                data["personal_data"] = "erased"
            elif "name" in opened:
                data["client_name_masked"] = mask_name(opened["name"])
        return plain_dict(
            {
                "version": event.originator_version,
                "type": type(event).__name__,
                "occurred_at": event.timestamp,
                "actor": getattr(event, "actor", None),
                "correlation_id": getattr(event, "correlation_id", None),
                "data": data,
            }
        )

    def ownership_as_of(
        self, client_id: uuid.UUID, at: datetime, reveal: bool = False
    ) -> dict[str, Any]:
        """Replay the client's stream up to ``at`` and judge the owner at that instant."""
        owner = self.ownership_read(client_id, at, reveal)[1]
        del owner["stream_version"]
        return owner

    def ownership_read(
        self, client_id: uuid.UUID, at: datetime, reveal: bool = False, loaded: Loaded | None = None
    ) -> tuple[Client, dict[str, Any]]:
        """The buyer (as of ``at``, or as registered if ``at`` is earlier) and the owner
        at ``at``. ``loaded`` (the buyer as the access check read it, else read here)
        serves ``at`` at or after its last event without another read or replay; an
        earlier ``at`` folds the stream up to ``at`` from the latest snapshot before it.

        (Loading the aggregate, then the events, then the aggregate again at a version
        read and replayed the stream three times: a long stream made that the cost.)
        """
        if loaded is None:
            loaded = self.loaded(client_id)
            if loaded is None:
                raise NotFound("client not found")
        current = loaded.client
        # The event that decided the owner now most often decided it at ``at`` too (an
        # owner keeps a buyer for most of its stream): the as-of read fetches it as well.
        likely = current.ownership_at(at)["decided_by_version"]
        also = None
        if current.modified_on <= at:
            state, read = current, loaded.events
        else:
            found = self.folds.fold(client_id, at, also=likely)
            state, read, also = found.state, found.events, found.also
            if state is None:  # ``at`` is before the buyer was registered
                return fold(None, found.events[:1]), plain_dict(
                    {
                        "client_id": client_id,
                        "at": at,
                        "owner": no_owner(),
                        "decided_by": None,
                        "policy_version": None,
                        "replayed_to_version": 0,
                        "stream_version": current.version,
                    }
                )
        if not isinstance(state, Client):
            raise NotFound("client not found")
        owner = state.ownership_at(at)
        decided_by = None
        if (number := owner["decided_by_version"]) is not None:
            event = next((e for e in read if e.originator_version == number), None)
            if event is None and also is not None and also.originator_version == number:
                event = also
            if event is None:  # under the snapshot: one event, read through the check
                event = self._event(client_id, number)
            decided_by = self.describe(
                client_id, event, reveal=reveal, erased=current.text_erased(number)
            )
        return state, plain_dict(
            {
                "client_id": client_id,
                "at": at,
                "owner": owner,
                "decided_by": decided_by,
                "policy_version": owner["policy_version"],
                "replayed_to_version": state.version,
                "stream_version": current.version,
            }
        )

    def _event(self, client_id: uuid.UUID, version: int) -> Any:
        found = self.folds.event(client_id, version)
        if found is None:
            raise NotFound("client not found")
        return found


def plain_dict(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = plain(value)
    return out


def plain(value: Any) -> Any:
    """Datetimes and UUIDs as strings: evidence is read as it would be printed."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
