"""Socket load for bench/run.py, in its own process so the clients' CPU is not the measured server's.

    python bench/sockets.py idle  CONFIG.json  → holds sockets until each got a ping; prints BENCH_RESULT {...}
    python bench/sockets.py pokes CONFIG.json  → idle sockets plus pushing devices; poke latencies

CONFIG: {"url": "ws://127.0.0.1:PORT/ws/sync", "tokens": [[access, device_id, sockets], ...],
         "api": "http://127.0.0.1:PORT", "pushers": [[access, device_id], ...], "pushes": N, "settle": S}
Each socket authenticates with its first message; the server answers nothing until its first ping.
"""

import asyncio
import http.client
import json
import resource
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import websockets

CONNECTING_AT_ONCE = 200


async def open_sockets(url: str, tokens: list, opened: list, failures: list) -> None:
    limiter = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def one(access: str, device_id: str):
        async with limiter:
            try:
                socket = await websockets.connect(url, open_timeout=60, ping_interval=None, max_queue=64)
                await socket.send(json.dumps({"type": "auth", "access": access, "device_id": device_id}))
                opened.append(socket)
            except Exception as error:
                failures.append(repr(error))

    await asyncio.gather(*(one(access, device) for access, device, count in tokens for _ in range(count)))


async def first_message(socket, timeout: float) -> str | None:
    try:
        return json.loads(await asyncio.wait_for(socket.recv(), timeout))["type"]
    except Exception:
        return None


async def idle(config: dict) -> dict:
    opened, failures = [], []
    started = time.monotonic()
    await open_sockets(config["url"], config["tokens"], opened, failures)
    connected_s = time.monotonic() - started
    # Every socket's first message must be a ping: it authenticated and the server keeps it alive.
    print(f"{len(opened)} sockets open in {connected_s:.1f} s; waiting for their pings...", flush=True)
    firsts = await asyncio.gather(*(first_message(s, config["ping_wait"]) for s in opened))
    pinged = sum(1 for kind in firsts if kind == "ping")
    still_open = sum(1 for s in opened if s.state.name == "OPEN")
    result = {
        "opened": len(opened),
        "failures": len(failures),
        "failure_sample": failures[:3],
        "pinged": pinged,
        "open_at_end": still_open,
        "connect_seconds": connected_s,
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    # Held open until the parent has read the server's memory.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
    return result


def push_loop(api: str, access: str, device_id: str, pushes: int, out: list, errors: list) -> None:
    parts = urlsplit(api)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Authorization": f"Bearer {access}", "Content-Type": "application/json"}
    for index in range(pushes):
        now_ms = time.time_ns() // 1_000_000
        body = {
            "device_id": device_id,
            "ops": [
                {
                    "op_id": uuid.uuid4().hex,
                    "key": f"poke/{device_id}",
                    "op": "set",
                    "value": index,
                    "hlc": f"{now_ms}-{index}",
                }
            ],
        }
        connection.request("POST", "/api/sync/push", json.dumps(body), headers)
        response = connection.getresponse()
        payload = response.read()
        answered = time.monotonic()
        if response.status != 200:
            errors.append(response.status)
            continue
        out.append((json.loads(payload)["version"], device_id, answered))
    connection.close()


async def pokes(config: dict) -> dict:
    idle_sockets, failures = [], []
    await open_sockets(config["url"], config["tokens"], idle_sockets, failures)
    devices = {}
    for access, device_id in config["pushers"]:
        socket = await websockets.connect(config["url"], open_timeout=60, ping_interval=None, max_queue=None)
        await socket.send(json.dumps({"type": "auth", "access": access, "device_id": device_id}))
        devices[device_id] = socket
    # Auth has no answer: a throwaway push per device shows every device socket receiving (then drained).
    received: dict[str, dict[int, float]] = {device: {} for device in devices}

    async def listen(device_id, socket):
        try:
            async for message in socket:
                data = json.loads(message)
                if data["type"] == "changed":
                    received[device_id][data["version"]] = time.monotonic()
        except websockets.ConnectionClosed:
            pass

    listeners = [asyncio.create_task(listen(device, socket)) for device, socket in devices.items()]
    loop = asyncio.get_running_loop()
    # Auth has no answer: warm-up pushes from two devices show every device socket joined its groups.
    (first_access, first), (second_access, second) = config["pushers"][:2]
    warmed = True
    for access, device, watchers in (
        (first_access, first, [d for d in devices if d != first]),
        (second_access, second, [first]),
    ):
        warm = []
        await loop.run_in_executor(None, push_loop, config["api"], access, device, 1, warm, [])
        version = warm[0][0]
        warmed &= await until(lambda v=version, ws=watchers: all(v in received[w] for w in ws), config["settle"])
    for device in received:
        received[device].clear()
    pushed, errors = [], []
    threads = [
        threading.Thread(target=push_loop, args=(config["api"], access, device, config["pushes"], pushed, errors))
        for access, device in config["pushers"]
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    await asyncio.get_running_loop().run_in_executor(None, lambda: [thread.join() for thread in threads])
    push_seconds = time.monotonic() - started
    expected = [(version, device) for version, pusher, _ in pushed for device in devices if device != pusher]
    await until(lambda: all(version in received[device] for version, device in expected), config["settle"])
    latencies, lost = [], 0
    for version, pusher, answered in pushed:
        for device in devices:
            if device == pusher:
                continue
            at = received[device].get(version)
            if at is None:
                lost += 1
            else:
                # A poke may beat the push's own response (published on commit): that counts as 0 ms.
                latencies.append(max(0.0, at - answered) * 1000)
    own = sum(1 for version, pusher, _ in pushed if version in received[pusher])
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(s.close() for s in [*idle_sockets, *devices.values()]), return_exceptions=True)
    latencies.sort()

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

    return {
        "idle_sockets": len(idle_sockets),
        "failures": len(failures),
        "failure_sample": failures[:3],
        # False: a warm-up poke never came, so the device sockets may have joined late (losses then).
        "warmed_up": warmed,
        "pushes": len(pushed),
        "push_errors": len(errors),
        "pushes_per_s": len(pushed) / push_seconds if push_seconds else 0,
        "pokes_expected": len(pushed) * (len(devices) - 1),
        "pokes_received": len(latencies),
        "lost": lost,
        "pokes_to_pusher": own,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] if latencies else None,
    }


async def until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    config = json.loads(open(path).read())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if mode == "idle":
        asyncio.run(idle(config))
    else:
        print("BENCH_RESULT " + json.dumps(asyncio.run(pokes(config))), flush=True)


if __name__ == "__main__":
    main()
