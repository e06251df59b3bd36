"""Several real chat-service processes on one real PostgreSQL: one history, nothing lost.

Each replica is the real service process on its own port; the load comes from threads
posting to all of them at once. What was acknowledged (a 200) must be in the history, in
the order each client sent it, whichever replica answered and whatever was killed.
"""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.limits import LIMITS_OFF
from chat_service.store.postgres_migrations import SCHEMA_VERSION
from tests.conftest import StartService
from tests.support.load import PostLoad
from tests.support.postgres import PostgresServer
from tests.support.service import ServiceProcess, command, free_port, service_env
from tests.support.sse import Event, get_stream

UNLIMITED = LIMITS_OFF
ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdef"


def replicas(start_service: StartService, url: str, count: int) -> list[ServiceProcess]:
    env = {**UNLIMITED, "CHAT_DATABASE_URL": url}
    return [start_service(env=env) for _ in range(count)]


def history_of(service: ServiceProcess, conversation: str = "default") -> list[dict[str, str]]:
    status, _, body = service.request("GET", f"/chat/history?conversation_id={conversation}")
    assert status == 200, body
    return list(body)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def has_at_least(items: list[tuple[Event, float]], count: int) -> bool:
    return len(items) >= count


def assert_all_acknowledged_in_order(load: PostLoad, stored: list[str]) -> None:
    position = {text: index for index, text in enumerate(stored)}
    assert len(position) == len(stored), "no message stored twice"
    for record in load.records:
        missing = [text for text in record.acked if text not in position]
        assert not missing, f"acknowledged but lost: {missing[:5]}"
        order = [position[text] for text in record.acked]
        assert order == sorted(order), "a client's messages are stored in the order sent"


def test_replicas_serve_one_history(start_service: StartService, postgres_url: str) -> None:
    services = replicas(start_service, postgres_url, 3)
    load = PostLoad([s.port for s in services], clients=9, prefix="spread").start()
    wait_for(lambda: load.acked_count >= 300, 30, "the load got through")
    load.stop()
    assert load.non_200_responses() == {}
    histories = [history_of(s) for s in services]
    assert histories[0] == histories[1] == histories[2], "every replica shows the same history"
    assert_all_acknowledged_in_order(load, [item["user"] for item in histories[0]])
    assert len(histories[0]) == load.acked_count


def test_a_write_on_one_replica_is_read_on_the_next(
    start_service: StartService, postgres_url: str
) -> None:
    first, second = replicas(start_service, postgres_url, 2)
    for i in range(20):
        writer, reader = (first, second) if i % 2 == 0 else (second, first)
        status, _, _ = writer.request(
            "POST", "/chat/message", {"message": f"m{i}", "conversation_id": "ryw"}
        )
        assert status == 200
        # Read at once, on the other replica: the acknowledged exchange is there.
        newest = reader.request("GET", "/chat/history?conversation_id=ryw&limit=1")[2]
        assert [(item["user"], item["turn"]) for item in newest] == [(f"m{i}", i + 1)]
        # ... and the reply's context held every earlier turn: the dummy counts them.
        assert f"This is turn {i + 1} of our conversation." in newest[0]["AI"]


def test_killing_a_replica_under_load_loses_nothing_acknowledged(
    start_service: StartService, postgres_url: str
) -> None:
    doomed, survivor = replicas(start_service, postgres_url, 2)
    load = PostLoad([doomed.port, survivor.port], clients=8, prefix="kill").start()
    wait_for(lambda: load.acked_count >= 300, 30, "the load got through")
    doomed.process.kill()  # SIGKILL: no shutdown code runs
    doomed.process.wait()
    acked_at_kill = load.acked_count
    wait_for(lambda: load.acked_count >= acked_at_kill + 100, 30, "the survivor kept serving")
    load.stop()
    assert set(load.non_200_responses()) <= set(), load.non_200_responses()
    assert_all_acknowledged_in_order(load, [item["user"] for item in history_of(survivor)])
    print(f"kill -9 of one of two replicas: {load.acked_count} acknowledged, 0 lost")


