"""Name search across scripts and romanisation (data.search) on both backends, the search key
migration, and exports for people: CSV with a BOM, XLSX that opens with Chinese intact."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from openpyxl import load_workbook

from data.io import CSV_ENCODING, export_schools, import_schools, table_bytes
from data.schema import School
from data.search import fold, query_key, to_traditional
from data.store import Store

MakeSchool = Callable[..., School]


def test_folding_merges_scripts_and_tai() -> None:
    assert fold("台東") == fold("臺東") == fold("台东") == fold("臺東 ")
    assert fold("SJK(C) Pheng Lok") == fold("sjkc phenglok")
    assert query_key("  ") == ""
    assert to_traditional("亚逸君令平乐华小") == "亞逸君令平樂華小"


def test_search_by_script_pinyin_english_region_and_malay(store: Store, make_school: MakeSchool) -> None:
    store.upsert_schools(
        [
            make_school(id="tw-ttt", name_local="臺東縣立豐里國民小學", name_en=None, region="TW-TTT"),
            make_school(id="tw-tpe", name_local="臺北市立大安國民小學", name_en=None, region="TW-TPE"),
            make_school(
                id="my-pl",
                country="MY",
                region="MY-08",
                name_local="亚逸君令平乐华小",
                name_en="SJK(C) Pheng Lok",
                languages_instruction=["zh", "ms"],
                languages_exchange=["zh", "en", "ms"],
                timezone="Asia/Kuala_Lumpur",
            ),
        ]
    )

    def ids(q: str) -> list[str]:
        found = [s.id for s in store.list_schools(q=q)]
        assert store.count_schools(q=q) == len(found)
        return found

    for q in ("台東", "臺東", "台东", "Taitung", "taitung county", "taidong", "豐里", "丰里", "fengli"):
        assert ids(q) == ["tw-ttt"], q
    assert ids("台北") == ids("Taipei") == ["tw-tpe"]
    assert ids("平樂") == ids("平乐") == ids("pheng lok") == ids("SJK(C)") == ["my-pl"]
    assert ids("Perak") == ["my-pl"]
    assert ids("國民小學") == ["tw-tpe", "tw-ttt"]
    assert ids("Tainan") == []
    store.update_school("tw-ttt", {"region": "TW-HUA"})
    assert ids("Taitung") == [] and ids("Hualien") == ["tw-ttt"], "the key follows an update"


def test_csv_export_has_a_bom_and_reads_back(store: Store, make_school: MakeSchool, tmp_path: Path) -> None:
    store.create_school(make_school(id="tw-bom", name_local="臺東縣立豐里國民小學"))
    path = tmp_path / "schools.csv"
    assert export_schools(store, path) == 1
    raw = path.read_bytes()
    assert raw.startswith("\ufeff".encode()) and "臺東縣立豐里國民小學".encode() in raw
    assert raw.decode(CSV_ENCODING).startswith("id,")
    store.clear()
    assert import_schools(store, path).created == 1


def test_xlsx_export_keeps_chinese_and_numbers(store: Store, make_school: MakeSchool, tmp_path: Path) -> None:
    store.create_school(make_school(id="tw-xl", name_local="臺北市立大安國民小學", capacity=4, sdgs=[4, 13]))
    path = tmp_path / "schools.xlsx"
    assert export_schools(store, path) == 1
    sheet = load_workbook(path, read_only=True).active
    header, row = list(sheet.iter_rows(values_only=True))
    values = dict(zip(header, row, strict=True))
    assert values["name_local"] == "臺北市立大安國民小學" and values["capacity"] == 4 and values["sdgs"] == "4;13"
    book = load_workbook(io.BytesIO(table_bytes("xlsx", ["a", "b"], [{"a": "中文", "b": 1.5}])))
    assert list(book.active.iter_rows(values_only=True)) == [("a", "b"), ("中文", 1.5)]
