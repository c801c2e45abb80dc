"""回执: report receipts a channel verifies itself, and the keys to verify them with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import AppDep, get_container
from api.schemas import ReceiptOut
from yingke import receipts

router = APIRouter(prefix="/v1/receipts", tags=["receipts"])


class PublicKeyOut(BaseModel):
    key_id: str
    algorithm: str
    public_key: str = Field(description="Raw 32-byte Ed25519 public key, base64")
    valid_from: str
    valid_until: str | None = Field(description="null while the key still signs")


class KeysOut(BaseModel):
    keys: list[PublicKeyOut]


class VerifyIn(BaseModel):
    receipt: ReceiptOut
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="Optional: the number reported, checked against the commitment "
        "(needs the receipt's phone_salt)",
    )


class VerifyOut(BaseModel):
    valid: bool
    signature_valid: bool
    in_chain: bool = Field(description="The receipt's event is still in an intact chain")
    phone_matches: bool | None
    reason: str | None = Field(
        description="unknown_key, bad_signature, event_not_in_chain, integrity_failure, "
        "phone_mismatch"
    )
    position: int | None = None


@router.get("/keys", response_model=KeysOut)
def keys(request: Request) -> dict[str, Any]:
    """Every receipt-signing public key, old ones included (no authentication)."""
    return {"keys": receipts.published_keys(get_container(request).key_dir)}


@router.post("/verify", response_model=VerifyOut)
def verify(body: VerifyIn, app: AppDep) -> dict[str, Any]:
    """Check a receipt's signature and that its event is still in the chain (no auth)."""
    return receipts.verify(app.store, app.key_dir, body.receipt.model_dump(), phone=body.phone)
