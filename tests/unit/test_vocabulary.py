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


def test_every_loss_reason_has_its_chinese_word_for_people() -> None:
    labels = vocabulary.LOSS_REASON_LABELS
    assert tuple(labels) == vocabulary.LOSS_REASONS
    assert len(set(labels.values())) == len(labels)
    assert all(word and not word.isascii() for word in labels.values())
