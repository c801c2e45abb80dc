"""A project's settings as a stream of numbered versions (the attribution policy and the
commission policy).

A project that never changed its settings runs on the defaults, called version 0; each
change appends version n+1, and old versions stay readable so a replay judges by the
rules of its day. eventsourcing redefines the nested ``Event`` and ``Opened`` classes on
each subclass (as with domain.reports.ReportBook), so their topics name the subclass:
``domain.policy:ProjectPolicy.Opened``. Each subclass defines its own changed event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Protocol, Self, TypeVar

from eventsourcing.domain import Aggregate

from domain.errors import NotFound


class Settings(Protocol):
    """What a versioned settings value offers: its number and its settings."""

    @property
    def version(self) -> int: ...

    def settings(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=Settings)


class VersionedSettings(Aggregate, Generic[S]):
    """Base for the stream of one project's settings versions."""

    # No class-level annotations here: eventsourcing would turn the class into a dataclass,
    # and the subclasses' generated __init__ would replace the one below.
    NAME = "settings"  # how messages name the settings ("policy")
    MISSING = "settings version {version} does not exist"  # with a {version} placeholder

    class Event(Aggregate.Event):
        actor: dict[str, str]
        correlation_id: str

    class Opened(Aggregate.Created):
        project_id: str

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.versions: list[tuple[S, datetime]] = []

    @staticmethod
    def defaults() -> S:
        """Version 0."""
        raise NotImplementedError

    @staticmethod
    def validate(settings: dict[str, Any]) -> dict[str, Any]:
        """Complete, canonical settings, or InvalidInput."""
        raise NotImplementedError

    def changed_event(self) -> type[Aggregate.Event]:
        """The event class that records a new version."""
        raise NotImplementedError

    @classmethod
    def missing(cls, version: int) -> NotFound:
        return NotFound(cls.MISSING.format(version=version))

    @classmethod
    def open(cls, project_id: str, at: datetime, trace: dict[str, Any]) -> Self:
        return cls._create(
            cls.Opened,
            id=cls.create_id(project_id),
            project_id=project_id,
            timestamp=at,
            **trace,
        )

    def record(self, settings: S, at: datetime) -> None:
        """Called by the changed event's apply."""
        self.versions.append((settings, at))

    def change(self, settings: dict[str, Any], at: datetime, trace: dict[str, Any]) -> S:
        self.trigger_event(
            self.changed_event(),
            policy_version=len(self.versions) + 1,
            settings=self.validate(settings),
            timestamp=at,
            **trace,
        )
        return self.current

    @property
    def current(self) -> S:
        return self.versions[-1][0] if self.versions else self.defaults()

    def at_version(self, version: int) -> S:
        if version == 0:
            return self.defaults()
        if not 1 <= version <= len(self.versions):
            raise self.missing(version)
        return self.versions[version - 1][0]

    def changed_at(self, version: int) -> datetime | None:
        return self.versions[version - 1][1] if version >= 1 else None
