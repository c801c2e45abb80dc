"""Request and response bodies. Field descriptions become the OpenAPI text at /docs."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from api.validation import INT64_MAX, MULTILINE_FIELDS, Instant, check_text_tree
from domain.vocabulary import (
    AgeBand,
    CancellationFault,
    ConsultantRole,
    DealStage,
    DealStatus,
    DepositMethod,
    DisputeOutcome,
    FamilyStructure,
    FloorPreference,
    Focus,
    FollowUpMethod,
    Grade,
    JobStatus,
    JudgeRule,
    LedgerKind,
    LossReason,
    MaskedReports,
    OnExpiry,
    OwnerStatus,
    PayeeKind,
    PaymentKind,
    PaymentPlan,
    PayoutMilestone,
    Purpose,
    ReportStatus,
    Role,
    VisitOutcome,
)

Ident = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


EventVersion = Annotated[int, Field(ge=1, le=INT64_MAX)]


class Strict(BaseModel):
    """Every request body: unknown fields refused, and every text in it clean (no control
    characters, no blank values, one line except in free-text fields)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _clean_text(cls, value: Any, info: ValidationInfo) -> Any:
        check_text_tree(value, info.field_name in MULTILINE_FIELDS)
        return value


# ------------------------------------------------------------------ principals


class PrincipalIn(Strict):
    id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Stable id, e.g. the staff number of a consultant (置业顾问)",
    )
    role: Role
    partner_id: str | None = Field(
        default=None, max_length=64, description="Channel partner (渠道) of a channel_agent"
    )
    project_ids: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Projects (楼盘/案场) granted; required for manager, supervisor, consultant, "
        "finance",
    )
    team_id: str | None = Field(
        default=None,
        max_length=64,
        description="Sales team (销售小组) of a consultant or supervisor; a supervisor sees "
        "their team's buyers and tasks",
    )
    display_name: str | None = Field(
        default=None,
        max_length=64,
        description="The name people read (姓名), e.g. 王芳; defaults to the id",
    )
    wecom_user_id: str | None = Field(
        default=None,
        max_length=64,
        description="企业微信 userid: notifications go to this person as application messages",
    )
    notify_webhook: str | None = Field(
        default=None,
        max_length=2048,
        description="The person's own http(s) webhook for notifications (e.g. a WeCom robot)",
    )


class PrincipalChange(Strict):
    """Only the fields sent change; ``null`` clears an address (not the name)."""

    display_name: str | None = Field(default=None, max_length=64)
    wecom_user_id: str | None = Field(default=None, max_length=64)
    notify_webhook: str | None = Field(default=None, max_length=2048)


class PrincipalOut(BaseModel):
    id: str
    display_name: str
    role: str
    partner_id: str | None
    project_ids: list[str]
    team_id: str | None = None
    wecom_user_id: str | None = None
    notify_webhook: str | None = Field(
        default=None, description="Shown to admins only (a webhook URL carries its key)"
    )
    revoked: bool
    created_at: AwareDatetime | None = None
    key: str | None = Field(
        default=None, description="The API key, shown once at creation and never again"
    )


class PrincipalPage(BaseModel):
    items: list[PrincipalOut]
    next_cursor: str | None


# ---------------------------------------------------------------------- policy


