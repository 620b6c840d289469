"""The staff page's catalogs: every message the code and templates say has a Chinese translation,
Accept-Language is honoured, and CLDR supplies names and list punctuation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from service.i18n import LANGS, catalog_path, gettext, join, negotiate, timezone_name
from tests.test_api import Api, api  # noqa: F401 (the served app, as a fixture)

SERVICE = Path(__file__).resolve().parents[1] / "service"
KEYWORDS = {"_": None, "t": None, "N_": None, "gettext": (2,)}
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]


def extracted() -> set[str]:
    """Every msgid in service/ as pybabel extract finds it (see service/locale/babel.cfg)."""
    return {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(str(SERVICE), METHODS, keywords=KEYWORDS)
    }


def test_every_message_has_a_chinese_translation() -> None:
    found = extracted()
    assert len(found) > 100, "extraction found the page's messages"
    with catalog_path("zh-TW").open("rb") as po:
        catalog = read_po(po)
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(m for m in found if not translated.get(m))
    assert not missing, f"messages without a zh-TW translation (run pybabel update, then translate): {missing}"
    for message in found:
        assert gettext("zh-TW", message) != message or message == "中文", message


def test_placeholders_survive_translation() -> None:
    said = gettext("zh-TW", "%(first)s–%(last)s of %(total)s school(s)", first=1, last=50, total=89)
    assert "89" in said and "50" in said and "school" not in said


def test_accept_language() -> None:
    assert negotiate("zh-TW,zh;q=0.9,en;q=0.8") == "zh-TW"
    assert negotiate("en-US,en;q=0.9,zh-TW;q=0.8") == "en"
    assert negotiate("fr;q=1, zh-Hant;q=0.5") == "zh-TW"
    assert negotiate("fr") is None and negotiate(None) is None
    assert set(LANGS) == {"en", "zh-TW"}


def test_cldr_names_and_lists() -> None:
    assert timezone_name("zh-TW", "Asia/Taipei") == "台灣時間"
    assert timezone_name("en", "Asia/Taipei") == "Taiwan Time"
    assert join("zh-TW", ["英文", "中文", "馬來文"]) == "英文、中文和馬來文"
    assert join("en", ["English", "Malay"]) == "English and Malay"


def test_the_evaluation_in_one_sentence_in_both_languages() -> None:
    from service.routes.staff import evaluation_summary

    payload = {
        "generated_at": "2026-11-20T10:00:00+00:00",
        "settings": {"exposure_k": 10},
        "splits": {
            "time": {
                "metrics": {
                    "full": {"recall@10": 0.34, "gini@10": 0.31, "coverage@10": 0.82},
                    "random": {"recall@10": 0.08},
                }
            }
        },
    }
    english = evaluation_summary("en", payload)
    chinese = evaluation_summary("zh-TW", payload)
    assert english is not None and "34%" in english and "8%" in english and "82%" in english and "0.31" in english
    assert chinese is not None and "34%" in chinese and "前 10 個建議" in chinese and "the" not in chinese
    assert evaluation_summary("en", {"splits": {}}) is None


# --------------------------------------------------------------------------- API errors in the caller's language

ZH = {"Accept-Language": "zh-TW,zh;q=0.9,en;q=0.5"}
# Latin words an error may keep in Chinese: protocol and standard names, and the API's own words a
# caller sends back as they are (header names, JSON literals, field names and codes are set aside
# by the check itself).
KEPT_WORDS = {"API", "JSON", "UTF", "UUID", "ISO", "IANA", "Bearer", "Authorization", "http", "https", "true", "false"}
KEPT_WORDS |= {"TW", "MY", "en", "zh", "ms"}  # codes given as examples


def english_beyond_names(error: dict[str, Any], sent: str = "") -> list[str]:
    """Latin words in an error's detail and reasons once field names, quoted values, ids and codes
    (anything with a digit, _, - or .), the values sent and KEPT_WORDS are set aside."""
    fields = {e["field"] for e in error.get("errors") or []} | {error.get("field") or ""}
    texts = [error["detail"]] + [e["reason"] for e in error.get("errors") or []]
    found = set()
    for text in texts:
        text = re.sub(r"'[^']*'|\"[^\"]*\"|<[^>]*>", " ", text)
        for word in re.findall(r"[A-Za-z0-9_.\-:/]+", text):
            word = word.strip(".:-/")
            if not re.search(r"[A-Za-z]", word) or re.search(r"[\d_.\-/]", word) or word in KEPT_WORDS:
                continue
            if word in fields or word in sent or any(word in f.split(".") for f in fields):
                continue
            found.add(word)
    return sorted(found)


def test_every_api_error_reads_in_chinese(api: Api) -> None:  # noqa: F811
    foreign = next(s.id for s in api.state.store.iter_schools(active=True) if s.country != "TW")
    school = api.school(api.home)
    self_pair = {"school_a": api.home, "school_b": api.home, "start_date": "2026-03-02"}
    bad_school = {
        "id": "zh-errors-new",
        "name_en": "Errors School",
        "country": "Atlantis",
        "levels": ["kindergarten"],
        "languages_exchange": ["xx"],
        "sdgs": [18],
        "exchange_modes": ["virtual"],
        "timezone": "Mars/Base",
        "contact_email": "nobody",
        "latitude": 3.1,
    }
    cases: list[tuple[str | None, str, str, dict[str, Any]]] = [
        (None, "GET", f"/v1/schools/{api.home}", {}),
        ("bogus", "GET", f"/v1/schools/{api.home}", {}),
        ("portal", "GET", "/v1/stats", {}),
        ("school", "GET", f"/v1/schools/{api.other}", {}),
        ("staff", "GET", "/v1/schools/no-such-school", {}),
        ("staff", "GET", "/v1/invitations/inv-nope", {}),
        ("staff", "GET", f"/v1/schools/{api.home}/suggestions", {"params": {"k": 0}}),
        ("staff", "GET", f"/v1/schools/{api.home}/suggestions", {"params": {"k": "many", "mode": "teleport"}}),
        ("staff", "GET", "/v1/schools", {"params": {"cursor": "not-a-cursor"}}),
        ("staff", "POST", "/v1/schools", {"json": {}}),
        ("staff", "POST", "/v1/schools", {"json": bad_school}),
        ("staff", "POST", "/v1/schools", {"json": {**bad_school, "country": "MY", "languages_exchange": ["en"]}}),
        ("staff", "POST", "/v1/schools", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("staff", "POST", "/v1/schools", {"content": b"x" * (70 * 1024)}),
        ("staff", "POST", "/v1/invitations", {"json": {"from_school": api.home, "to_school": api.home}}),
        ("staff", "POST", "/v1/invitations", {"json": {"from_school": api.home, "to_school": api.other}}),
        ("staff", "POST", "/v1/partnerships", {"json": self_pair}),
        ("staff", "PATCH", f"/v1/schools/{api.home}", {"json": {"capacity": 5}, "headers": {"If-Match": '"v0"'}}),
        ("staff", "PATCH", f"/v1/schools/{api.home}", {"json": {"id": "renamed", "sdgs": [0]}}),
        ("staff", "POST", "/v1/rounds", {"json": {"cohort": ["tw-ghost", foreign]}}),
        ("staff", "DELETE", "/v1/schools", {}),
        ("staff", "GET", "/nowhere", {}),
    ]
    english_left = []
    for who, method, path, options in cases:
        options = dict(options)
        headers = ZH | options.pop("headers", {})
        english = api.call(who, method, path, headers=headers | {"Accept-Language": "en"}, **options)
        chinese = api.call(who, method, path, headers=headers, **options)
        case = f"{who} {method} {path}"
        assert english.status_code == chinese.status_code >= 400, (case, chinese.text)
        assert chinese.headers["Content-Language"] == "zh-Hant-TW", case
        body = chinese.json()
        assert re.search(r"[\u4e00-\u9fff]", body["detail"]), (case, body)
        assert body["field"] == english.json()["field"], case
        sent = json.dumps(options.get("json") or {}) + json.dumps(options.get("params") or {}) + path + school.id
        if words := english_beyond_names(body, sent):
            english_left.append((case, words, body["detail"]))
        assert english.json()["detail"] != body["detail"], case
    assert not english_left, "\n".join(map(str, english_left))


def test_errors_said_only_by_jobs_and_limits_read_in_chinese() -> None:
    """Errors the served test above cannot provoke cheaply: stale round pairs, rate limits, a round
    its server stopped."""
    from service.errors import error_text

    messages = [
        "pairs: 2 pair(s) no longer possible: a1–b1 (a1 has 0 free place(s) for 1 pair(s), same_country); "
        "c1–d1 (at_capacity); and 3 more",
        "X-API-Key: too many failed sign-ins from this address (20 per 1 minute); retry in 31 s",
        "too many round requests from this key (60 per 1 minute); retry in 3 s",
        "interrupted: the server stopped before the round was done; start it again",
        "index: could not be loaded or built: the round's process ended with exit code 9",
    ]
    for message in messages:
        said = error_text("zh-TW", message)
        field = said.split("：", 1)[0] if "：" in said else ""
        assert english_beyond_names({"detail": said, "field": field}) == [], said
        assert error_text("en", message) == message
