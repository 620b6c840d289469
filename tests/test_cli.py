"""The partnermatch command, called as main([...]) against each backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from data.schema import School
from data.store import Store
from service.cli import main

MakeSchool = Callable[..., School]


def _stats(url: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["--database-url", url, "stats", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_import_export_and_stats(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "my.csv"
    source.write_text(
        "NEGERI,PPD,KODSEKOLAH,NAMASEKOLAH,NAMASEKOLAH_C,ALAMATSURAT,POSKODSURAT,BANDARSURAT,ENROLMEN,"
        "KOORDINATXX,KOORDINATYY\n"
        "PERAK,PPD KINTA,ABC1,SEKOLAH JENIS KEBANGSAAN (CINA) AAA,甲华小,JALAN 1,30000,IPOH,300,101.1,4.6\n"
        "JOHOR,PPD MUAR,JBC2,SEKOLAH JENIS KEBANGSAAN (CINA) BBB,乙华小,JALAN 2,84000,MUAR,120,102.6,2.0\n",
        encoding="utf-8",
    )
    assert main(["import", "schools", str(source), "--mapping", "my_sjkc_schools", "--database-url", store_url]) == 0
    assert "2 created" in capsys.readouterr().out

    stats = _stats(store_url, capsys)
    assert stats["schools_by_country"] == {"MY": 2}
    assert main(["--database-url", store_url, "stats"]) == 0
    table = capsys.readouterr().out
    assert "MY Malaysia" in table and "Schools: 2 (2 active)" in table

    for name in ("out.csv", "out.jsonl"):
        exported = tmp_path / name
        assert main(["--database-url", store_url, "export", "schools", str(exported)]) == 0
        assert f"wrote 2 schools to {exported}" in capsys.readouterr().out
        assert main(["--database-url", store_url, "import", "schools", str(exported)]) == 0
        assert "0 created, 0 updated, 2 unchanged" in capsys.readouterr().out


def test_partnerships_through_the_cli(
    store: Store, store_url: str, make_school: MakeSchool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.upsert_schools([make_school(id="tw-c1"), make_school(id="my-c1", country="MY")])
    path = tmp_path / "p.csv"
    path.write_text("school_a,school_b,start_date,modes\ntw-c1,my-c1,2024-09-01,virtual;visit\n", encoding="utf-8")
    assert main(["--database-url", store_url, "import", "partnerships", str(path)]) == 0
    [stored] = store.list_partnerships()
    assert stored.modes == ["virtual", "visit"]
    assert _stats(store_url, capsys)["active_partnerships_by_country_pair"] == {"MY-TW": 1}
    out = tmp_path / "p.jsonl"
    assert main(["--database-url", store_url, "export", "partnerships", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["id"] == stored.id


def test_user_errors_exit_2_with_a_message_and_no_traceback(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name_en,country,levels\nmy-1,One,MY,primary\nmy-2,Two,Atlantis,primary\n", encoding="utf-8")
    assert main(["--database-url", store_url, "import", "schools", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 3: country: unknown country 'Atlantis'" in err
    assert "Traceback" not in err
    assert _stats(store_url, capsys)["schools"] == 0

    assert main(["--database-url", store_url, "import", "schools", str(tmp_path / "missing.csv")]) == 2
    assert "no file" in capsys.readouterr().err
    assert main(["--database-url", store_url, "import", "schools", str(bad), "--mapping", "nope"]) == 2
    assert "shipped mappings" in capsys.readouterr().err
    assert main(["--database-url", store_url, "export", "schools", str(tmp_path / "x.txt")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_unreachable_database_and_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", "postgresql://nobody@127.0.0.1:1/none", "stats"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("partnermatch: database error:") and "Traceback" not in err
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main([]) == 2
    assert "usage: partnermatch" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_data_dir_is_where_the_sqlite_file_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PARTNERMATCH_DATABASE_URL", raising=False)
    data_dir = tmp_path / "var"
    assert main(["stats", "--data-dir", str(data_dir)]) == 0
    assert (data_dir / "partnermatch.db").is_file()
    assert "Schools: 0 (0 active)" in capsys.readouterr().out


def test_generate_writes_the_world(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    generator = pytest.importorskip("data.generator", reason="data/generator.py is not there yet")
    world = generator.generate_world(n_schools=40, seed=3)
    assert main(["--database-url", store_url, "generate", "--n", "40", "--seed", "3"]) == 0
    stats = _stats(store_url, capsys)
    assert stats["schools"] == len(world.schools)
    assert stats["partnerships"] == len(world.partnerships)

    assert main(["--database-url", store_url, "generate", "--n", "40", "--seed", "3"]) == 0
    assert f"{len(world.schools)} unchanged" in capsys.readouterr().out
    assert main(["--database-url", store_url, "generate", "--n", "20", "--seed", "4", "--replace"]) == 0
    assert _stats(store_url, capsys)["schools"] == len(generator.generate_world(n_schools=20, seed=4).schools)
    assert main(["generate", "--n", "0"]) == 2