class PolicyIn(Strict):
    judge_rule: JudgeRule = Field(
        default="report_first", description="报备优先 (report_first) or 到访优先 (visit_first)"
    )
    masked_reports: MaskedReports = Field(
        default="allowed", description="Whether 隐号报备 (前三后四, 138****5678) is accepted"
    )
    time_zone: str = Field(
        default="Asia/Shanghai",
        max_length=64,
        description="The office's IANA time zone: 'today' and the times in inbox and my day",
    )
    report_validity: str = Field(
        default="P3D", description="报备有效期: ISO-8601 duration, e.g. P3D or PT48H"
    )
    protection: str = Field(
        default="P30D", description="保护期 after the deciding visit: ISO-8601 duration"
    )
    protection_extension: str = Field(
        default="P3D",
        description="An effective follow-up or a visit pushes protection to at least this "
        "far from now (never backwards)",
    )
    protection_max: str = Field(
        default="P90D", description="Protection never runs past ownership start + this"
    )
    inactivity_release: str = Field(
        default="P30D", description="No effective follow-up for this long → released"
    )
    first_follow_up: str = Field(
        default="PT24H", description="First follow-up due this long after assignment"
    )
    cadence: dict[str, str] = Field(
        default_factory=lambda: {"A": "P3D", "B": "P7D", "C": "P30D"},
        description="Follow-up cadence per grade (A/B/C 类客户)",
    )
    on_expiry: OnExpiry = Field(
        default="pool", description="Where expired or inactive buyers go: 公海池 or a manager"
    )
    expiry_manager_id: str | None = Field(
        default=None, max_length=64, description="The manager who receives them (on_expiry=manager)"
    )
    pool_claims_per_month: int = Field(
        default=5, ge=0, le=10_000, description="Pool claims (捞客) per consultant per month"
    )
    pool_claim_approval: bool = Field(
        default=False, description="Whether a supervisor must approve each pool claim"
    )
    dormant_after: str = Field(
        default="P7D",
        description="No activity (a follow-up logged, reached or not, or a visit) on an owned "
        "buyer for this long → 待激活 and a wake-up task for the owner",
    )
    negotiation_escalation: str = Field(
        default="P15D",
        description="A deal in deposit (定金) or subscription (认购) without a contract for "
        "this long after the deposit → a task for the project manager",
    )
    recent_visit_window: str = Field(
        default="P7D",
        description="A report for a buyer seen at the office within this long before it is "
        "rejected recent_visit (the walk-in beats a later report, 防截客)",
    )
    escalate_after: dict[str, str] = Field(
        default_factory=lambda: {"A": "P1D", "B": "P1D", "C": "P1D"},
        description="Per grade: an overdue follow-up goes to the supervisor this long after "
        "it was due (ungraded buyers as B)",
    )
    loss_review_comment_required: bool = Field(
        default=True,
        description="Whether approving or rejecting a loss (战败) needs a review comment",
    )


class PolicyOut(BaseModel):
    project_id: str
    version: int = Field(description="0 means the defaults: the project never set a policy")
    effective_from: AwareDatetime | None
    judge_rule: str
    masked_reports: str
    time_zone: str = "Asia/Shanghai"
    report_validity: str
    protection: str
    protection_extension: str
    protection_max: str
    inactivity_release: str
    first_follow_up: str
    cadence: dict[str, str]
    on_expiry: str
    expiry_manager_id: str | None
    pool_claims_per_month: int
    pool_claim_approval: bool
    dormant_after: str
    negotiation_escalation: str
    recent_visit_window: str
    escalate_after: dict[str, str]
    loss_review_comment_required: bool


# --------------------------------------------------------------------- reports


class ReportIn(Strict):
    project_id: str = Ident
    partner_id: str = Field(min_length=1, max_length=64, description="渠道 partner filing")
    agent_id: str = Field(min_length=1, max_length=64, description="经纪人 filing the report")
    client_name: str = Field(min_length=1, max_length=50)
    phone: str = Field(
        min_length=7,
        max_length=32,
        description="Full mobile number, or masked 前三后四 like 138****5678 when allowed",
    )
    expected_visit_at: Instant | None = Field(
        default=None, description="Must fall inside the report's validity"
    )
    note: str | None = Field(default=None, max_length=500)


class ReceiptOut(BaseModel):
    payload: str = Field(description="Canonical JSON of the report's facts (signed bytes)")
    signature: str = Field(description="Ed25519 signature of the payload's UTF-8, base64")
    key_id: str = Field(description="The key in GET /v1/receipts/keys")
    phone_salt: str | None = Field(
        default=None,
        description="Salt of the payload's phone_commitment; given to the filing channel "
        "only, keep it private",
    )


