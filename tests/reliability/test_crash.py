"""SIGKILL in the middle of sustained writes loses nothing that was acknowledged."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench.limits import LIMITS_OFF
from tests.conftest import StartService
from tests.support.load import PostLoad

ROUNDS = 5
UNLIMITED = LIMITS_OFF


def test_every_acknowledged_message_survives_sigkill(
    start_service: StartService, tmp_path: Path
) -> None:
    db_path = tmp_path / "crash.db"
    service = start_service(db_path=db_path, env=UNLIMITED)
    acknowledged = 0
    for round_number in range(ROUNDS):
        load = PostLoad(service.port, clients=8, prefix=f"r{round_number}").start()
        deadline = time.monotonic() + 10
        while load.acked_count < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        service.process.kill()  # SIGKILL: no shutdown code runs
        service.process.wait()
        load.stop()
        assert load.acked_count >= 200, "the load reached the service before the kill"
        assert load.non_200_responses() == {}
        acknowledged += load.acked_count

        service = start_service(db_path=db_path, env=UNLIMITED)
        status, _, history = service.request("GET", "/chat/history")
        assert status == 200
        stored = [item["user"] for item in history]
        position = {text: index for index, text in enumerate(stored)}
        for record in load.records:
            missing = [text for text in record.acked if text not in position]
            assert not missing, f"acknowledged but lost after SIGKILL: {missing[:5]}"
            order = [position[text] for text in record.acked]
            assert order == sorted(order), "a client's messages are stored in the order sent"
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    print(f"{ROUNDS} SIGKILLs survived, {acknowledged} acknowledged messages all present")
