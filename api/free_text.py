"""Who reads the free text typed about a buyer (reasons, comments, source_detail).

The rule is declared in ``api.authorization`` (``READS_NOTES``, ``READS_OWN_WORDS``): the
people who serve the buyer (their consultant, that consultant's supervisor, the project's
managers) and auditors see it opened, and whoever wrote a text reads it; everyone else
sees ``[sealed]`` (ADR 0045). Once the buyer is erased, nobody can open it.
"""

from __future__ import annotations

from api.access import may
from api.authorization import READS_NOTES, READS_OWN_WORDS
from api.deps import Caller
from domain.client import Client
from yingke.bootstrap import Container


def reads_notes(app: Container, caller: Caller, client: Client) -> bool:
    """Whether the caller reads every text typed about this buyer."""
    return may(app, caller, READS_NOTES, client)


def author(caller: Caller) -> str | None:
    """Whose own words the caller reads besides (a principal id), if any."""
    return caller.id if caller.role in READS_OWN_WORDS else None
