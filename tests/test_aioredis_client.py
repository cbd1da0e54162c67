"""The asyncio driver's Redis client (``ws4redis.runtime.asyncio.redis_client``) on a real redis-server, in this
process.

Each test runs its coroutine with ``asyncio.run``. The ASGI suites exercise it end to end (``test_asgi_websocket``,
``test_asgi_topologies``); here: one client per loop, at most ``WS4REDIS_POOL_SIZE`` connections however many calls
wait (none fails for it), the same ``Batch`` as the synchronous client with the same result, and ``close``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from django.test import override_settings

from tests.servers import RedisServer
from ws4redis.broker.redis_batch import run as run_sync
from ws4redis.history import Recovery, history_key
from ws4redis.publisher import RedisPublisher
from ws4redis.quota import ConnectionQuota
from ws4redis.redis_store import get_connection
from ws4redis.runtime.asyncio import redis_client as aioredis_client

HISTORY = {"aio": {"size": 100, "ttl": 60}}


def connections(server: RedisServer) -> int:
    client: redis.Redis = server.client()
    try:
        return sum(1 for c in client.client_list() if c.get("name") == aioredis_client.client_name())
    finally:
        client.close()


@override_settings(WS4REDIS_POOL_SIZE=4)
def test_a_burst_of_calls_waits_for_the_pool_and_none_fails(redis_server: RedisServer) -> None:
    quotas = [ConnectionQuota(f"burst{i}", 1) for i in range(200)]

    async def main() -> tuple[list[bool], int, int]:
        seen: list[int] = []

        async def watch() -> None:
            while True:
                seen.append(await asyncio.to_thread(connections, redis_server))
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        taken = await asyncio.gather(*(aioredis_client.run(q.acquire_batch()) for q in quotas))
        taken += await asyncio.gather(*(aioredis_client.run(q.acquire_batch()) for q in quotas))  # the limit is 1
        watcher.cancel()
        during = max([*seen, connections(redis_server)])
        await aioredis_client.close()
        return taken, during, connections(redis_server)

    taken, during, after = asyncio.run(main())
    assert taken == [True] * 200 + [False] * 200
    assert 1 <= during <= 4  # WS4REDIS_POOL_SIZE
    assert after == 0  # close() let go of every connection
    get_connection().delete(*(q.key for q in quotas))


@override_settings(WS4REDIS_HISTORY=HISTORY, WS4REDIS_EXPIRE=60)
def test_the_same_batches_give_the_same_answers_on_both_clients(redis_server: RedisServer) -> None:
    channel = "test:broadcast:aio"
    get_connection().delete(history_key(channel), channel)
    publisher = RedisPublisher(facility="aio", broadcast=True)
    for i in range(5):
        publisher.publish_message(str(i))
    sync, aio = Recovery([channel]), Recovery([channel])

    async def main() -> Any:
        batch = aio.start_batch()
        assert batch is not None
        await aioredis_client.run(batch)
        replay = aio.replay_batch({channel: (0, 0)})
        assert replay is not None
        replayed = await aioredis_client.run(replay)
        await aioredis_client.publish([channel], b"by the driver", True, 60)
        kept = await aioredis_client.kept([channel, "test:broadcast:nothing"])
        await aioredis_client.close()
        return replayed, kept

    sync.start(get_connection())
    expected = sync.replay(get_connection(), {channel: (0, 0)})
    replayed, kept = asyncio.run(main())
    assert replayed == expected
    assert aio.last == sync.last
    assert [data for _, _, data, _ in replayed[0]] == [b"0", b"1", b"2", b"3", b"4"]
    assert kept == [b"by the driver", None]  # its publish kept the message, as RedisPublisher's does
    assert [data for _, _, data, _ in sync.replay(get_connection(), sync.last)[0]] == [b"by the driver"]  # streamed
    assert run_sync(get_connection(), ConnectionQuota("x", 1).release_batch()) is None


def test_each_event_loop_has_its_own_client(redis_server: RedisServer) -> None:
    async def which() -> Any:
        first = aioredis_client._client()
        assert aioredis_client._client() is first  # one per loop, made once
        await aioredis_client.close()
        return first

    assert asyncio.run(which()) is not asyncio.run(which())
