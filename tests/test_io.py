"""Import and export: round trips, column mappings, the real directories, bad files."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from data.errors import ImportRejected
from data.io import (
    ColumnMapping,
    export_partnerships,
    export_schools,
    import_partnerships,
    import_schools,
    load_mapping,
)
from data.schema import Partnership, School
from data.store import Store

MakeSchool = Callable[..., School]
TW_HEADER = "moe_code,name_zh,county,district,kind,address,url,lon,lat,students,teachers,remoteness,school_year_roc"


def _varied_schools(make_school: MakeSchool) -> list[School]:
    return [
        make_school(
            id="tw-rt1",
            name_en=None,
            description='Line one, with commas; semicolons and "quotes"\nline two 第二行',
            latitude=25.0330123456789,
            longitude=121.5654,
            contact_email="teacher@example.edu.tw",
            address="[100]臺北市中正區",
            preferred_months=[3, 10],
            generated_fields=["description", "sdgs"],
            visit_group_size=12,
            ownership="private",
            student_count=321,
        ),
        make_school(id="tw-rt2", remoteness="very_remote", active=False, sdgs=[], exchange_modes=[]),
        make_school(
            id="my-rt1",
            country="MY",
            region="Selangor",
            languages_instruction=["zh", "ms"],
            languages_exchange=["zh", "en", "ms"],
            timezone="Asia/Kuching",
        ),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_schools_round_trip(store: Store, make_school: MakeSchool, tmp_path: Path, suffix: str) -> None:
    schools = _varied_schools(make_school)
    store.upsert_schools(schools)
    first = tmp_path / f"schools{suffix}"
    assert export_schools(store, first) == 3

    store.clear()
    report = import_schools(store, first)
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    assert store.get_schools(s.id for s in schools) == {s.id: s for s in schools}

    second = tmp_path / f"again{suffix}"
    export_schools(store, second)
    assert second.read_bytes() == first.read_bytes()
    again = import_schools(store, first)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_csv_lists_are_semicolon_separated(store: Store, make_school: MakeSchool, tmp_path: Path) -> None:
    store.create_school(make_school(id="tw-list", sdgs=[4, 13, 14], languages_exchange=["zh", "en"]))
    path = tmp_path / "schools.csv"
    export_schools(store, path)
    [row] = list(csv.DictReader(path.open(encoding="utf-8")))
    assert row["sdgs"] == "4;13;14"
    assert row["languages_exchange"] == "en;zh"
    assert row["name_en"].startswith("Test Primary School")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_partnerships_round_trip(store: Store, make_school: MakeSchool, tmp_path: Path, suffix: str) -> None:
    store.upsert_schools(
        [make_school(id="tw-q1"), make_school(id="my-q1", country="MY"), make_school(id="vn-q1", country="VN")]
    )
    stored = store.add_partnerships(
        [
            Partnership(
                school_a="tw-q1",
                school_b="my-q1",
                start_date=date(2023, 9, 1),
                end_date=date(2024, 6, 30),
                modes=["virtual", "visit"],
                sdgs=[4, 14],
                note="Ocean; reef project",
            ),
            Partnership(school_a="vn-q1", school_b="tw-q1", start_date=date(2024, 2, 1), origin="suggested"),
        ]
    )
    path = tmp_path / f"partnerships{suffix}"
    assert export_partnerships(store, path) == 2
    ids = [p.id for p in store.list_partnerships()]
    for pid in ids:
        assert store.get_partnership(pid) in stored

    report = import_partnerships(store, path)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    store.clear()
    store.upsert_schools(
        [make_school(id="tw-q1"), make_school(id="my-q1", country="MY"), make_school(id="vn-q1", country="VN")]
    )
    report = import_partnerships(store, path)
    assert report.created == 2
    assert sorted(store.list_partnerships(), key=lambda p: p.id) == sorted(stored, key=lambda p: p.id)


def test_bad_partnership_rows_are_named_by_file_line(store: Store, make_school: MakeSchool, tmp_path: Path) -> None:
    store.upsert_schools([make_school(id="tw-r1"), make_school(id="tw-r2"), make_school(id="my-r1", country="MY")])
    path = tmp_path / "p.csv"
    path.write_text(
        "school_a,school_b,start_date,modes\n"
        "tw-r1,my-r1,2024-01-01,virtual\n"
        "tw-r1,tw-r2,2024-01-01,\n"
        "tw-r1,nobody,2024-01-01,\n"
        "tw-r2,my-r1,not-a-date,teleport\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as caught:
        import_partnerships(store, path)
    found = {(e.line, e.field) for e in caught.value.errors}
    assert found == {(5, "start_date"), (5, "modes")}, "shape errors first"

    path.write_text("\n".join(path.read_text().splitlines()[:4]) + "\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_partnerships(store, path)
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, "school_b"), (4, "school_b")]
    assert len(store.list_partnerships()) == 0


# --------------------------------------------------------------------------- mappings


def _tw_file(path: Path, rows: list[str]) -> Path:
    path.write_text(TW_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


GOOD_TW_ROWS = [
    "011301,私立淡江高中附設國小,新北市,淡水區,附設國民小學,[251]新北市淡水區真理街26號,https://a.tw,121.43,25.17,500,25,,113",
    "014601,台北市立測試國小,台北市,大安區,國民小學,,,121.54,25.02,300,20,偏遠,113",
    "014602,國立臺東大學附小,臺東縣,臺東市,國民小學,,,121.14,22.75,600,40,極偏,113",
]


def test_tw_mapping_reads_the_ministry_layout(store: Store, tmp_path: Path) -> None:
    path = _tw_file(tmp_path / "tw.csv", GOOD_TW_ROWS)
    report = import_schools(store, path, mapping="tw_primary_schools")
    assert report.created == 3
    private, taipei, national = (store.get_school(i) for i in ("tw-011301", "tw-014601", "tw-014602"))
    assert (private.ownership, taipei.ownership, national.ownership) == ("private", "public", "national")
    assert (private.region, taipei.region, national.region) == ("TW-NWT", "TW-TPE", "TW-TTT")
    assert (private.remoteness, taipei.remoteness, national.remoteness) == ("ordinary", "remote", "extremely_remote")
    assert private.source == "moe-tw-113"
    assert private.languages_instruction == ["zh"] and private.languages_exchange == ["en", "zh"]
    assert private.levels == ["primary"] and private.target_countries == []
    assert (private.latitude, private.longitude, private.student_count) == (25.17, 121.43, 500)
    assert taipei.website is None and taipei.address is None


def test_a_file_with_bad_rows_writes_nothing_and_names_every_row(store: Store, tmp_path: Path) -> None:
    rows = [
        *GOOD_TW_ROWS,
        "014603,某國小,天龍國,大安區,國民小學,,,121.54,25.02,300,20,,113",
        "014604,某國小,臺北市,大安區,國民小學,,,121.54,25.02,three hundred,20,偏僻,113",
        ",無代碼國小,臺北市,大安區,國民小學,,,121.54,25.02,300,20,,113",
        "014605,缺緯度國小,臺北市,大安區,國民小學,,,121.54,,300,20,,113",
        "011301,重複國小,臺北市,大安區,國民小學,,,121.54,25.02,300,20,,113",
    ]
    path = _tw_file(tmp_path / "tw.csv", rows)
    with pytest.raises(ImportRejected) as caught:
        import_schools(store, path, mapping="tw_primary_schools")
    errors = {(e.line, e.field): e.reason for e in caught.value.errors}
    assert "unknown Taiwan county/city '天龍國'" in errors[(5, "region (column county)")]
    assert "'three hundred' is not an integer" in errors[(6, "student_count (column students)")]
    assert "'偏僻' is not one of" in errors[(6, "remoteness (column remoteness)")]
    assert errors[(7, "id (column moe_code)")] == "Field required"
    assert "give both or neither" in errors[(8, "latitude and longitude")]
    assert "already on line 2" in errors[(9, "id (column moe_code)")]
    assert {line for line, _ in errors} == {5, 6, 7, 8, 9}
    assert "line 5" in str(caught.value) and "nothing written" in str(caught.value)
    assert store.count_schools(active=None) == 0
    assert store.latest_change_seq() == 0


def test_line_numbers_count_multiline_cells(store: Store, make_school: MakeSchool, tmp_path: Path) -> None:
    store.upsert_schools([make_school(id="tw-m1", description="one\ntwo\nthree"), make_school(id="tw-m2")])
    path = tmp_path / "s.csv"
    export_schools(store, path)
    text = path.read_text(encoding="utf-8").replace(",TW-TPE,", ",TW-XXX,")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_schools(store, path)
    assert [e.line for e in caught.value.errors] == [2, 5]


def test_missing_columns_and_unknown_columns_are_reported_once(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "tw.csv"
    path.write_text("moe_code,name_zh\n011301,某國小\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_schools(store, path, mapping="tw_primary_schools")
    missing = {e.field for e in caught.value.errors}
    assert {"county", "lat", "remoteness", "school_year_roc"} <= missing
    assert all(e.line == 1 for e in caught.value.errors)

    path.write_text("id,name_en,country,levels,colour\nx-1,X,MY,primary,blue\n", encoding="utf-8")
    with pytest.raises(ImportRejected, match="colour: not a School field"):
        import_schools(store, path)


def test_a_file_in_another_encoding_is_refused_clearly(store: Store, tmp_path: Path) -> None:
    path = _tw_file(tmp_path / "big5.csv", [])
    path.write_bytes(path.read_bytes() + GOOD_TW_ROWS[1].encode("big5") + b"\n")
    with pytest.raises(ValueError, match=r"not utf-8-sig text .*encoding: big5"):
        import_schools(store, path, mapping="tw_primary_schools")
    big5 = load_mapping("tw_primary_schools").model_copy(update={"encoding": "big5"})
    assert import_schools(store, path, mapping=big5).created == 1
    assert store.get_school("tw-014601").region == "TW-TPE"


def test_jsonl_reports_broken_lines(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    good = {"id": "my-j1", "name_en": "J", "country": "MY", "levels": ["primary"]}
    path.write_text(json.dumps(good) + "\n{broken\n\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_schools(store, path)
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, "(line)"), (4, "(line)")]
    path.write_text(json.dumps(good) + "\n", encoding="utf-8")
    assert import_schools(store, path).created == 1


def test_mapping_files_are_checked(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields:\n  id: {column: a, template: 'x-{a}'}\n  colour: {value: red}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.yaml: .*exactly one of column, value, template") as caught:
        load_mapping(bad)
    assert "bad.yaml: fields.id" in str(caught.value)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("fields:\n  colour: {value: red}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="colour not School field"):
        load_mapping(unknown)
    with pytest.raises(FileNotFoundError, match="shipped mappings: my_sjkc_schools, tw_primary_schools"):
        load_mapping("nonexistent")
    with pytest.raises(ValueError, match="made for partnerships"):
        import_schools(store, tmp_path / "x.csv", ColumnMapping(target="partnerships", fields={"note": {"value": "n"}}))


def test_mapping_rules() -> None:
    mapping = ColumnMapping.model_validate(
        {
            "fields": {
                "name_en": {"column": "N", "case": "title", "replace": {"Sekolah Jenis Kebangsaan (Cina)": "SJK(C)"}},
                "id": {"template": "my-{A}-{B}"},
                "sdgs": {"column": "S", "type": "list", "separator": ","},
                "capacity": {"column": "C", "type": "int", "default": 2},
            },
            "defaults": {"levels": ["primary"]},
        }
    )
    record, failed = mapping.record(
        {"N": "SEKOLAH JENIS KEBANGSAAN (CINA) PANDAMARAN 'A'", "A": "x", "B": "", "S": "4, 13,", "C": ""}
    )
    assert failed == {}
    assert record == {
        "name_en": "SJK(C) Pandamaran 'A'",
        "id": "my-x-",
        "sdgs": ["4", "13"],
        "capacity": 2,
        "levels": ["primary"],
    }
    _, failed = mapping.record({"N": "n", "A": "x", "B": "y", "S": "", "C": "2.5"})
    assert failed == {"capacity": "'2.5' is not an integer"}


# --------------------------------------------------------------------------- the real directories


def test_real_directories_import_completely_and_idempotently(store: Store, real_data_dir: Path) -> None:
    tw = import_schools(store, real_data_dir / "tw_primary_schools.csv", mapping="tw_primary_schools")
    my = import_schools(store, real_data_dir / "my_sjkc_schools.csv", mapping="my_sjkc_schools")
    assert (tw.created, my.created) == (2668, 1304)
    seq = store.latest_change_seq()

    tw_again = import_schools(store, real_data_dir / "tw_primary_schools.csv", mapping="tw_primary_schools")
    my_again = import_schools(store, real_data_dir / "my_sjkc_schools.csv", mapping="my_sjkc_schools")
    assert (tw_again.unchanged, tw_again.created, tw_again.updated) == (2668, 0, 0)
    assert (my_again.unchanged, my_again.created, my_again.updated) == (1304, 0, 0)
    assert store.latest_change_seq() == seq

    stats = store.stats()
    assert stats["schools_by_country"] == {"TW": 2668, "MY": 1304}
    assert stats["schools_by_remoteness"] == {
        "ordinary": 1759 + 1304,
        "remote": 642,
        "very_remote": 159,
        "extremely_remote": 108,
    }
    assert store.count_schools(region="TW-TPE") == 154, "臺北市 in the file"
    assert store.count_schools(region="TW-KHH") == 247
    assert store.count_schools(region="MY-14") == 42, "WILAYAH PERSEKUTUAN KUALA LUMPUR"
    assert store.count_schools(country="MY", target_country="TW", language="ms") == 1304
    sjkc = store.get_school("my-ABC0050")
    assert (sjkc.name_en, sjkc.name_local, sjkc.source) == ("SJK(C) Pheng Lok", "亚逸君令平乐华小", "emis-my")
    assert (sjkc.latitude, sjkc.longitude) == (4.187181645, 101.14172)
    assert store.get_school("tw-011301").ownership == "private"


def test_malformed_lines_do_not_hide_the_other_rows_errors(store: Store, tmp_path: Path) -> None:
    csv_path = tmp_path / "s.csv"
    csv_path.write_text(
        "id,name_en,country,levels\nmy-a1,A,MY,primary,extra,values\nmy-a2,B,MY,\nmy-a3,C,MY,primary\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as caught:
        import_schools(store, csv_path)
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, "(line)"), (3, "levels")]
    jsonl_path = tmp_path / "s.jsonl"
    rows = [
        json.dumps({"id": "my-b1", "name_en": "A", "country": "MY"}),
        "{broken",
        json.dumps({"id": "my-b2", "name_en": "B", "country": "MY", "levels": ["primary"]}),
    ]
    jsonl_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        import_schools(store, jsonl_path)
    assert [(e.line, e.field) for e in caught.value.errors] == [(1, "levels"), (2, "(line)")]
    assert store.count_schools(active=None) == 0
