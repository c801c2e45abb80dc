"""The auditor's page folds the buyer once: the owner picker's answer is the
ownership read's, and the buyer's stream is not replayed whole beside it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.http.conftest import Api
from tests.http.evidence_scenario import disputed_buyer


def test_the_owner_picker_folds_the_buyer_once(api: Api) -> None:
    d = disputed_buyer(api)
    _, auditor = api.principal("auditor")
    key = auditor["Authorization"].removeprefix("Bearer ")
    signed = api.client.post("/audit/sign-in", data={"key": key}, follow_redirects=False)
    assert signed.status_code == 303
    clients = api.container.clients
    stream = uuid.UUID(str(d.client_id))
    replays: list[Any] = []

    def watching(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(client_id: uuid.UUID, *args: Any) -> Any:
            if client_id == stream:
                replays.append(real.__name__)
            return real(client_id, *args)

        return call

    setattr(clients, "client", watching(clients.client))  # noqa: B010
    setattr(clients, "loaded", watching(clients.loaded))  # noqa: B010
    instants = (d.before_ruling, d.after_ruling)
    try:
        picked = [
            api.client.get(f"/audit/clients/{d.client_id}/ownership", params={"at": at.isoformat()})
            for at in instants
        ]
    finally:
        delattr(clients, "client")
        delattr(clients, "loaded")
        api.client.cookies.clear()
    # Each answer: one fold (the latest snapshot on); before, a whole replay and a fold.
    assert replays == ["loaded", "loaded"], replays
    for at, answer in zip(instants, picked, strict=True):
        assert answer.status_code == 200, answer.text
        expected = clients.ownership_as_of(stream, at)
        assert answer.json()["owner"] == expected["owner"]
        assert answer.json()["decided_by"]["version"] == expected["decided_by"]["version"]
    assert picked[0].json()["owner"] != picked[1].json()["owner"]  # the ruling moved it
