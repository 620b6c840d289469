"""The staff page's catalogs: every message the code and templates say has a Chinese translation,
Accept-Language is honoured, and CLDR supplies names and list punctuation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from service.i18n import LANGS, catalog_path, gettext, join, negotiate, timezone_name

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
