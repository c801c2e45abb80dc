"""Each closed list of words is written once, in domain/vocabulary.py."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

import api
import domain
from api import schemas
from domain import vocabulary
from projections import dashboards, pending_decisions

ROOT = Path(__file__).resolve().parents[2]
VOCABULARIES = {
    name: value
    for name, value in vars(vocabulary).items()
    if name.isupper() and isinstance(value, tuple)
}


def module_constants() -> list[tuple[str, str, Any]]:
    found = []
    for package in (domain, api):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                found.append((info.name, name, value))
    return found


def test_the_schemas_write_no_word_list_of_their_own() -> None:
    tree = ast.parse((ROOT / "api" / "schemas.py").read_text(encoding="utf-8"))
    literals = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Literal"
    ]
    assert literals == [], f"use a Literal from domain.vocabulary (api/schemas.py:{literals})"


def spelled_out_literals(*folders: str) -> list[tuple[str, int, frozenset[str]]]:
    """Every ``Literal["a", "b", ...]`` written out in the folders' modules."""
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Subscript)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "Literal"
                ):
                    continue
                items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
                words = [
                    i.value
                    for i in items
                    if isinstance(i, ast.Constant) and isinstance(i.value, str)
                ]
                if len(words) > 1 and len(words) == len(items):
                    found.append((str(path.relative_to(ROOT)), node.lineno, frozenset(words)))
    return found


def test_no_route_or_view_spells_out_a_vocabulary_again() -> None:
    # Query parameters (``?grade=A``) are vocabularies too: a router that writes the
    # words out drifts from the domain the day a word is added there.
    known = {
        frozenset(words): ("domain/vocabulary.py", name) for name, words in VOCABULARIES.items()
    }
    # The read side's own vocabulary, defined once in its view.
    known[frozenset(pending_decisions.KINDS)] = ("projections/pending_decisions.py", "KINDS")
    known[frozenset(dashboards.GROUPINGS)] = ("projections/dashboards.py", "GROUPINGS")
    known[frozenset(dashboards.PERIODS)] = ("projections/dashboards.py", "PERIODS")
    copies = [
        f"{path}:{line} spells out {known[words][1]} of {known[words][0]}"
        for path, line, words in spelled_out_literals("api", "projections", "yingke")
        if words in known and path != known[words][0]
    ]
    assert copies == []


def test_the_schemas_offer_exactly_the_words_the_domain_checks() -> None:
    fields: dict[tuple[type[BaseModel], str], tuple[str, ...]] = {
        (schemas.PrincipalIn, "role"): vocabulary.ROLES,
        (schemas.PolicyIn, "judge_rule"): vocabulary.JUDGE_RULES,
        (schemas.PolicyIn, "on_expiry"): vocabulary.ON_EXPIRY,
        (schemas.FollowUpIn, "method"): vocabulary.FOLLOW_UP_METHODS,
        (schemas.GradeIn, "grade"): vocabulary.GRADES,
        (schemas.LossRequestIn, "reason"): vocabulary.LOSS_REASONS,
        (schemas.RulingIn, "outcome"): vocabulary.DISPUTE_OUTCOMES,
        (schemas.DepositIn, "method"): vocabulary.DEPOSIT_METHODS,
        (schemas.SubscriptionIn, "payment_plan"): vocabulary.PAYMENT_PLANS,
        (schemas.PaymentIn, "kind"): vocabulary.PAYMENT_KINDS,
        (schemas.CancelIn, "fault"): vocabulary.FAULTS,
        (schemas.DealOut, "stage"): vocabulary.DEAL_STAGES,
        (schemas.PayoutStageIn, "milestone"): vocabulary.MILESTONES,
    }
    for (model, field), words in fields.items():
        assert get_args(model.model_fields[field].annotation) == words, (model, field)


def is_access_rule(module: str, vocab: str) -> bool:
    """A router's list of roles allowed in says who may, not which roles exist: one that
    happens to allow every role is not a copy of the vocabulary."""
    return module.startswith("api.routers.") and vocab == "ROLES"


def test_no_module_keeps_its_own_copy_of_a_vocabulary() -> None:
    copies = [
        f"{module}.{name} copies vocabulary.{vocab}"
        for module, name, value in module_constants()
        if isinstance(value, tuple) and module != vocabulary.__name__
        for vocab, words in VOCABULARIES.items()
        if value is not words
        and len(value) > 1
        and set(value) == set(words)
        and not is_access_rule(module, vocab)
    ]
    assert copies == []


def test_every_vocabulary_tuple_is_its_literal_in_order_without_repeats() -> None:
    aliases = {
        name: get_args(value)
        for name, value in vars(vocabulary).items()
        if not name.isupper() and get_args(value) and name[0].isupper()
    }
    for name, words in VOCABULARIES.items():
        assert len(set(words)) == len(words), name
        assert words in aliases.values(), name


ROLES = vocabulary.ROLES
# Who may do what over HTTP is the authorization table's; api.deps keeps the roles that
# see every project because the table's module imports it.
API_ROLE_LISTS = ("api/authorization.py", "api/deps.py")


def word_lists(folder: str) -> list[tuple[str, int, frozenset[str]]]:
    """Every tuple, list or set of two or more strings written out under ``folder``."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                words = [
                    e.value
                    for e in node.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                ]
                if len(words) > 1 and len(words) == len(node.elts):
                    found.append((str(path.relative_to(ROOT)), node.lineno, frozenset(words)))
    return found


def role_lists(folder: str) -> list[tuple[str, int, frozenset[str]]]:
    """Every written-out list of two or more role names under ``folder``."""
    return [found for found in word_lists(folder) if found[2] <= set(ROLES)]


def test_the_api_lists_roles_only_in_the_authorization_table() -> None:
    strays = [f"{p}:{line}" for p, line, _ in role_lists("api") if p not in API_ROLE_LISTS]
    assert strays == [], "name the roles in api/authorization.py and import them"


def test_the_domain_names_each_list_of_roles_once() -> None:
    seen: dict[frozenset[str], str] = {}
    twice = []
    for path, line, words in role_lists("domain"):
        if path == "domain/vocabulary.py":
            continue
        if words in seen:
            twice.append(f"{path}:{line} repeats {seen[words]}")
        seen.setdefault(words, f"{path}:{line}")
    assert twice == []


def test_the_read_side_uses_the_domains_named_word_lists() -> None:
    # A view that writes out "the stages waiting for a signature" again would judge a
    # deal overdue by other words than the Deal does, the day a stage is added.
    named: dict[frozenset[str], str] = {}
    for info in pkgutil.walk_packages(domain.__path__, "domain."):
        for name, value in vars(importlib.import_module(info.name)).items():
            if (
                name.isupper()
                and isinstance(value, tuple)
                and len(value) > 1
                and all(isinstance(word, str) for word in value)
            ):
                named.setdefault(frozenset(value), f"{info.name}.{name}")
    copies = []
    for folder in ("api", "projections", "yingke", "consumers"):
        for where, line, words in word_lists(folder):
            found = named.get(words)
            if found is not None:
                copies.append(f"{where}:{line} writes out {found}")
    assert copies == []


def test_every_loss_reason_has_its_chinese_word_for_people() -> None:
    labels = vocabulary.LOSS_REASON_LABELS
    assert tuple(labels) == vocabulary.LOSS_REASONS
    assert len(set(labels.values())) == len(labels)
    assert all(word and not word.isascii() for word in labels.values())