class ReportOut(BaseModel):
    report_id: str
    project_id: str
    partner_id: str
    agent_id: str
    status: ReportStatus
    reason: str | None = Field(
        description="Why rejected or closed: protected, duplicate, masked_not_allowed, "
        "recent_visit, lost_to_earlier_report, lost_to_accompanied_visit, …"
    )
    client_id: str | None = Field(description="null for a masked report until a visit matches it")
    phone_masked: str
    masked: bool
    filed_at: AwareDatetime
    valid_until: AwareDatetime | None
    expected_visit_at: AwareDatetime | None
    policy_version: int
    client_name_masked: str | None = None
    receipt: ReceiptOut | None = Field(
        default=None, description="On filing only: the signed receipt (回执)"
    )


# ---------------------------------------------------------------------- visits


class VisitIn(Strict):
    project_id: str = Ident
    phone: str = Field(min_length=7, max_length=32, description="The buyer's full number")
    client_name: str = Field(min_length=1, max_length=50)
    consultant_id: str = Field(
        min_length=1, max_length=64, description="置业顾问 receiving the buyer"
    )
    partner_id: str | None = Field(
        default=None, max_length=64, description="Channel whose agent accompanies (带看)"
    )
    agent_id: str | None = Field(default=None, max_length=64)


class Owner(BaseModel):
    status: OwnerStatus
    consultant_id: str | None
    partner_id: str | None
    report_id: str | None
    basis: str | None = Field(
        description="report | walk_in (自然到访) | pool_claim | transfer | departure | expiry "
        "| ruling; for status pool, the release reason"
    )
    since: AwareDatetime | None
    protected_until: AwareDatetime | None
    protected: bool
    policy_version: int | None
    decided_by_version: int | None = Field(description="Version of the deciding event")


class VisitOut(BaseModel):
    client_id: str
    visit_id: str
    outcome: VisitOutcome
    owner: Owner


# --------------------------------------------------------------------- clients


class LookupIn(Strict):
    project_id: str = Ident
    phone: str = Field(min_length=7, max_length=32)


class LookupOut(BaseModel):
    client_id: str


class ClientOut(BaseModel):
    client_id: str
    project_id: str
    phone_masked: str
    client_name_masked: str | None
    registered_at: AwareDatetime
    version: int
    owner: Owner
    visits: int
    last_visit_at: AwareDatetime | None
    reports: list[ReportOut]
    personal_data_erased: bool
    profile: dict[str, Any] | None = Field(
        default=None, description="客户画像; only for the people serving the buyer"
    )


class HistoryEvent(BaseModel):
    version: int
    type: str
    occurred_at: AwareDatetime
    actor: dict[str, str] | None
    correlation_id: str | None
    data: dict[str, Any]


class IntegrityOut(BaseModel):
    verified: bool = Field(
        description="The events read matched their hash chain (under a snapshot: its seal"
        " and the chain hash at its version; the events beneath re-checked at least once a"
        " minute per process)"
    )
    head_hash: str | None = Field(description="SHA-256 chain hash of the stream's last event")
    version: int


class HistoryOut(BaseModel):
    client_id: str
    events: list[HistoryEvent]
    integrity: IntegrityOut


class OwnershipOut(BaseModel):
    client_id: str
    at: AwareDatetime
    owner: Owner
    decided_by: HistoryEvent | None
    policy_version: int | None
    replayed_to_version: int
    integrity: IntegrityOut


class ErasureOut(BaseModel):
    client_id: str
    personal_data_erased: bool


# ------------------------------------------------------------------ aftercare


class FollowUpIn(Strict):
    method: FollowUpMethod
    summary: str = Field(min_length=1, max_length=2000, description="What was said (sealed)")
    effective: bool = Field(description="The buyer was actually reached (有效跟进)")
    next_contact_at: Instant | None = Field(
        default=None, description="When the consultant plans the next contact"
    )
    grade: Grade | None = Field(
        default=None, description="A: buys in 1-3 months, B: 3-6, C: no timetable"
    )


class GradeIn(Strict):
    grade: Grade
    reason: str = Field(min_length=1, max_length=500)


