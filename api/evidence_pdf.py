"""The evidence bundle as a printable PDF (ADR 0057).

Chinese text is set in a CJK TrueType font from a Debian package (WenQuanYi Micro Hei,
``fonts-wqy-microhei``), embedded as a subset: the glyphs travel inside the PDF, so it
shows and prints the same on any reader. A reader relying on ReportLab's built-in CID
font STSong-Light instead (which names the font and its Adobe-GB1 collection, with no
glyphs) shows empty boxes wherever no Adobe-GB1 font is installed, e.g. poppler on a
server without poppler-data and a CJK font. STSong-Light remains the fallback when no
font file is found. Hashes, signatures and ids are set in Courier, each on a line of its
own, so that what a reader copies out of the PDF is exactly what ``yingke verify``
recomputes (and ``yingke verify --bundle`` reads back).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

BUILTIN_CJK = "STSong-Light"
# TrueType CJK fonts with Latin glyphs too (ReportLab embeds TrueType outlines only, so
# not Noto CJK's CFF), in order of preference; the Dockerfile and .ci/run install the first.
CJK_FONT_FILES: tuple[tuple[str, str], ...] = (
    ("WenQuanYiMicroHei", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    ("WenQuanYiZenHei", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
pdfmetrics.registerFont(UnicodeCIDFont(BUILTIN_CJK))
CJK = BUILTIN_CJK  # the styles' font until the first render picks the embedded one


def cjk_font(candidates: Sequence[tuple[str, str]] = CJK_FONT_FILES) -> str:
    """The first candidate font file that loads, registered; else the built-in CID font."""
    for name, path in candidates:
        if name in pdfmetrics.getRegisteredFontNames():
            return name
        if not Path(path).is_file():
            continue
        try:
            pdfmetrics.registerFont(TTFont(name, path, subfontIndex=0))
        except (TTFError, OSError):  # a damaged or foreign file: try the next
            continue
        return name
    return BUILTIN_CJK


@cache
def _font() -> str:
    """Chosen once per process: parsing a CJK font file takes about half a second."""
    return cjk_font()


_BODY = ParagraphStyle("body", fontName=CJK, fontSize=9, leading=13, wordWrap="CJK")
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=8, leading=11)
_TITLE = ParagraphStyle("title", parent=_BODY, fontSize=16, leading=22, spaceAfter=6)
_HEADING = ParagraphStyle(
    "heading", parent=_BODY, fontSize=12, leading=18, spaceBefore=10, spaceAfter=4
)
_MONO = ParagraphStyle("mono", fontName="Courier", fontSize=7, leading=9, leftIndent=12)
_MONO_SMALL = ParagraphStyle("mono_small", parent=_MONO, fontSize=5.8, leading=8)

_STATUS = {"owned": "已归属", "reported": "报备保护中", "pool": "公海池", "none": "无归属"}


def render(bundle: dict[str, Any]) -> bytes:
    font = _font()
    for style in (_BODY, _SMALL, _TITLE, _HEADING):
        style.fontName = font  # the same value every time: safe from any thread
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"赢客证据包 {bundle['client_id']}",
        author="赢客 Yingke",
    )
    story: list[Any] = []
    _head(story, bundle)
    _timeline(story, bundle)
    _decisions(story, bundle)
    _policies(story, bundle)
    _reports(story, bundle)
    _disputes(story, bundle)
    _chain(story, bundle)
    _verification(story, bundle)
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return out.getvalue()


def _p(story: list[Any], text: str, style: ParagraphStyle = _BODY) -> None:
    story.append(Paragraph(escape(text), style))


def _mono(story: list[Any], label: str, value: str | None, small: bool = False) -> None:
    story.append(
        Paragraph(f"{escape(label)} {escape(value or '-')}", _MONO_SMALL if small else _MONO)
    )


def _owner(owner: dict[str, Any]) -> str:
    status = _STATUS.get(owner.get("status") or "none", owner.get("status") or "")
    parts = [status]
    for key, label in (
        ("consultant_id", "置业顾问"),
        ("partner_id", "渠道"),
        ("report_id", "报备"),
        ("basis", "依据"),
        ("since", "自"),
        ("protected_until", "保护期至"),
    ):
        if owner.get(key):
            parts.append(f"{label} {owner[key]}")
    return "；".join(parts)


def _head(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, "赢客 证据包（客户判定存证）", _TITLE)
    _p(story, f"客户 client_id：{b['client_id']}　项目：{b['project_id']}")
    _p(story, f"手机号（脱敏）：{b['phone_masked']}　个人信息已删除：{b['personal_data_erased']}")
    _p(story, f"截至时刻 at：{b['at']}　生成时间：{b['generated_at']}　视图：{b.get('view')}")
    owner = b["owner_at"]
    _p(
        story,
        f"该时刻的归属：{_owner(owner['owner'])}（判定事件 v{owner['decided_by_version']}，"
        f"政策版本 {owner['policy_version']}）",
    )


def _timeline(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, f"一、时间线（共 {len(b['timeline'])} 条事件，个人信息已脱敏）", _HEADING)
    withheld = b.get("withheld_versions") or []
    if withheld:
        listed = ", ".join(f"v{v}" for v in withheld)
        _p(story, f"本视图按访问权限未列出的事件版本：{listed}")
    for e in b["timeline"]:
        actor = e.get("actor") or {}
        who = f"{actor.get('role', '')}:{actor.get('id', '')}" if actor else "-"
        _p(story, f"v{e['version']}　{e['occurred_at']}　{e['type']}　操作人 {who}")
        _p(story, f"请求 request_id：{e.get('request_id')}", _SMALL)
        _p(story, f"内容：{json.dumps(e['data'], ensure_ascii=False, sort_keys=True)}", _SMALL)
        link = e.get("chain")
        if link:
            _mono(story, "position", str(link["position"]))
            _mono(story, "hash", link["hash"])
            _mono(story, "prev", link["prev_hash"])
        story.append(Spacer(1, 3))


def _decisions(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, "二、每次判定后的归属与依据", _HEADING)
    for d in b["decisions"]:
        _p(
            story,
            f"v{d['version']}　{d['occurred_at']}　{d['type']}：{_owner(d['owner'])}"
            f"　适用政策版本 {d['policy_version']}",
        )


def _policies(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, "三、判定时生效的政策全文", _HEADING)
    for p in b["policies"]:
        since = p["since"] or "项目默认规则"
        _p(story, f"政策版本 {p['version']}（生效于 {since}）")
        for key, value in p["settings"].items():
            _p(story, f"　{key} = {json.dumps(value, ensure_ascii=False)}", _SMALL)


def _reports(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, "四、竞争的报备及各自结果", _HEADING)
    if not b["reports"]:
        _p(story, "无")
    for r in b["reports"]:
        mark = "胜出" if r["won"] else "未胜出"
        _p(
            story,
            f"报备 {r['report_id']}　渠道 {r['partner_id']}　经纪人 {r['agent_id']}　"
            f"报备时间 {r['filed_at']}　状态 {r['status']}（{mark}）",
        )
        _p(story, f"　原因：{r['explanation']}（{r['reason']}）　政策版本 {r['policy_version']}")


def _disputes(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, "五、争议与裁决", _HEADING)
    if not b["disputes"]:
        _p(story, "无")
    for d in b["disputes"]:
        _p(
            story,
            f"争议 {d['dispute_id']}　申请方 {d.get('claimant_kind')}:{d.get('claimant_id')}　"
            f"状态 {d['status']}　提出于 {d.get('opened_at')}",
        )
        if d.get("reason"):
            _p(story, f"　理由：{d['reason']}", _SMALL)
        for r in d.get("rulings") or []:
            reason = f"　理由：{r['reason']}" if r.get("reason") else ""
            final = "终局" if r.get("final") else "可申诉"
            _p(story, f"　裁决 {r.get('outcome')}（{final}）于 {r.get('ruled_at')}{reason}")


def _chain(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, "六、哈希链与签名检查点", _HEADING)
    chain = b["chain"]
    _p(
        story,
        f"事件流 {chain['stream']}：{chain['events']} 条事件，链头版本 v{chain['head_version']}",
    )
    _mono(story, "head_hash", chain["head_hash"])
    cp = b.get("checkpoint")
    if cp is None:
        _p(story, "该时刻之前没有事件，无需检查点。")
        return
    _p(story, f"覆盖以上全部事件的签名检查点（{cp['algorithm']}，签名于 {cp['signed_at']}）：")
    _mono(story, "checkpoint_position", str(cp["position"]))
    _mono(story, "checkpoint_log_hash", cp["log_hash"])
    _mono(story, "key_id", cp["key_id"])
    _mono(story, "signature", cp["signature"])
    _mono(story, "message", cp["message"], small=True)


def _verification(story: list[Any], b: dict[str, Any]) -> None:
    _p(story, "七、如何验证本证据包", _HEADING)
    for index, step in enumerate(b["verification"]["steps"], start=1):
        _p(story, f"{index}. {step}")
    _p(story, f"公钥：GET {b['verification']['keys']}　校验命令：{b['verification']['command']}")


def _footer(canvas: Any, doc: Any) -> None:
    canvas.saveState()
    canvas.setFont(_font(), 7)
    canvas.drawString(15 * mm, 8 * mm, f"赢客 Yingke 证据包 · 第 {doc.page} 页")
    canvas.restoreState()