def test_a_database_restart_under_load_fails_cleanly_and_recovers(
    start_service: StartService, postgres_url: str, postgres_server: PostgresServer
) -> None:
    services = replicas(start_service, postgres_url, 2)
    load = PostLoad([s.port for s in services], clients=6, prefix="restart").start()
    try:
        wait_for(lambda: load.acked_count >= 200, 30, "the load got through")
        postgres_server.stop()
        for service in services:
            status, _, body = service.request("GET", "/readyz")
            assert status == 503
            assert body == {"status": "error", "message": "The store is not available."}
            status, _, body = service.request("POST", "/chat/message", {"message": "down"})
            assert status == 500
            assert body["status"] == "error"
        time.sleep(1)
        postgres_server.start()
        for service in services:
            service.wait_ready(timeout=30)
        acked_after_restart = load.acked_count
        wait_for(lambda: load.acked_count >= acked_after_restart + 100, 30, "recovered")
    finally:
        load.stop()
    errors = load.non_200_responses()
    assert set(errors) <= {500}, errors
    for record in load.records:
        for body in record.error_bodies:
            assert set(json.loads(body)) == {"status", "message"}, body
    stored = [item["user"] for item in history_of(services[0])]
    assert "down" not in stored
    assert_all_acknowledged_in_order(load, stored)
    print(
        f"PostgreSQL restart under load: {load.acked_count} acknowledged, 0 lost, "
        f"{sum(errors.values())} requests answered 500 while it was down"
    )


def test_replicas_starting_at_once_on_an_empty_database(postgres_url: str, tmp_path: Path) -> None:
    env = service_env({**UNLIMITED, "CHAT_DATABASE_URL": postgres_url})
    started: list[ServiceProcess] = []
    processes = []
    for _ in range(3):
        service = ServiceProcess(
            port=free_port(), db_path=tmp_path / "unused.db", env=env, workdir=tmp_path
        )
        started.append(service)
    try:
        for service in started:  # all launched before any is ready
            with service.stdout_path.open("ab") as out, service.stderr_path.open("ab") as err:
                service.process = subprocess.Popen(
                    command("--port", str(service.port)),
                    env=env,
                    cwd=tmp_path,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                )
                processes.append(service.process)
        for service in started:
            service.wait_ready()
        for i, service in enumerate(started):
            status, _, _ = service.request("POST", "/chat/message", {"message": f"from {i}"})
            assert status == 200
        assert [item["user"] for item in history_of(started[0])] == [
            "from 0",
            "from 1",
            "from 2",
        ]
        migrations = [
            [
                json.loads(line)["schema_version"]
                for line in service.stdout().splitlines()
                if json.loads(line).get("message") == "database migrated"
            ]
            for service in started
        ]
        assert sorted(migrations, key=len) == [[], [], list(range(1, SCHEMA_VERSION + 1))], (
            "one replica migrated, each step once; the others found it done"
        )
    finally:
        for service in started:
            service.kill()


def test_live_updates_cross_replicas(start_service: StartService, postgres_url: str) -> None:
    watcher, writer = replicas(start_service, postgres_url, 2)
    stream = get_stream(watcher.port, "/chat/events?conversation_id=live")
    received: list[tuple[Event, float]] = []

    def read() -> None:
        for event in stream.events():
            received.append((event, time.monotonic()))
            if len(received) == 5:
                return

    # The headers come once the subscription is made: the posts below are after it.
    assert stream.status == 200
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        latencies = []
        for i in range(5):
            sent = time.monotonic()
            status, _, _ = writer.request(
                "POST", "/chat/message", {"message": f"live {i}", "conversation_id": "live"}
            )
            assert status == 200
            wait_for(functools.partial(has_at_least, received, i + 1), 10, "events crossed")
            latencies.append(received[i][1] - sent)
        assert [event.data["user"] for event, _ in received] == [f"live {i}" for i in range(5)]
        assert all(event.event == "exchange" for event, _ in received)
        # The conversation's turns, in order and gap-free, whichever replica wrote them.
        assert [event.id for event, _ in received] == [f"t{turn}" for turn in range(1, 6)]
        slowest_ms = max(latencies) * 1000
        print(f"events across replicas: POST sent -> event received, max {slowest_ms:.0f} ms")
    finally:
        stream.close()