class ProfileIn(Strict):
    """The structured demand profile (客户画像)."""

    budget_min: int | None = Field(default=None, ge=0, le=10_000_000_000, description="yuan")
    budget_max: int | None = Field(default=None, ge=0, le=10_000_000_000, description="yuan")
    districts: list[str] = Field(default_factory=list, max_length=20)
    layouts: list[int] = Field(default_factory=list, max_length=10, description="rooms, 1-10")
    area_min: float | None = Field(default=None, ge=10, le=5000, description="m²")
    area_max: float | None = Field(default=None, ge=10, le=5000, description="m²")
    floor_preference: FloorPreference | None = None
    purpose: Purpose | None = None
    focus: list[Focus] = Field(default_factory=list, max_length=11)
    family_structure: FamilyStructure | None = None
    age_band: AgeBand | None = None
    source_detail: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _ranges(self) -> ProfileIn:
        budget = (self.budget_min, self.budget_max)
        if budget[0] is not None and budget[1] is not None and budget[0] > budget[1]:
            raise ValueError("budget_max must not be below budget_min")
        area = (self.area_min, self.area_max)
        if area[0] is not None and area[1] is not None and area[0] > area[1]:
            raise ValueError("area_max must not be below area_min")
        if any(not 1 <= rooms <= 10 for rooms in self.layouts):
            raise ValueError("layouts: rooms must be between 1 and 10")
        return self


class TransferIn(Strict):
    to_consultant_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class LossRequestIn(Strict):
    reason: LossReason = Field(description="战败原因")
    note: str = Field(default="", max_length=2000)


class DecisionIn(Strict):
    comment: str = Field(
        default="",
        max_length=500,
        description="审核意见; a loss (战败) decision needs one while the project's policy "
        "sets loss_review_comment_required (the default)",
    )


class ClaimIn(Strict):
    consultant_id: str | None = Field(
        default=None,
        max_length=64,
        description="Who claims (捞客); defaults to the calling consultant",
    )


class DepartureIn(Strict):
    successor_id: str | None = Field(default=None, max_length=64)
    to_pool: bool = False


class DisputeIn(Strict):
    claimant_id: str = Field(
        min_length=1,
        max_length=64,
        description="The consultant claiming the buyer, or the channel partner_id",
    )
    reason: str = Field(min_length=1, max_length=2000)
    evidence_versions: list[EventVersion] = Field(default_factory=list, max_length=100)
    report_id: str | None = Field(
        default=None, description="Required for a channel: the report the claim rests on"
    )


class RulingIn(Strict):
    outcome: DisputeOutcome
    reason: str = Field(min_length=1, max_length=2000)
    evidence_versions: list[EventVersion] = Field(min_length=1, max_length=100)


class AppealIn(Strict):
    reason: str = Field(min_length=1, max_length=2000)


# ------------------------------------------------------------------- deals

MAX_FEN = 10**13
FEN = "in fen (分): 1 yuan = 100 fen"


def _fen(description: str) -> Any:
    return Field(gt=0, le=MAX_FEN, description=f"{description}, {FEN}")


class DealOpenIn(Strict):
    client_id: uuid.UUID = Field(description="The buyer; they must have an owning consultant")
    unit_id: uuid.UUID = Field(description="An available unit (房源) of the buyer's project")


class DepositIn(Strict):
    amount_fen: int = _fen("定金 paid")
    method: DepositMethod
    signing_deadline: Instant = Field(
        description="签约 deadline: a buyer who misses it unsigned forfeits the deposit"
    )


class SubscriptionIn(Strict):
    price_fen: int = _fen("认购 price agreed")
    payment_plan: PaymentPlan = Field(description="一次性付款 / 按揭 / 分期")
    signing_deadline: Instant | None = Field(
        default=None, description="A new signing deadline, if the subscription sets one"
    )


class LoanIn(Strict):
    bank: str = Field(min_length=1, max_length=64)
    amount_fen: int = _fen("按揭 amount applied for")


class LoanApprovalIn(Strict):
    amount_fen: int | None = Field(
        default=None, gt=0, le=MAX_FEN, description=f"Approved amount (default: as applied), {FEN}"
    )


class ReasonIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class ContractIn(Strict):
    contract_no: str = Field(min_length=1, max_length=64, description="签约 contract number")
    price_fen: int = _fen("Contract price")


class FilingIn(Strict):
    filing_no: str | None = Field(default=None, max_length=64, description="备案 number")


class PaymentIn(Strict):
    amount_fen: int = _fen("Money received (回款)")
    kind: PaymentKind = Field(
        description="loan_disbursement (放款) needs a signed contract and an approved loan"
    )


class CertificateIn(Strict):
    certificate_no: str | None = Field(default=None, max_length=64, description="产证 number")


class CancelIn(Strict):
    reason: str = Field(min_length=1, max_length=500)
    fault: CancellationFault = Field(
        description="buyer_missed_deadline: deposit forfeited (only once the signing deadline "
        "passed unsigned); no_fault: everything refunded; developer_fault: deposit refunded "
        "twice (定金双倍返还)"
    )


class SwapIn(Strict):
    unit_id: uuid.UUID = Field(description="The available unit to move to (换房)")
    reason: str = Field(min_length=1, max_length=500)


class RenameIn(Strict):
    buyer_name: str = Field(min_length=1, max_length=50, description="New buyer (更名), sealed")
    reason: str = Field(min_length=1, max_length=500)


class DealUnit(BaseModel):
    unit_id: str
    building: str
    number: str
    list_price_fen: int


class LedgerEntryOut(BaseModel):
    entry_id: str
    kind: LedgerKind
    payee_kind: PayeeKind
    payee_id: str
    role: str = Field(description="channel | first_receiver | accompanying | closing")
    milestone: str
    amount_fen: int
    reverses: str | None
    reversed_by: str | None
    reason: str
    at: AwareDatetime


class DealCommission(BaseModel):
    accrued_fen: int
    reversed_fen: int
    net_fen: int
    entries: list[LedgerEntryOut]


class DealOut(BaseModel):
    deal_id: str
    project_id: str
    client_id: str
    unit: DealUnit
    stage: DealStage
    status: DealStatus
    stage_since: AwareDatetime
    opened_at: AwareDatetime
    version: int
    attribution: dict[str, Any] = Field(
        description="consultant_id, partner_id, report_id, basis, policy_version: the client's "
        "attribution at opening, or as a later ruling moved it"
    )
    roles: dict[str, str] = Field(description="first_receiver, accompanying, closing consultants")
    commission_policy_version: int
    deposit_fen: int
    deposit_method: str | None
    signing_deadline: AwareDatetime | None
    signing_overdue: bool
    payment_plan: str | None
    subscription_price_fen: int | None
    contract_no: str | None
    contract_price_fen: int | None
    price_fen: int | None = Field(description="Contract price once signed, else subscription")
    received_fen: int
    outstanding_fen: int | None
    loan: dict[str, Any]
    filing_no: str | None
    certificate_no: str | None
    cancellation: dict[str, Any] | None = Field(
        description="reason, fault, previous_stage, refund_fen, forfeited_fen, refund_due_by"
    )
    swaps: list[dict[str, Any]]
    buyer_name_masked: str | None
    milestones: list[dict[str, Any]]
    commission: DealCommission


# ---------------------------------------------------------- commission policy


class PayoutStageIn(Strict):
    milestone: PayoutMilestone
    share_bp: int = Field(ge=0, le=10_000, description="Share of the commission, basis points")


def _default_split() -> dict[ConsultantRole, int]:
    return {"first_receiver": 5000, "accompanying": 3000, "closing": 2000}


def _default_stages() -> list[PayoutStageIn]:
    return [
        PayoutStageIn(milestone="threshold", share_bp=7000),
        PayoutStageIn(milestone="contract_and_loan", share_bp=2000),
        PayoutStageIn(milestone="delivery", share_bp=1000),
    ]


