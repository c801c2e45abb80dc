"""Every closed list of words the service accepts or reports, written once.

Each vocabulary is a ``Literal`` type, which api/schemas.py uses so that OpenAPI shows
the same enum the domain checks, and a tuple of its values for the domain's own checks
and messages. Changing a word here changes both; stored events keep whatever they hold.
Words only the read side knows (the inbox's kinds, the dashboards' groupings and
periods) are Literals in their view's module, which the routers import the same way.
"""

from __future__ import annotations

from typing import Literal, get_args

# ------------------------------------------------------------------------ people

Role = Literal[
    "admin",
    "manager",
    "supervisor",
    "consultant",
    "finance",  # 财务: records payments (回款) and cancellations (退房) for granted projects
    "channel_agent",
    "auditor",
    "service",
]
ROLES: tuple[Role, ...] = get_args(Role)

# ------------------------------------------------------------------- project policy

JudgeRule = Literal["report_first", "visit_first"]  # 报备优先 / 到访优先
JUDGE_RULES: tuple[JudgeRule, ...] = get_args(JudgeRule)

MaskedReports = Literal["allowed", "forbidden"]  # 隐号报备 (前三后四)
MASKED_REPORTS: tuple[MaskedReports, ...] = get_args(MaskedReports)

OnExpiry = Literal["pool", "manager"]  # where expired or inactive buyers go
ON_EXPIRY: tuple[OnExpiry, ...] = get_args(OnExpiry)

# ------------------------------------------------------------- reports and visits

ReportStatus = Literal["accepted", "rejected", "confirmed", "closed", "expired"]
REPORT_STATUSES: tuple[ReportStatus, ...] = get_args(ReportStatus)

OwnerStatus = Literal["none", "reported", "owned", "pool"]
OWNER_STATUSES: tuple[OwnerStatus, ...] = get_args(OwnerStatus)

VisitOutcome = Literal["protected", "report", "walk_in"]
VISIT_OUTCOMES: tuple[VisitOutcome, ...] = get_args(VisitOutcome)

# What a per-principal allowance counts (domain.allowance): phone lookups per hour,
# full-contact disclosures per day.
AllowanceKind = Literal["lookup", "disclosure", "import"]
ALLOWANCE_KINDS: tuple[AllowanceKind, ...] = get_args(AllowanceKind)

# ------------------------------------------------------------------------ aftercare

Grade = Literal["A", "B", "C"]  # A/B/C 类客户
GRADES: tuple[Grade, ...] = get_args(Grade)

FollowUpMethod = Literal["call", "wechat", "sms", "visit", "other"]
FOLLOW_UP_METHODS: tuple[FollowUpMethod, ...] = get_args(FollowUpMethod)

LossReason = Literal[  # 战败原因
    "price",
    "location",
    "layout_area",
    "school_district",
    "bought_elsewhere",
    "loan_refused",
    "unreachable",
    "no_longer_buying",
    "other",
]
LOSS_REASONS: tuple[LossReason, ...] = get_args(LossReason)
# How people read them (notifications): the standard 战败原因 words.
LOSS_REASON_LABELS: dict[str, str] = {
    "price": "价格",
    "location": "位置",
    "layout_area": "户型面积",
    "school_district": "学区",
    "bought_elsewhere": "已购他处",
    "loan_refused": "贷款被拒",
    "unreachable": "无法联系",
    "no_longer_buying": "不再购房",
    "other": "其他",
}

ClaimantKind = Literal["consultant", "channel"]  # who may open a dispute (判定)
CLAIMANT_KINDS: tuple[ClaimantKind, ...] = get_args(ClaimantKind)

DisputeOutcome = Literal["upheld", "dismissed"]
DISPUTE_OUTCOMES: tuple[DisputeOutcome, ...] = get_args(DisputeOutcome)

# ------------------------------------------------------------------ notifications

