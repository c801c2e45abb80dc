"""Who reads the free text typed about a buyer (reasons, comments, source_detail).

The people who serve the buyer (their consultant, that consultant's supervisor, the
project's managers: ``SERVERS``) and auditors see it opened; everyone else sees
``[sealed]`` (ADR 0045). Once the buyer is erased, nobody can open it.
"""

from __future__ import annotations

from api.access import SERVERS, may
from api.deps import Caller
from domain.client import Client
from yingke.bootstrap import Container


def reads_notes(app: Container, caller: Caller, client: Client) -> bool:
    return caller.role == "auditor" or may(app, caller, SERVERS, client)
