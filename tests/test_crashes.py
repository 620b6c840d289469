"""Crashes and worker processes, with real server processes (`partnermatch serve`) killed by
SIGKILL at bad moments: nothing is lost or half written, and the next start is ready from the
saved index without a second rebuild. Also `serve --workers 2`: a write through one worker is
seen by the other."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from data.schema import InvitationStatus, PartnershipOrigin
from data.store import Store
from service.auth import Role, create_key

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    """`partnermatch serve` in its own process, on a free port."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path

    @classmethod
    def start(cls, url: str, data_dir: Path, cache_dir: Path, *extra: str) -> Server:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = data_dir / f"serve-{time.monotonic_ns()}.log"
        env = os.environ | {
            "PARTNERMATCH_EMBEDDING_CACHE_DIR": str(cache_dir),
            "PARTNERMATCH_EMBEDDING_SHOW_PROGRESS": "false",
            # No model in these processes: what is tested is saving, loading and following.
            "PARTNERMATCH_EMBEDDING_TEXT_ENCODER": "hashed",
            "PARTNERMATCH_CHANGE_POLL_SECONDS": "0.1",
        }
        command = [sys.executable, "-m", "service.cli", "--database-url", url, "--data-dir", str(data_dir)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*command, "serve", "--port", str(port), *extra], stdout=out, stderr=out, env=env, cwd=ROOT
            )
        server = cls(process, f"http://127.0.0.1:{port}", log)
        try:
            server.wait_until(lambda: server.ready() is not None, "the server never became ready")
        except BaseException:
            server.kill()
            raise
        return server

    def ready(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"{self.base}/readyz", timeout=5)
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def wait_until(self, check: Callable[[], bool], what: str, seconds: float = 600) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            assert self.process.poll() is None, f"the server exited: {self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"{what}: {self.output()[-3000:]}"
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL the server and every worker it started: no shutdown code runs."""
        children = _children(self.process.pid)
        self.process.send_signal(signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
    return [int(child) for child in found]


def restarted_from_the_saved_index(url: str, data_dir: Path, cache_dir: Path) -> dict[str, Any]:
    """Start the server again and check it is ready from the saved index, with no build; stop it
    and return what /readyz said."""
    again = Server.start(url, data_dir, cache_dir)
    try:
        ready = again.ready()
        assert ready is not None and ready["index_origin"] == "loaded"
        assert "building" not in again.output(), again.output()
        return ready
    finally:
        again.kill()


@pytest.fixture
def seeded(store_url: str, small_world: Any) -> Iterator[tuple[str, dict[str, str]]]:
    with Store(store_url) as store:
        store.upsert_schools(small_world.schools)
        store.upsert_partnerships(small_world.partnerships)
        headers = {"X-API-Key": create_key(store, Role.STAFF).key}
    yield store_url, headers


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # PostgreSQL: the workers test
def test_after_a_rebuild_a_killed_server_starts_from_the_saved_index(
    seeded: tuple[str, dict[str, str]], tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> None:
    url, _ = seeded
    first = Server.start(url, tmp_path, embedding_cache_dir)
    assert first.ready()["index_origin"] == "built"  # type: ignore[index]
    # A bulk change by someone else (another replica, the CLI): the follower rebuilds the index.
    with Store(url) as other:
        other.clear()
        other.upsert_schools(small_world.schools[:200])
        latest = other.latest_change_seq()
    first.wait_until(lambda: (first.ready() or {}).get("change_seq") == latest, "the change was never applied")
    assert first.ready()["index_origin"] == "built"  # type: ignore[index]
    first.kill()

    ready = restarted_from_the_saved_index(url, tmp_path, embedding_cache_dir)
    assert ready["change_seq"] == latest
    assert sum(ready["indexed"].values()) == sum(s.active for s in small_world.schools[:200])


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # PostgreSQL: the workers test
def test_a_kill_during_an_import_writes_all_of_the_file_or_nothing(
    seeded: tuple[str, dict[str, str]], tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> None:
    url, headers = seeded
    upload = tmp_path / "schools.jsonl"
    rows = [
        s.model_dump(mode="json", exclude={"created_at", "updated_at"}) | {"id": f"imported-{n:04d}"}
        for n, s in enumerate(small_world.schools * 3)
    ]
    upload.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows), encoding="utf-8")
    server = Server.start(url, tmp_path, embedding_cache_dir)

    def send() -> None:
        try:
            with upload.open("rb") as handle:
                httpx.post(f"{server.base}/v1/schools/import", files={"file": handle}, headers=headers, timeout=60)
        except httpx.TransportError:
            pass  # the server died under it: that is the test

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.3)  # the import is under way (parsing, validating, writing 900 rows)
    server.kill()
    sender.join(60)

    with Store(url) as store:
        imported = [s for s in store.iter_schools() if s.id.startswith("imported-")]
    assert len(imported) in (0, len(rows)), "all of the file or none of it"
    restarted_from_the_saved_index(url, tmp_path, embedding_cache_dir)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # PostgreSQL: the workers test
def test_a_kill_during_accepts_leaves_no_half_written_partnership(
    seeded: tuple[str, dict[str, str]], tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> None:
    url, headers = seeded
    server = Server.start(url, tmp_path, embedding_cache_dir)
    invitations = []
    client = httpx.Client(base_url=server.base, headers=headers, timeout=30)
    for school in (s for s in small_world.schools if s.country == "TW" and s.active):
        suggestions = client.get(f"/v1/schools/{school.id}/suggestions", params={"k": 1}).json()["suggestions"]
        if not suggestions:
            continue
        sent = client.post("/v1/invitations", json={"from_school": school.id, "to_school": suggestions[0]["school_id"]})
        if sent.status_code == 201:
            invitations.append(sent.json()["id"])
        if len(invitations) == 20:
            break
    client.close()
    assert len(invitations) == 20

    def accept(invitation_id: str) -> None:
        with contextlib.suppress(httpx.TransportError):
            httpx.post(f"{server.base}/v1/invitations/{invitation_id}/accept", headers=headers, timeout=60)

    accepting = [threading.Thread(target=accept, args=(i,)) for i in invitations]
    for thread in accepting:
        thread.start()
    time.sleep(0.2)  # some accepted, some not yet
    server.kill()
    for thread in accepting:
        thread.join(60)

    with Store(url) as store:
        answered = [store.get_invitation(i) for i in invitations]
        suggested = {p.id: p for p in store.list_partnerships() if p.origin == PartnershipOrigin.SUGGESTED}
    for invitation in answered:
        if invitation.status == InvitationStatus.ACCEPTED:
            assert invitation.partnership_id in suggested, f"{invitation.id}: accepted without its partnership"
        else:
            assert invitation.status == InvitationStatus.PENDING and invitation.partnership_id is None
    started = {i.partnership_id for i in answered if i.partnership_id}
    assert set(suggested) == started, "every partnership started by an accept belongs to an accepted invitation"

    restarted_from_the_saved_index(url, tmp_path, embedding_cache_dir)


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_two_workers_follow_each_others_writes(
    seeded: tuple[str, dict[str, str]], tmp_path: Path, embedding_cache_dir: Path, small_world: Any
) -> None:
    url, headers = seeded
    server = Server.start(url, tmp_path, embedding_cache_dir, "--workers", "2")
    try:
        source = next(s.id for s in small_world.schools if s.country == "TW" and s.active)
        served = []

        def suggested() -> list[str]:
            # A new connection each time: the kernel hands it to either worker.
            served.append(source)
            response = httpx.get(f"{server.base}/v1/schools/{source}/suggestions", headers=headers, timeout=30)
            assert response.status_code == 200, response.text
            return [s["school_id"] for s in response.json()["suggestions"]]

        server.wait_until(lambda: all(server.ready() for _ in range(40)), "both workers ready")
        top = suggested()[0]
        edited = httpx.patch(f"{server.base}/v1/schools/{top}", json={"active": False}, headers=headers, timeout=30)
        assert edited.status_code == 200
        server.wait_until(lambda: all(top not in suggested() for _ in range(20)), "every worker applied the edit")

        # Each worker counts the suggestions it served: two different processes answered.
        route = re.escape('route="/v1/schools/{school_id}/suggestions",status="200"')
        counts = set()
        for _ in range(20):
            metrics = httpx.get(f"{server.base}/metrics", timeout=30).text
            counts.add(float(re.search(route + r"\} (\S+)", metrics).group(1)))  # type: ignore[union-attr]
        assert sum(counts) == len(served) or 2 * max(counts) == len(served), (counts, len(served))
        assert max(counts) < len(served), "both workers served suggestions"
    finally:
        server.kill()
