"""Free text typed by people about a buyer, sealed under the buyer's key (ADR 0045).

A reason, a comment or a profile note may hold anything, a name and a phone number
included, so it is personal data like the name and the number: an event keeps it as a
vault token in its ``sealed`` attribute (the clear field left empty) and erasing the
buyer's key makes it unreadable. Events stored before sealing keep their clear text;
readers treat it the same way (shown only to those who may read notes, never once the
buyer is erased).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from domain.ports import PersonalDataVault

SEALED = "[sealed]"  # shown to whoever may not read the buyer's notes
ERASED = "[erased]"  # shown once the buyer's key is destroyed

# Event class name → its free-text fields; "profile.source_detail" is a key of a dict
# field. A field in clear on an event without a token was stored before sealing, or was
# written by the system (a code, "set with a follow-up"): readers hide it the same way.
FREE_TEXT: dict[str, tuple[str, ...]] = {
    "GradeChanged": ("reason",),
    # Districts (意向区域) are typed too: a list of any text, kept in clear on the event
    # (the pool's tags show them) but read like the sealed fields: opened for a reader,
    # never once the buyer is erased.
    "ProfileUpdated": ("profile.source_detail", "profile.districts"),
    "OwnershipTransferred": ("reason",),
    "LossApproved": ("comment",),
    "LossRejected": ("comment",),
    "ClaimRejected": ("reason",),
    "DisputeOpened": ("reason",),
    "DisputeRuled": ("reason",),
    "DisputeAppealed": ("reason",),
    "LoanRefused": ("reason",),
    "DealCancelled": ("reason",),
    "UnitSwapped": ("reason",),
    "BuyerRenamed": ("reason",),
    # A deal's documents: labels people type, which identify the buyer's property and
    # lender (and can hold anything). Shown to every reader of the deal, until erasure.
    "LoanApplied": ("bank",),
    "ContractSigned": ("contract_no",),
    "ContractFiled": ("filing_no",),
    "CertificateIssued": ("certificate_no",),
}
# Under which key a place in ``sealed_texts`` keeps its text in the token ("reason" if
# not named here).
TOKEN_KEYS = {
    "source_detail": "source_detail",
    "loan_bank": "bank",
    "contract_no": "contract_no",
    "filing_no": "filing_no",
    "certificate_no": "certificate_no",
}

# Seals ``{field: text}`` under the subject the caller chose (the buyer): lets an
# aggregate validate a value first and store only its token.
Sealer = Callable[[dict[str, str]], str]


def seal_text(vault: PersonalDataVault, subject: uuid.UUID, **texts: str | None) -> str:
    """One token for the non-empty texts, or "" when there is nothing to seal."""
    kept = {name: text for name, text in texts.items() if text}
    return vault.seal(subject, kept) if kept else ""


def open_text(
    vault: PersonalDataVault,
    subject: uuid.UUID,
    token: str,
    clear: dict[str, Any],
    *,
    erased: bool,
) -> dict[str, Any]:
    """The texts as written, by name: from the token, else the clear values (stored
    before sealing). Unreadable once the buyer is erased."""
    if token:
        opened = vault.open(subject, token)
        if opened is None:
            return {name: ERASED for name in clear}
        return {name: opened.get(name, clear[name]) for name in clear}
    if erased:
        return {name: ERASED if value else value for name, value in clear.items()}
    return dict(clear)


def open_places(
    vault: PersonalDataVault,
    subject: uuid.UUID,
    tokens: dict[str, str],
    clear: dict[str, Any],
    *,
    erased: bool,
) -> dict[str, Any]:
    """Free text kept in aggregate state, by place (``sealed_texts``): opened from its
    token, else the clear value an event stored before sealing left there."""
    shown: dict[str, Any] = {}
    for place, value in clear.items():
        name = TOKEN_KEYS.get(place, "reason")
        token = tokens.get(place, "")
        shown[place] = open_text(vault, subject, token, {name: value}, erased=erased)[name]
    return shown


def shown_or_sealed(texts: dict[str, Any] | None, place: str, clear: Any, sealed: bool) -> Any:
    """A place's text for an answer: opened (``texts``, for a reader), else ``[sealed]``
    when there is any text at all."""
    if texts is not None and place in texts:
        return texts[place]
    return SEALED if (clear or sealed) else clear


def _get(data: dict[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value = data.get(head)
    if rest:
        return value.get(rest) if isinstance(value, dict) else None
    return value


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        inner = data.get(head)
        if isinstance(inner, dict):
            data[head] = {**inner, rest: value}
        return
    data[head] = value


def show_event_text(
    vault: PersonalDataVault,
    subject: uuid.UUID,
    event: Any,
    data: dict[str, Any],
    *,
    reveal: bool,
    erased: bool,
) -> None:
    """Put an event's free text into its described ``data``: opened for a reader,
    ``[sealed]`` for anyone else, ``[erased]`` once the buyer is erased."""
    paths = FREE_TEXT.get(type(event).__name__)
    if not paths:
        return
    token = getattr(event, "sealed", "") or ""
    if not reveal:
        for path in paths:
            value = _get(data, path)
            # A sealed field is written empty ("") or absent (None); an empty list is no
            # text.
            if value or (token and value in (None, "")):
                _set(data, path, SEALED)
        return
    # A token holds each text under the last part of its path ("source_detail").
    names = {path: path.rpartition(".")[2] for path in paths}
    shown = open_text(
        vault,
        subject,
        token,
        {names[path]: _get(data, path) for path in paths},
        erased=erased,
    )
    for path in paths:
        if shown[names[path]] is not None:
            _set(data, path, shown[names[path]])
