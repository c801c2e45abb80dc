"""Write rows out as CSV or xlsx, a chunk at a time, so memory stays flat as rows grow.

CSV starts with a UTF-8 BOM because Excel on Chinese Windows otherwise opens UTF-8 as
GBK mojibake. xlsx is written by openpyxl in write-only mode (ADR 0039): rows go to a
temporary file as they come, and the finished workbook is streamed from that file.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from yingke.sheets.reading import CSV, XLSX
from yingke.sheets.values import CHINA

FORMATS = {"csv": CSV, "xlsx": XLSX}
CHUNK = 64 * 1024

# Chinese column names for ?headers=zh, the words staff use; a column not listed keeps
# its English name, so every view exports even before its terms are added here.
ZH_HEADERS = {
    "client_id": "客户ID",
    "project_id": "项目",
    "phone_masked": "手机(脱敏)",
    "status": "状态",
    "consultant_id": "置业顾问",
    "consultant_name": "顾问姓名",
    "display_name": "姓名",
    "released_at": "释放时间",
    "days_in_pool": "在池天数",
    "tags": "画像标签",
    "partner_id": "渠道公司",
    "agent_id": "经纪人",
    "report_id": "报备ID",
    "basis": "判客依据",
    "owner_epoch": "归属批次",
    "owned_since": "归属开始",
    "protected_until": "保护期至",
    "grade": "意向等级",
    "last_follow_up_at": "最近跟进",
    "last_effective_follow_up_at": "最近有效跟进",
    "next_follow_up_due": "下次跟进",
    "follow_up_basis": "跟进依据",
    "inactive_after": "无跟进释放时间",
    "reports": "报备数",
    "visits": "到访数",
    "last_visit_at": "最近到访",
    "follow_ups": "跟进数",
    "effective_follow_ups": "有效跟进数",
    "release_reason": "释放原因",
    "registered_at": "登记时间",
    "filed_at": "报备时间",
    "valid_until": "有效期至",
    "reason": "原因",
    "due_at": "应跟进时间",
    "escalated": "已升级",
    "day": "日期",
    "month": "月份",
    "team_id": "团队",
    "reported": "报备",
    "visited": "到访",
    "subscribed": "认购",
    "signed": "签约",
    "lost": "战败",
    "losses": "战败数",
    "deal_id": "成交ID",
    "unit_id": "房源ID",
    "building": "楼栋",
    "number": "房号",
    "rooms": "户型(室)",
    "area": "建筑面积(㎡)",
    "floor": "楼层",
    "orientation": "朝向",
    "list_price_fen": "总价(分)",
    "price_fen": "成交价(分)",
    "received_fen": "已回款(分)",
    "stage": "阶段",
    "stage_since": "进入阶段时间",
    "signing_deadline": "签约截止",
    "signing_overdue": "签约逾期",
    "age_in_stage_days": "阶段天数",
    "opened_at": "开单时间",
    "payee_kind": "收款方类型",
    "payee_id": "收款方",
    "accrued_fen": "已计提(分)",
    "reversed_fen": "已冲回(分)",
    "payable_fen": "应付(分)",
    "expected_fen": "应收(分)",
    "deals": "成交数",
    "value_fen": "金额(分)",
    "ending_within_3_days": "3天内到期",
    "ending_within_7_days": "7天内到期",
    "first_ending_at": "最早到期",
    "dormant": "待激活",
    "kind": "任务类型",
    "assignee_role": "处理角色",
    "raised_at": "触发时间",
    "since": "起算时间",
    "closed_at": "完成时间",
    "closed_by": "完成事件",
    "policy_version": "规则版本",
    "loss_state": "战败状态",
    "lost_reason": "战败原因",
    "claim_pending": "捞客待审批",
    "open_disputes": "未结申诉",
    "personal_data_erased": "个人信息已删除",
    "updated_at": "更新时间",
    "version": "版本",
    "stream_id": "记录ID",
    "masked": "隐号报备",
    "filed_day": "报备日期",
    "expected_visit_at": "预计到访时间",
    "decided_at": "判定时间",
    "subject_id": "对象ID",
    "deposit_fen": "定金(分)",
    "contract_price_fen": "合同价(分)",
    "payment_plan": "付款方式",
    "loan_status": "贷款状态",
    "cancel_fault": "退房责任方",
    "refund_fen": "退款(分)",
    "forfeited_fen": "罚没(分)",
    "commission_accrued_fen": "佣金已计提(分)",
    "commission_reversed_fen": "佣金已冲回(分)",
    "clients_held": "持有客户数",
    "new_clients": "新增客户数",
    "claims": "捞客数",
    "released": "释放数",
    "entry_id": "分录ID",
    "role": "角色",
    "milestone": "节点",
    "amount_fen": "金额(分)",
    "reverses": "冲回分录",
    "at": "时间",
    "position": "日志位置",
    "listed_at": "上架时间",
    "oldest_in_stage_days": "最久阶段天数",
    "id": "员工ID",
    "principal_id": "员工ID",
    "project_ids": "项目",
    "wecom_user_id": "企业微信ID",
    "notify_webhook": "通知地址",
    "revoked": "已停用",
    "created_at": "创建时间",
}


def header_names(columns: Sequence[str], zh: bool) -> list[str]:
    return [ZH_HEADERS.get(c, c) for c in columns] if zh else list(columns)


# Text that Excel would take for a formula (CSV injection): = + - @, and the tab and
# carriage return that Excel strips before looking. Names, notes and reasons are typed
# by people (a consultant's display name reaches every manager's export).
_FORMULA_SIGNS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_SIGNS):
        return "'" + value  # Excel's own mark for "text, not a formula"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return repr(value)
    return value


def xlsx_cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    """A value for a write-only sheet; text starting with '=' stays text (openpyxl would
    write it as a formula for Excel to run)."""
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(sheet, value)
        cell.data_type = "s"
        return cell
    return _xlsx_value(value)


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # Excel has no time zones: write the China wall-clock time staff expect.
        return value.astimezone(CHINA).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict | list):
        return repr(value)
    return value


def csv_chunks(columns: Sequence[str], rows: Iterable[dict[str, Any]], zh: bool) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header_names(columns, zh))
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def write_xlsx(
    target: BinaryIO, columns: Sequence[str], rows: Iterable[dict[str, Any]], zh: bool, title: str
) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31] or "export")
    sheet.append(header_names(columns, zh))
    for row in rows:
        sheet.append([xlsx_cell(sheet, row.get(c)) for c in columns])
    book.save(target)


def xlsx_chunks(
    columns: Sequence[str], rows: Iterable[dict[str, Any]], zh: bool, title: str
) -> Iterator[bytes]:
    with tempfile.TemporaryFile() as spool:
        write_xlsx(spool, columns, rows, zh, title)
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk


def chunks(
    fmt: str, columns: Sequence[str], rows: Iterable[dict[str, Any]], zh: bool, title: str
) -> Iterator[bytes]:
    if fmt == "xlsx":
        return xlsx_chunks(columns, rows, zh, title)
    return csv_chunks(columns, rows, zh)
