"""The application service Yingke: every command and query the API and workers call.

The class is assembled from one module per area (service plumbing, intake, aftercare,
dealing) so each stays readable; this module is the one the rest of the code imports.
"""

from __future__ import annotations

from domain.dealing import Dealing
from domain.service import CommandResult, Context, Decision, Idempotency, jsonable

__all__ = ["CommandResult", "Context", "Decision", "Idempotency", "Yingke", "jsonable"]


class Yingke(Dealing):
    name = "Yingke"
