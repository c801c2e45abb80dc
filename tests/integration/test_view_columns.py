"""A view that gained columns since its tables were created starts again from zero on
``migrate`` (also run at embedded start-up), instead of failing on its first write."""

from __future__ import annotations

from collections.abc import Callable

from projections import people
from tests.support import ctx, unique
from yingke.bootstrap import Container, migrate
from yingke.settings import Settings

# principal_directory as it was created before principals had names.
OLD_DIRECTORY = (
    "CREATE TABLE principal_directory (principal_id TEXT PRIMARY KEY, role TEXT, "
    "team_id TEXT, partner_id TEXT, project_ids TEXT, revoked BOOLEAN, registered_at {ts})"
)


def test_a_view_with_new_columns_is_rebuilt_from_zero(
    settings: Settings, container: Callable[..., Container], project_id: str
) -> None:
    first = container()
    named, unnamed = unique("c"), unique("c")
    first.principals.register_principal(
        ctx(), named, "consultant", None, [project_id], "k1", display_name="王芳"
    )
    first.follower.catch_up()
    ts = "TIMESTAMPTZ" if first.views.dialect == "postgres" else "TEXT"
    with first.views.transaction() as tx:
        for table in ("principal_directory", "principal_directory__projects"):
            tx.execute(f"DROP TABLE {table}")
        tx.execute(OLD_DIRECTORY.format(ts=ts))
    first.close()

    migrate(settings)
    again = container()
    again.principals.register_principal(ctx(), unnamed, "consultant", None, [project_id], "k2")
    again.follower.catch_up()

    assert people.names(again.views, [named, unnamed]) == {named: "王芳", unnamed: unnamed}
    listed = people.directory(again.views, [project_id]).items
    assert {r["principal_id"] for r in listed} == {named, unnamed}
