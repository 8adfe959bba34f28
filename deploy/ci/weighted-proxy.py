#!/usr/bin/env python3
"""A weighted TCP proxy that draws a backend once per NEW connection, as Envoy does for
an Istio weighted `tcp` route: the stand-in gateway of deploy/ci/walk-rehearsal.

Usage: weighted-proxy.py PORT_FILE HOST:PORT=WEIGHT [HOST:PORT=WEIGHT ...]

Listens on 127.0.0.1, on a port the kernel picks, and writes that port to PORT_FILE
once it accepts. Each accepted connection goes to one backend drawn at random with
probability weight / total (weight 0: never), then bytes are piped both ways until
both sides close. (HAProxy is not used here: its `balance random` draws on a
consistent-hash ring whose arcs are off the weights by a few points, which a correct
checker then reports.)
"""

import asyncio
import random
import signal
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, RuntimeError):
        # One side failed: close the other too, so the opposite pipe ends as well.
        writer.close()


# asyncio keeps only weak references to tasks: hold the connection handlers here.
RUNNING: set = set()


async def handle(client_r, client_w, backends, weights) -> None:
    RUNNING.add(asyncio.current_task())
    host, port = random.choices(backends, weights)[0]
    backend_w = None
    try:
        backend_r, backend_w = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(client_r, backend_w), pipe(backend_r, client_w))
    except OSError:
        pass
    finally:
        for w in (backend_w, client_w):
            if w is not None:
                w.close()
        RUNNING.discard(asyncio.current_task())


async def main(port_file: str, specs: list[str]) -> None:
    backends, weights = [], []
    for spec in specs:
        addr, _, weight = spec.rpartition("=")
        host, _, port = addr.rpartition(":")
        backends.append((host, int(port)))
        weights.append(float(weight))
    if not backends or sum(weights) <= 0:
        raise SystemExit("weighted-proxy: give at least one backend with a weight above 0")
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, backends, weights), "127.0.0.1", 0, backlog=1024
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with open(port_file, "w", encoding="ascii") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    async with server:
        await stop.wait()
    # Stopping: cut whatever is still open, quietly (a gateway going away does the same).
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