# What a person is told (projections.notification_outbox, yingke.notify).
NotificationKind = Literal[
    "follow_up_due",  # 跟进即将到期
    "follow_up_overdue",  # 跟进已逾期
    "follow_up_escalated",  # 跟进逾期升级（主管介入）
    "protection_expiring",  # 保护期即将结束
    "approval_requested",  # 待审批（战败申请、捞客申请）
    "approval_decided",  # 审批结果
    "dispute_opened",  # 申诉待裁决
    "appeal_opened",  # 复议待裁决
    "dispute_ruled",  # 申诉裁决结果
    "dormant_buyer",  # 客户待激活
    "negotiation_escalated",  # 谈判停滞（经理介入）
]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = get_args(NotificationKind)

# A notification's delivery: waiting or being tried, delivered, given up after the last
# attempt, too old when first tried, no channel to reach anyone, or withdrawn.
NotificationStatus = Literal[
    "pending", "sending", "sent", "failed", "stale", "unroutable", "cancelled"
]
NOTIFICATION_STATUSES: tuple[NotificationStatus, ...] = get_args(NotificationStatus)

# The demand profile (客户画像): kept as the buyer's own words, checked only at the edge.
FloorPreference = Literal["low", "middle", "high", "any"]
Purpose = Literal["self_use", "investment", "both"]
Focus = Literal[
    "school",
    "transport",
    "commerce",
    "hospital",
    "park",
    "view",
    "quiet",
    "parking",
    "developer_brand",
    "property_management",
    "price",
]
FOCI: tuple[Focus, ...] = get_args(Focus)
FamilyStructure = Literal["single", "couple", "young_family", "three_generations", "other"]
AgeBand = Literal["under_25", "25_34", "35_44", "45_54", "55_plus"]

# ---------------------------------------------------------------------------- units

UnitStatus = Literal["available", "held", "subscribed", "signed", "sold"]
UNIT_STATUSES: tuple[UnitStatus, ...] = get_args(UnitStatus)

Orientation = Literal[
    "south",
    "north",
    "east",
    "west",
    "southeast",
    "southwest",
    "northeast",
    "northwest",
    "north_south",  # 南北通透
    "east_west",
]
ORIENTATIONS: tuple[Orientation, ...] = get_args(Orientation)

# ---------------------------------------------------------------------------- deals

DealStage = Literal[  # in order: 定金 → 认购 → 签约 → 备案 → 交房 → 产证, or 退房
    "opened",
    "deposit_paid",
    "subscribed",
    "contracted",
    "filed",
    "delivered",
    "certified",
    "cancelled",
]
DEAL_STAGES: tuple[DealStage, ...] = get_args(DealStage)

DealStatus = Literal["open", "completed", "cancelled"]
DEAL_STATUSES: tuple[DealStatus, ...] = get_args(DealStatus)

PaymentPlan = Literal["full", "mortgage", "instalments"]
PAYMENT_PLANS: tuple[PaymentPlan, ...] = get_args(PaymentPlan)

DepositMethod = Literal["cash", "bank_transfer", "card", "wechat_pay", "alipay", "other"]
DEPOSIT_METHODS: tuple[DepositMethod, ...] = get_args(DepositMethod)

PaymentKind = Literal["down_payment", "instalment", "loan_disbursement", "full_payment", "other"]
PAYMENT_KINDS: tuple[PaymentKind, ...] = get_args(PaymentKind)

CancellationFault = Literal["buyer_missed_deadline", "no_fault", "developer_fault"]
FAULTS: tuple[CancellationFault, ...] = get_args(CancellationFault)

# ----------------------------------------------------------------------- commission

ConsultantRole = Literal["first_receiver", "accompanying", "closing"]
CONSULTANT_ROLES: tuple[ConsultantRole, ...] = get_args(ConsultantRole)

PayoutMilestone = Literal[
    "threshold", "contract", "contract_and_loan", "filing", "delivery", "certificate"
]
MILESTONES: tuple[PayoutMilestone, ...] = get_args(PayoutMilestone)

LedgerKind = Literal["accrued", "reversed"]
LEDGER_KINDS: tuple[LedgerKind, ...] = get_args(LedgerKind)

PayeeKind = Literal["channel", "consultant"]
PAYEE_KINDS: tuple[PayeeKind, ...] = get_args(PayeeKind)

# Long runs (what-if replays, ADR 0059) as the jobs table records them.
JobStatus = Literal["queued", "running", "done", "failed"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
