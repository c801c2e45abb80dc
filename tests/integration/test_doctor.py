"""`yingke doctor` finds buyers registered from a number in another digit script before
such numbers were refused, on both stores."""

from __future__ import annotations

import uuid

from domain.client import Client
from tests.support import START, ctx, file_report
from yingke.bootstrap import Container
from yingke.doctor import foreign_phone_clients


def test_doctor_lists_only_buyers_whose_stored_mask_is_not_ascii(
    app: Container, project_id: str
) -> None:
    clean = file_report(app, project_id, "p1", "13764472345")
    legacy_id = uuid.uuid4()
    # What the store held when \d accepted ١٣٧ (Arabic-Indic digits) as a phone.
    legacy = Client.register(
        legacy_id,
        project_id=project_id,
        phone_masked="\u0661\u0663\u0667****2345",
        phone_hash="legacy",
        pii=app.clients.vault.seal(legacy_id, {"phone": "legacy"}),
        at=START,
        trace=ctx().trace,
    )
    app.store.save(legacy)

    suspects = [s for s in foreign_phone_clients(app.store) if s.project_id == project_id]

    assert [s.client_id for s in suspects] == [str(legacy_id)]
    assert suspects[0].phone_masked == "\u0661\u0663\u0667****2345"
    assert clean["client_id"] not in {s.client_id for s in suspects}
