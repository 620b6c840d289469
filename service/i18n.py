"""The staff page's labels in English and Traditional Chinese.

Names of countries, SDGs, languages, levels and modes come from data.taxonomies, and reasons carry
their own text_en/text_zh; this module holds only the page's own words. Every key has both
languages (tests/test_staff_page.py checks), so a page never shows half a translation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from data.taxonomies import (
    LEVEL_LABELS,
    MODE_LABELS,
    REMOTENESS_ZH,
    ExchangeMode,
    Level,
    Remoteness,
    country_name,
    country_name_zh,
    language_name,
    language_name_zh,
    sdg_name,
    sdg_name_zh,
)

Lang = Literal["en", "zh-TW"]
LANGS: tuple[Lang, ...] = ("en", "zh-TW")
DEFAULT_LANG: Lang = "en"

TEXT: dict[str, tuple[str, str]] = {
    # frame
    "title": ("partnermatch staff", "partnermatch 管理頁"),
    "nav_search": ("Schools", "學校"),
    "nav_rounds": ("Matching rounds", "配對輪次"),
    "nav_evaluation": ("Evaluation", "成效評估"),
    "logout": ("Sign out", "登出"),
    "switch_lang": ("中文", "English"),
    # login
    "login_title": ("Staff sign-in", "管理人員登入"),
    "login_key": ("Staff API key", "管理人員 API 金鑰"),
    "login_submit": ("Sign in", "登入"),
    "login_help": (
        "Keys are made with `partnermatch keys create --role staff`.",
        "金鑰以 `partnermatch keys create --role staff` 建立。",
    ),
    "login_unknown": ("Unknown or revoked key.", "金鑰無效或已撤銷。"),
    "login_not_staff": (
        "This is a {role} key; the staff page needs a staff key.",
        "此為 {role} 金鑰；管理頁需要管理人員（staff）金鑰。",
    ),
    # search
    "search_title": ("Find a school", "搜尋學校"),
    "search_q": ("Name or id", "校名或代碼"),
    "search_country": ("Country (code or name)", "國家（代碼或名稱）"),
    "search_submit": ("Search", "搜尋"),
    "search_none": ("No school matches.", "沒有符合的學校。"),
    "search_more": ("Showing the first {n}; narrow the search to see others.", "僅顯示前 {n} 筆；請縮小搜尋範圍。"),
    "search_found": ("{n} school(s) found", "找到 {n} 所學校"),
    # school fields
    "id": ("Id", "代碼"),
    "name": ("Name", "校名"),
    "country": ("Country", "國家"),
    "region": ("Region", "地區"),
    "levels": ("Levels", "學制"),
    "languages": ("Exchange languages", "交流語言"),
    "sdgs": ("SDG themes", "永續發展目標"),
    "targets": ("Wants partners in", "希望合作國家"),
    "modes": ("Exchange modes", "交流方式"),
    "capacity": ("Capacity", "合作名額"),
    "remoteness": ("Remoteness", "偏遠程度"),
    "students": ("Students", "學生數"),
    "contact": ("Contact", "聯絡方式"),
    "description": ("Description", "學校簡介"),
    "status": ("Status", "狀態"),
    "active": ("active", "啟用中"),
    "inactive": ("inactive", "未啟用"),
    # school page
    "profile": ("Profile", "學校資料"),
    "partners": ("Current partners", "目前的合作夥伴"),
    "no_partners": ("No partner yet.", "尚無合作夥伴。"),
    "since": ("since", "起始日"),
    "origin": ("Origin", "來源"),
    "origin_existing": ("recorded", "既有"),
    "origin_suggested": ("suggested", "系統建議"),
    "invitations": ("Pending invitations", "待回覆的邀請"),
    "no_invitations": ("No pending invitation.", "沒有待回覆的邀請。"),
    "sent_to": ("sent to", "已邀請"),
    "received_from": ("received from", "收到邀請，來自"),
    "expires": ("expires", "到期"),
    "accept": ("Accept", "接受"),
    "decline": ("Decline", "婉拒"),
    "decline_reason": ("Reason (optional)", "原因（選填）"),
    "suggestions": ("Suggested partners", "建議的合作學校"),
    "no_suggestions": ("No possible partner right now.", "目前沒有可配對的學校。"),
    "not_indexed": (
        "This school is not in the index (inactive?), so it has no suggestions.",
        "此校不在索引中（可能未啟用），因此沒有建議。",
    ),
    "score": ("Score", "分數"),
    "reciprocal": ("Reciprocal", "雙向分數"),
    "fit_forward": ("Fit for this school", "對本校的契合度"),
    "fit_backward": ("Fit for the partner", "對夥伴的契合度"),
    "breakdown": ("Breakdown", "分數組成"),
    "component": ("Component", "項目"),
    "forward": ("this school → partner", "本校 → 夥伴"),
    "backward": ("partner → this school", "夥伴 → 本校"),
    "factors": ("Network factors", "網絡調整係數"),
    "reasons": ("Why", "推薦理由"),
    "invite": ("Invite on the school's behalf", "代表本校發出邀請"),
    "invite_message": ("Message (optional)", "訊息（選填）"),
    "eliminated": ("Candidates removed by rule", "依規則排除的候選學校"),
    "hints": ("Hints", "建議"),
    "groups_link": ("Propose groups on theme", "依主題提出學校群組"),
    "invited": ("Invitation {id} sent.", "已送出邀請 {id}。"),
    "accepted": ("Invitation accepted: partnership {id} started.", "已接受邀請：合作關係 {id} 已建立。"),
    "declined": ("Invitation {id} declined.", "已婉拒邀請 {id}。"),
    # components of fit
    "c_target_country": ("target country", "目標國家"),
    "c_sdg": ("shared SDGs", "共同永續目標"),
    "c_language": ("language", "語言"),
    "c_mode": ("exchange mode", "交流方式"),
    "c_level": ("level", "學制"),
    "c_timezone": ("shared school hours", "上課時間重疊"),
    "c_embedding": ("profile similarity", "簡介相似度"),
    # groups
    "groups_title": ("Cross-border groups", "跨境學校群組"),
    "groups_sdg": ("SDG theme", "永續目標主題"),
    "groups_size": ("Group size", "群組人數"),
    "groups_any_size": ("3 to 5", "3 至 5 校"),
    "groups_submit": ("Propose", "提出建議"),
    "groups_none": ("No group satisfies every rule.", "沒有符合所有條件的群組。"),
    "groups_relaxed": (
        "No group of schools all interested in this theme exists; these ignore the theme.",
        "找不到全部對此主題有興趣的群組；以下群組未要求此主題。",
    ),
    "group": ("Group {n}", "群組 {n}"),
    "members": ("Members", "成員"),
    "interested": ("works on the theme", "關注此主題"),
    "found_via": ("found via", "來源"),
    "window": ("Shared school hours", "共同上課時段"),
    "total_score": ("Total score", "總分"),
    "mean_pair_score": ("Mean pair score", "平均配對分數"),
    "considered": (
        "{n} valid group(s) considered among {pool} candidates.",
        "在 {pool} 所候選學校中評估了 {n} 個有效群組。",
    ),
    # rounds
    "rounds_title": ("Matching rounds", "配對輪次"),
    "rounds_none": ("No round yet.", "尚無配對輪次。"),
    "round_new": ("Start a round", "開始新的配對輪次"),
    "cohort_all": ("Every active school with a free place", "所有仍有名額的啟用學校"),
    "cohort_ids": (
        "Only these school ids (one per line or comma-separated)",
        "僅限以下學校代碼（每行一個或以逗號分隔）",
    ),
    "opt_coverage": ("Give as many schools as possible a first partner", "讓最多學校先有第一個夥伴"),
    "opt_nsp": ("Favour New Southbound pairs", "優先新南向國家配對"),
    "opt_per_school": ("Candidates per school", "每校候選數"),
    "round_submit": ("Run the round", "執行配對"),
    "created": ("Created", "建立時間"),
    "cohort": ("Cohort", "參與學校"),
    "pairs": ("Pairs", "配對"),
    "unmatched": ("Unmatched", "未配對"),
    "blocking": ("Blocking pairs", "不穩定配對"),
    "proposed": ("proposed", "待確認"),
    "accepted_status": ("accepted", "已接受"),
    "round_title": ("Round {id}", "配對輪次 {id}"),
    "comparison": ("Compared with greedy (best pair first)", "與貪婪法（高分先配）比較"),
    "optimal": ("This round", "本輪"),
    "greedy": ("Greedy", "貪婪法"),
    "matched_schools": ("Schools matched", "配對成功學校數"),
    "worst_off": ("Worst-off score", "最低分數"),
    "bottom_decile": ("Bottom decile score", "最低十分位平均"),
    "uplift": ("Score uplift over greedy: {value} ({percent}%)", "相較貪婪法提升：{value}（{percent}%）"),
    "round_accept": ("Accept every pair: start the partnerships", "接受全部配對並建立合作關係"),
    "start_date": ("Start date (default today)", "起始日（預設今天）"),
    "round_accepted": ("Round accepted: {n} partnership(s) started.", "已接受本輪：建立 {n} 個合作關係。"),
    "round_started": ("Round {id} proposed {n} pair(s).", "配對輪次 {id} 提出 {n} 組配對。"),
    "why": ("Why", "原因"),
    "rows_cut": ("Showing the first {n} rows.", "僅顯示前 {n} 列。"),
    # evaluation
    "evaluation_title": ("Latest evaluation", "最新成效評估"),
    "evaluation_none": (
        "No evaluation report yet: run `partnermatch evaluate`.",
        "尚無評估報告：請執行 `partnermatch evaluate`。",
    ),
    "evaluation_folder": ("Report folder", "報告資料夾"),
    "plots": ("Plots", "圖表"),
    # errors
    "error": ("Could not do that", "無法完成"),
    "not_found": ("Not found: {what}", "找不到：{what}"),
}


def text(lang: Lang, key: str, **values: Any) -> str:
    """The label in `lang`, with {placeholders} filled; an unknown key shows as itself."""
    pair = TEXT.get(key)
    if pair is None:
        return key
    chosen = pair[1] if lang == "zh-TW" else pair[0]
    return chosen.format(**values) if values else chosen


def zh(lang: Lang) -> bool:
    return lang == "zh-TW"


def helpers(lang: Lang) -> dict[str, Callable[..., str]]:
    """Functions the templates call to show codes as names in the page's language."""
    chinese = zh(lang)

    def t(key: str, **values: Any) -> str:
        return text(lang, key, **values)

    def country(code: str) -> str:
        return f"{country_name_zh(code) if chinese else country_name(code)}"

    def sdg(goal: int) -> str:
        return f"{goal}. {sdg_name_zh(goal) if chinese else sdg_name(goal)}"

    def language(code: str) -> str:
        return language_name_zh(code) if chinese else language_name(code)

    def level(value: str) -> str:
        return LEVEL_LABELS[Level(value)][1 if chinese else 0]

    def mode(value: str) -> str:
        return MODE_LABELS[ExchangeMode(value)][1 if chinese else 0]

    def remoteness(value: str) -> str:
        return REMOTENESS_ZH[Remoteness(value)] if chinese else value.replace("_", " ")

    def said(item: Any) -> str:
        """A reason's (or any text_en/text_zh object's) text in the page's language."""
        field = "text_zh" if chinese else "text_en"
        return str(item[field] if isinstance(item, dict) else getattr(item, field))

    def component(name: str) -> str:
        return text(lang, f"c_{name}") if f"c_{name}" in TEXT else name

    return {
        "t": t,
        "country": country,
        "sdg": sdg,
        "language": language,
        "level": level,
        "mode": mode,
        "remoteness": remoteness,
        "said": said,
        "component": component,
    }