class CommissionPolicyIn(Strict):
    default_channel_rate_bp: int = Field(
        default=100,
        ge=0,
        le=10_000,
        description="Channel rebate (返佣) of the price, basis "
        "points (100 bp = 1%), for partners not listed",
    )
    channel_rates_bp: dict[str, int] = Field(
        default_factory=dict, max_length=1000, description="Per partner_id rebate in basis points"
    )
    consultant_rate_bp: int = Field(
        default=40, ge=0, le=10_000, description="Consultant commission of the price (40 bp = 4‰)"
    )
    consultant_split_bp: dict[ConsultantRole, int] = Field(
        default_factory=_default_split,
        description="Split of the consultant commission among roles; adds up to 10000",
    )
    earn_threshold_bp: int = Field(
        default=3000,
        ge=0,
        le=10_000,
        description="Nothing is earned before this share of the price is received (30%)",
    )
    payout_stages: list[PayoutStageIn] = Field(
        default_factory=_default_stages,
        min_length=1,
        max_length=6,
        description="Share per milestone once the threshold is met; adds up to 10000. "
        "threshold: at once; contract_and_loan: contract signed and, on a mortgage, the loan "
        "disbursed",
    )


class CommissionPolicyOut(BaseModel):
    project_id: str
    version: int = Field(description="0 means the defaults: the project never set one")
    effective_from: AwareDatetime | None
    default_channel_rate_bp: int
    channel_rates_bp: dict[str, int]
    consultant_rate_bp: int
    consultant_split_bp: dict[str, int]
    earn_threshold_bp: int
    payout_stages: list[dict[str, Any]]


# ------------------------------------------------------------------ what-if (ADR 0059)


class WhatIfPolicy(Strict):
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description='Policy settings to change, e.g. {"protection": "P15D"}; validated '
        "as PUT …/policy validates them. They apply on top of the version in force at each "
        "instant from `from` on.",
    )


class WhatIfIn(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: AwareDatetime = Field(alias="from", description="Start of the window (inclusive)")
    to: AwareDatetime = Field(description="End of the window (exclusive)")
    policy: WhatIfPolicy = Field(default_factory=WhatIfPolicy)


class JobProgress(BaseModel):
    done: int
    total: int


class JobOut(BaseModel):
    job_id: str
    kind: str
    project_id: str
    requested_by: str
    params: dict[str, Any]
    status: JobStatus
    progress: JobProgress
    created_at: AwareDatetime
    updated_at: AwareDatetime
    error: dict[str, Any] | None
    result: dict[str, Any] | None


class ViewPosition(BaseModel):
    view: str
    position: int = Field(description="Last notification id applied to the view")
    lag: int = Field(description="Events in the log not yet applied to the view")


class LoopState(BaseModel):
    """One worker loop of one process, from the shared ``yingke_loop_status`` table."""

    loop: str = Field(description="views, deadlines, notify, relay, consume-views, …")
    last_success: AwareDatetime | None = Field(description="When its last step succeeded")
    last_error: str | None = Field(
        description="The error of its last step, if that failed (admin, auditor, manager;"
        " others read `failed`)"
    )
    process: str | None = Field(
        default=None,
        description="Which process runs it: host:pid, a container's hostname (admin, auditor,"
        " manager; null for others)",
    )
    started_at: AwareDatetime | None = Field(default=None, description="Its first step")
    last_error_at: AwareDatetime | None = Field(default=None, description="Its last failure")
    runs: int = Field(default=0, description="Steps that succeeded since it started")
    errors: int = Field(default=0, description="Steps that failed since it started")
    interval_seconds: float | None = Field(default=None, description="Its pause when idle")
    updated_at: AwareDatetime | None = Field(
        default=None, description="When its process last wrote this row"
    )
    stale: bool = Field(
        default=False,
        description="Not updated for a few intervals: its process may have died",
    )


class ViewsStatus(BaseModel):
    head: int = Field(description="Highest notification id in the event log")
    views: list[ViewPosition]
    deadlines_fired: dict[str, int] = Field(
        description="Deadline commands that acted in the answering process, by kind"
    )
    loops: list[LoopState] = Field(
        description="Every worker loop of every process (API, serve's supervisor, workers)"
    )
