"""The shape issue 9 gave the domain, kept by tests (ADR 0017, ADR 0020).

- The capability services are composed, never inherited: a service states what it needs
  in its constructor, so no base class can hide a step.
- No domain class overrides a method of a domain class it builds on: a base whose method
  does nothing until a subclass replaces it is a hook the reader of the base cannot see
  (``Aftercare._follow_ruling`` was one). Declared abstract methods (a body that raises
  ``NotImplementedError``) say so in the base and are allowed.
- The domain does not speak HTTP: no web framework, no status codes. The idempotency
  record stores the response the API chose, opaque to the domain, under the field name
  its stored events have always had.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any, Generic

import domain
import domain.services

ROOT = Path(__file__).resolve().parents[2]
# The stored field of IdempotencyRecord.ResponseRecorded and its one reader.
STATUS_CODE_ALLOWED = ("domain/idempotency.py", "domain/services/uow.py")


def domain_classes() -> list[type[Any]]:
    found: dict[str, type[Any]] = {}
    for info in pkgutil.walk_packages(domain.__path__, "domain."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and value.__module__.startswith("domain."):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def declared_abstract(function: Any) -> bool:
    body = ast.parse(inspect.cleandoc("\n" + inspect.getsource(function))).body[0]
    assert isinstance(body, ast.FunctionDef)
    last = body.body[-1]
    return (
        isinstance(last, ast.Raise)
        and isinstance(last.exc, ast.Name)
        and last.exc.id == "NotImplementedError"
    )


def test_the_capability_services_inherit_from_nothing_of_ours() -> None:
    chained = []
    for info in pkgutil.iter_modules(domain.services.__path__):
        module = importlib.import_module(f"domain.services.{info.name}")
        for cls in vars(module).values():
            if inspect.isclass(cls) and cls.__module__ == module.__name__:
                bases = [b for b in cls.__bases__ if b not in (object, Generic)]
                if bases:
                    chained.append(f"{cls.__qualname__}({', '.join(map(str, bases))})")
    assert chained == []


def test_no_domain_class_overrides_a_method_of_a_domain_class_it_builds_on() -> None:
    overridden = []
    # Errors are values raised to the caller; a narrower error answering its own details
    # is what an exception hierarchy is for.
    for cls in [c for c in domain_classes() if not issubclass(c, Exception)]:
        for base in cls.__mro__[1:]:
            if not base.__module__.startswith("domain."):
                continue
            for name, value in vars(cls).items():
                if name.startswith("__") or inspect.isclass(value) or name not in vars(base):
                    continue
                ours = vars(base)[name]
                function = ours.__func__ if isinstance(ours, staticmethod | classmethod) else ours
                if isinstance(function, property):
                    function = function.fget
                if not inspect.isfunction(function):
                    continue
                if declared_abstract(function):
                    continue
                overridden.append(f"{cls.__qualname__}.{name} overrides {base.__qualname__}")
    assert overridden == []


def test_the_domain_speaks_no_http() -> None:
    spoken = []
    for path in sorted((ROOT / "domain").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names.append(getattr(node, "module", None) or "")
                if any(n.split(".")[0] in ("fastapi", "starlette", "http") for n in names):
                    spoken.append(f"{relative}:{node.lineno} imports {names}")
            if (
                isinstance(node, ast.Name | ast.Attribute | ast.arg | ast.keyword)
                and "status_code"
                in (
                    getattr(node, "id", None),
                    getattr(node, "attr", None),
                    getattr(node, "arg", None),
                )
                and relative not in STATUS_CODE_ALLOWED
            ):
                spoken.append(f"{relative}:{node.lineno} names status_code")
    assert spoken == []