def test_a_deletion_reaches_every_replica(start_service: StartService, postgres_url: str) -> None:
    """Deleted through one replica: gone from the other's reads (its history cache too),
    and the other's live streams of it end."""
    keys = {"CHAT_API_KEYS": f"alice:{ALICE_KEY},bob:{BOB_KEY}"}
    env = {**UNLIMITED, "CHAT_DATABASE_URL": postgres_url, **keys}
    first, second = (start_service(env=env) for _ in range(2))
    alice = {"Authorization": f"Bearer {ALICE_KEY}"}
    bob = {"Authorization": f"Bearer {BOB_KEY}"}
    for owner in (alice, bob):
        status, _, _ = first.request(
            "POST", "/chat/message", {"message": "doomed", "conversation_id": "c"}, owner
        )
        assert status == 200
    # Read through the second replica, so that its history cache holds the conversation.
    status, _, body = second.request("GET", "/chat/history?conversation_id=c", None, alice)
    assert (status, [item["user"] for item in body]) == (200, ["doomed"])
    stream = get_stream(second.port, "/chat/events?conversation_id=c", headers=alice)
    assert stream.status == 200
    ended = threading.Event()

    def read() -> None:
        for _ in stream.events():
            pass
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert not ended.wait(0.5), "the stream stays open until the deletion"
        status, _, _ = first.request("DELETE", "/chat/conversations/c", None, alice)
        assert status == 204
        assert ended.wait(10), "the other replica ended the deleted conversation's stream"
        status, _, body = second.request("GET", "/chat/history?conversation_id=c", None, alice)
        assert (status, body) == (200, [])
        status, _, body = second.request("GET", "/chat/history?conversation_id=c", None, bob)
        assert [item["user"] for item in body] == ["doomed"], "bob's own 'c' is untouched"
    finally:
        stream.close()


def test_the_list_of_conversations_is_live_on_every_replica(
    start_service: StartService, postgres_url: str
) -> None:
    """Alice's list, followed through the second replica, hears what the first does to her
    conversations: created, renamed, written to, deleted; bob's writes to his conversation
    of the same id are not on it."""
    keys = {"CHAT_API_KEYS": f"alice:{ALICE_KEY},bob:{BOB_KEY}"}
    env = {**UNLIMITED, "CHAT_DATABASE_URL": postgres_url, **keys}
    first, second = (start_service(env=env) for _ in range(2))
    alice = {"Authorization": f"Bearer {ALICE_KEY}"}
    bob = {"Authorization": f"Bearer {BOB_KEY}"}
    stream = get_stream(second.port, "/chat/conversation-events", headers=alice)
    assert stream.status == 200
    received = stream.events()
    try:
        # Until the second replica's LISTEN is in place, a change is not heard, and the
        # stream says ready again once it is: a warm-up heard through the first replica
        # shows that it is; one made before, lost, is made again after each ready.
        warm_up = {"title": "warm-up"}
        made = first.request("POST", "/chat/conversations", warm_up, alice)[2]
        for event in received:
            if event.event == "ready":
                made = first.request("POST", "/chat/conversations", warm_up, alice)[2]
            elif event.data["id"] == made["id"]:
                break
        events = (event for event in received if event.event != "ready")
        # Each change heard before the next is made (changes made while the hub reads are
        # read together, as the conversation then stands).
        status, _, made = first.request("POST", "/chat/conversations", {"title": "Plans"}, alice)
        assert status == 201
        assert next(events).data == made
        path = f"/chat/conversations/{made['id']}"
        assert first.request("PATCH", path, {"title": "Holiday"}, alice)[0] == 200
        assert next(events).data["title"] == "Holiday"
        for owner in (bob, alice):  # bob's is another conversation, not on alice's list
            body = {"message": "hi", "conversation_id": made["id"]}
            assert first.request("POST", "/chat/message", body, owner)[0] == 200
        posted = next(events)
        assert (posted.event, posted.data["id"], posted.data["exchanges"]) == (
            "conversation",
            made["id"],
            1,
        )
        assert first.request("DELETE", path, None, alice)[0] == 204
        deleted = next(events)
        assert (deleted.event, deleted.data) == ("deleted", {"id": made["id"]})
    finally:
        stream.close()
