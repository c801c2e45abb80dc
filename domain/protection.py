"""The protection clock (保护期) and the work that keeps it running: follow-ups (跟进),
grades (A/B/C 类客户), the demand profile (客户画像), the record of each time someone
serving the buyer was shown their full contact (联系方式), and what happens when the
clock or the inactivity limit runs out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.clock_rules import (
    dormant_from,
    escalates_at,
    extended_protection,
    next_follow_up_due,
)
from domain.custody import Custody
from domain.errors import InvalidInput
from domain.policy import Policy
from domain.values import Actor
from domain.vocabulary import FOLLOW_UP_METHODS, GRADES


class Protection(Custody):
    # ------------------------------------------------------------------ events

    class FollowUpLogged(Aggregate.Event):
        follow_up_id: str
        consultant_id: str
        method: str
        effective: bool
        next_contact_at: datetime | None
        grade: str | None
        pii: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Protection)
            aggregate.follow_ups += 1
            aggregate.last_follow_up_at = self.timestamp
            aggregate.requested_next_contact = self.next_contact_at
            if self.effective:
                aggregate.effective_follow_ups += 1
                aggregate.last_effective_follow_up_at = self.timestamp

    class GradeChanged(Aggregate.Event):
        grade: str
        previous_grade: str | None
        reason: str
        sealed: str = ""  # the free text, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Protection)
            aggregate.grade = self.grade

    class ProfileUpdated(Aggregate.Event):
        profile: dict[str, Any]
        sealed: str = ""  # source_detail, sealed under the buyer's key (ADR 0045)

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Protection)
            aggregate.profile = dict(self.profile)
            if self.sealed:
                aggregate.sealed_texts["source_detail"] = self.sealed
            else:
                aggregate.sealed_texts.pop("source_detail", None)

    class ContactDisclosed(Aggregate.Event):
        """Someone serving the buyer was shown their full name and number (the request id
        is the event's correlation id): every unmasking is on the record."""

        principal_id: str
        role: str

    class ProtectionExtended(Aggregate.Event):
        previous_until: datetime
        protected_until: datetime
        trigger: str  # follow_up | visit
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Protection)
            assert aggregate.owner is not None
            aggregate.owner.protected_until = self.protected_until

    class ProtectionExpired(Aggregate.Event):
        protected_until: datetime
        policy_version: int

    class FollowUpEscalated(Aggregate.Event):
        """The follow-up due at ``due_at`` is overdue past the grade's ``escalate_after``:
        the owner's supervisor is asked to step in (a task for the supervisor)."""

        consultant_id: str
        due_at: datetime
        grade: str | None
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Protection)
            aggregate.escalated_due = self.due_at

    class ClientWentDormant(Aggregate.Event):
        """No activity on the buyer since ``last_activity_at`` for ``dormant_after``:
        the buyer is 待激活 and the owner has a wake-up task, until the next follow-up or
        visit."""

        consultant_id: str
        last_activity_at: datetime
        policy_version: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Protection)
            aggregate.dormant_as_of = self.last_activity_at

    # ------------------------------------------------------------------- state

    def __init__(self) -> None:
        super().__init__()
        self.grade: str | None = None
        self.profile: dict[str, Any] = {}
        self.follow_ups = 0
        self.effective_follow_ups = 0
        self.last_follow_up_at: datetime | None = None
        self.requested_next_contact: datetime | None = None
        self.last_effective_follow_up_at: datetime | None = None
        self.escalated_due: datetime | None = None  # the follow-up due time escalated
        self.dormant_as_of: datetime | None = None  # the last activity it went dormant after

    # ---------------------------------------------------------------- protection

    def extend_protection(
        self, policy: Policy, at: datetime, trigger: str, trace: dict[str, Any]
    ) -> None:
        owner = self._require_owner()
        new_until = extended_protection(policy, owner.since, owner.protected_until, at)
        if new_until is not None:
            self.trigger_event(
                self.ProtectionExtended,
                previous_until=owner.protected_until,
                protected_until=new_until,
                trigger=trigger,
                policy_version=policy.version,
                timestamp=at,
                **trace,
            )

    def note_owner_visit(self, policy: Policy, at: datetime, trace: dict[str, Any]) -> None:
        """A visit by an owned buyer counts as contact: protection and inactivity move."""
        self.extend_protection(policy, at, "visit", trace)
        self._schedule(
            policy,
            at,
            self.follow_up_basis or "first_follow_up",
            trace,
            self.next_follow_up_due,
            at,
        )

    # --------------------------------------------------------------- follow-ups

    def log_follow_up(
        self,
        *,
        actor: Actor,
        follow_up_id: str,
        method: str,
        effective: bool,
        next_contact_at: datetime | None,
        grade: str | None,
        pii: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
    ) -> None:
        owner = self._require_owner_or_supervisor(actor)
        if method not in FOLLOW_UP_METHODS:
            raise InvalidInput("method", f"must be one of {', '.join(FOLLOW_UP_METHODS)}")
        if next_contact_at is not None and next_contact_at <= at:
            raise InvalidInput("next_contact_at", "must be in the future")
        if grade is not None and grade not in GRADES:
            raise InvalidInput("grade", "must be A, B or C")
        self.trigger_event(
            self.FollowUpLogged,
            follow_up_id=follow_up_id,
            consultant_id=owner.consultant_id,
            method=method,
            effective=effective,
            next_contact_at=next_contact_at,
            grade=grade,
            pii=pii,
            timestamp=at,
            **trace,
        )
        if grade is not None and grade != self.grade:
            self._grade(grade, "set with a follow-up", at, trace)
        if effective:
            self.extend_protection(policy, at, "follow_up", trace)
        due, basis = next_follow_up_due(policy, self.grade, at, next_contact_at)
        self._schedule(policy, at, basis, trace, due, at if effective else None)

    def _grade(
        self, grade: str, reason: str, at: datetime, trace: dict[str, Any], sealed: str = ""
    ) -> None:
        if grade not in GRADES:
            raise InvalidInput("grade", "must be A, B or C")
        self.trigger_event(
            self.GradeChanged,
            grade=grade,
            previous_grade=self.grade,
            reason=reason,
            sealed=sealed,
            timestamp=at,
            **trace,
        )

    def change_grade(
        self,
        actor: Actor,
        grade: str,
        reason: str,
        policy: Policy,
        at: datetime,
        trace: dict[str, Any],
        sealed: str = "",
    ) -> None:
        self._require_owner_or_supervisor(actor)
        if grade == self.grade:
            return
        self._grade(grade, reason, at, trace, sealed)
        owner, last = self.owner, self.last_follow_up_at
        if owner is None or last is None or last < owner.since:
            return  # the first follow-up after assignment stays due as scheduled
        # The cadence restarts from this owner's last contact under the new grade, unless
        # the consultant asked for an earlier next contact then.
        due, basis = next_follow_up_due(policy, self.grade, last, self.requested_next_contact)
        # A cadence that ran out before the grade changed makes the buyer due now, not
        # retroactively overdue (and escalated) for days the consultant could not see.
        self._schedule(policy, at, basis, trace, max(due, at), None)

    def update_profile(
        self,
        actor: Actor,
        profile: dict[str, Any],
        at: datetime,
        trace: dict[str, Any],
        sealed: str = "",
    ) -> None:
        self._require_owner_or_supervisor(actor)
        self.trigger_event(
            self.ProfileUpdated, profile=profile, sealed=sealed, timestamp=at, **trace
        )

    def disclose_contact(
        self, principal_id: str, role: str, at: datetime, trace: dict[str, Any]
    ) -> None:
        self.trigger_event(
            self.ContactDisclosed, principal_id=principal_id, role=role, timestamp=at, **trace
        )

    # ------------------------------------------------------------- the working day

    def last_activity_at(self) -> datetime | None:
        """The current owner's last work on the buyer: ownership start, a follow-up
        logged (reached or not: 待激活 nudges an owner who stopped trying, not one whose
        calls go unanswered; a migrated register's last follow-up counts) or a visit."""
        owner = self.owner
        if owner is None:
            return None
        seen = (owner.since, self.last_follow_up_at, self.last_visit_at())
        return max(m for m in seen if m is not None and m >= owner.since)

    @property
    def dormant(self) -> bool:
        """待激活: flagged, and no activity since the stretch it was flagged for."""
        last = self.last_activity_at()
        return last is not None and self.dormant_as_of == last

    def _same_epoch(self, epoch: int | None) -> bool:
        owner = self.owner
        return owner is not None and (epoch is None or owner.decided_version == epoch)

    def go_dormant(
        self, epoch: int | None, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> bool:
        """Flag 待激活 once ``dormant_after`` passed without activity; once per stretch.

        A buyer in a deal is in touch enough (as for the inactivity release): never.
        """
        last = self.last_activity_at()
        if not self._same_epoch(epoch) or last is None or self.in_deal:
            return False
        if self.dormant_as_of == last or at < dormant_from(policy, last):
            return False
        assert self.owner is not None
        self.trigger_event(
            self.ClientWentDormant,
            consultant_id=self.owner.consultant_id,
            last_activity_at=last,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )
        return True

    def escalate_follow_up(
        self, epoch: int | None, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> bool:
        """Escalate the follow-up due now, once, when it is overdue past the grade's
        ``escalate_after`` (the policy in force when the deadline fires)."""
        due = self.next_follow_up_due
        if not self._same_epoch(epoch) or due is None or self.escalated_due == due:
            return False
        if at < escalates_at(policy, self.grade, due):
            return False
        assert self.owner is not None
        self.trigger_event(
            self.FollowUpEscalated,
            consultant_id=self.owner.consultant_id,
            due_at=due,
            grade=self.grade,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )
        return True

    # ---------------------------------------------------------------- running out

    def _expire_to(self, reason: str, policy: Policy, at: datetime, trace: dict[str, Any]) -> None:
        """Where an expired or inactive buyer goes: the pool, or the project manager."""
        owner = self._require_owner()
        manager = policy.expiry_manager_id
        if policy.on_expiry == "manager" and manager and manager != owner.consultant_id:
            self.transfer(
                to=manager, basis="expiry", reason=reason, policy=policy, at=at, trace=trace
            )
        else:
            self._release(reason, policy, at, trace)

    def expire_protection(
        self, epoch: int | None, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> bool:
        """Act only if this ownership (``epoch``) is still the one whose clock ran out.

        A buyer in a deal is never released by the clock: the deadline is a no-op then.
        """
        owner = self.owner
        if owner is None or at < owner.protected_until or self.in_deal:
            return False
        if epoch is not None and owner.decided_version != epoch:
            return False
        self.trigger_event(
            self.ProtectionExpired,
            protected_until=owner.protected_until,
            policy_version=policy.version,
            timestamp=at,
            **trace,
        )
        self._expire_to("expired", policy, at, trace)
        return True

    def release_inactive(
        self, epoch: int | None, policy: Policy, at: datetime, trace: dict[str, Any]
    ) -> bool:
        owner = self.owner
        if owner is None or self.inactive_after is None or at < self.inactive_after:
            return False
        if self.in_deal:  # a deal in progress is activity enough: no release
            return False
        if epoch is not None and owner.decided_version != epoch:
            return False
        self._expire_to("inactive", policy, at, trace)
        return True
