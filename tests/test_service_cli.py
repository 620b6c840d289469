"""The service's CLI verbs: keys, suggest, index rebuild (called as main([...])), and `demo` as
`make run` starts it: a real process that loads a world, builds the index, prints a key, serves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from data.store import Store
from service.cli import main


@pytest.fixture
def cached(monkeypatch: pytest.MonkeyPatch, embedding_cache_dir: Path) -> Path:
    """Point the CLI's embedder at the session's cache, as PARTNERMATCH_EMBEDDING_CACHE_DIR does."""
    monkeypatch.setenv("PARTNERMATCH_EMBEDDING_CACHE_DIR", str(embedding_cache_dir))
    monkeypatch.setenv("PARTNERMATCH_EMBEDDING_SHOW_PROGRESS", "false")
    return embedding_cache_dir


def test_keys_are_made_listed_and_revoked(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", store_url, "keys", "create", "--role", "portal", "--name", "portal prod"]) == 0
    created = capsys.readouterr()
    key = created.out.strip()
    assert key.startswith("pm_") and "shown only now" in created.err

    assert main(["--database-url", store_url, "keys", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["role"] == "portal" and listed["name"] == "portal prod" and key.startswith(listed["prefix"])
    assert key not in json.dumps(listed)

    assert main(["--database-url", store_url, "keys", "revoke", listed["id"]]) == 0
    assert "revoked portal key" in capsys.readouterr().out
    assert main(["--database-url", store_url, "keys", "revoke", listed["id"]]) == 2
    assert "already revoked" in capsys.readouterr().err
    assert main(["--database-url", store_url, "keys", "create", "--role", "school"]) == 2
    assert "school: a school key needs" in capsys.readouterr().err
    assert main(["--database-url", store_url, "keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_suggest_and_index_rebuild(
    tmp_path: Path, cached: Path, small_world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(f"sqlite:///{tmp_path / 'partnermatch.db'}") as store:
        store.upsert_schools(small_world.schools)
        store.upsert_partnerships(small_world.partnerships)
    school = next(s for s in small_world.schools if s.country == "TW" and s.active)

    assert main(["--data-dir", str(tmp_path), "suggest", school.id, "--k", "3"]) == 0
    out, err = capsys.readouterr()
    assert "index built" in err and f"Suggestions for {school.id}" in out
    assert len([line for line in out.splitlines() if line[:5].strip().rstrip(".").isdigit()]) == 3
    assert "       - " in out, "each suggestion comes with its reasons"

    assert main(["--data-dir", str(tmp_path), "suggest", school.id, "--json"]) == 0
    out, err = capsys.readouterr()
    assert "index loaded" in err and len(json.loads(out)["suggestions"]) == 10

    assert main(["--data-dir", str(tmp_path), "index", "rebuild"]) == 0
    assert "index rebuilt: 300 active schools" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path), "suggest", "nowhere"]) == 2
    assert "school 'nowhere' not found" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_loads_a_world_prints_a_key_and_serves(tmp_path: Path, cached: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "--data-dir",
        str(tmp_path),
        "demo",
        "--n",
        "60",
        "--port",
        str(port),
    ]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert demo.stdout is not None
        key = demo.stdout.readline().rsplit(" ", 1)[-1].strip()
        assert key.startswith("pm_"), key
        assert f"Serving on http://127.0.0.1:{port}" in demo.stdout.readline()
        deadline = time.monotonic() + 120
        while True:  # it answers at once, 503 with the indexing progress until the index is ready
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except httpx.TransportError:
                ready = None
            if ready is not None and ready.status_code == 200:
                break
            if ready is not None:
                assert ready.status_code == 503 and ready.json()["status"] in ("loading", "indexing"), ready.text
            assert time.monotonic() < deadline, "the demo server never got ready"
            time.sleep(0.2)
        assert ready.json()["status"] == "ready" and sum(ready.json()["indexed"].values()) == 60
        listed = httpx.get(f"http://127.0.0.1:{port}/v1/schools", headers={"X-API-Key": key}, timeout=30)
        assert listed.status_code == 200 and listed.json()["items"]
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0
