#!/usr/bin/env python3
"""A TCP forwarder that adds network latency, and counts connections and bytes (benchmarks, tests).

    latency_proxy.py --upstream 127.0.0.1:21244 --rtt-ms 50 --stats stats.json

It listens on 127.0.0.1 (port 0 = any free port unless --port), prints the port as the first line
of stdout (and into --port-file), and forwards every accepted connection to the one upstream, byte
for byte (TLS passes through untouched: the client's certificate checks and ALPN are the
server's). Each chunk read in either direction is held for half of --rtt-ms before it is written
on, in order, so a request and its answer cost one round trip of --rtt-ms (plus the real one);
throughput is not limited.

Loopback only (listen and upstream). Bounded: at most --max-connections at once (later ones wait
in the accept backlog), at most --max-buffer bytes held per direction of a connection (the reader
waits), exits after --ttl seconds (default 600) and as soon as --parent-pid (default the parent)
is gone.

Stats: --stats FILE is rewritten (atomically) whenever a connection opens or closes, as JSON:
{"connections": opened so far, "active": open now, "bytes_up": client to upstream,
"bytes_down": upstream to client (what the client received), "rtt_ms"}. A caller that wants
final numbers waits until "active" is 0 after its client exited.
"""
import argparse
import asyncio
import json
import os
import re
import sys
import time

CHUNK = 64 << 10


class Stats:
    def __init__(self, path, rtt_ms):
        self.path = path
        self.v = {"connections": 0, "active": 0, "bytes_up": 0, "bytes_down": 0, "rtt_ms": rtt_ms}

    def write(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.v, f)
        os.replace(tmp, self.path)


async def pipe(reader, writer, delay, max_buffer, stats, key):
    """Reads chunks, holds each `delay` seconds from its arrival, writes them on in order."""
    queue = asyncio.Queue()
    held = asyncio.Semaphore(max(1, max_buffer // CHUNK))
    loop = asyncio.get_running_loop()

    async def read():
        try:
            while True:
                await held.acquire()
                data = await reader.read(CHUNK)
                if not data:
                    break
                stats.v[key] += len(data)
                await queue.put((loop.time() + delay, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((loop.time() + delay, None))

    async def write():
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    break
                held.release()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(read(), write())


async def main_async(args):
    m = re.fullmatch(r"(127\.0\.0\.1|localhost):(\d+)", args.upstream)
    if not m:
        sys.exit("--upstream must be 127.0.0.1:PORT (loopback only)")
    up_host, up_port = m.group(1), int(m.group(2))
    delay = args.rtt_ms / 2000.0
    stats = Stats(args.stats, args.rtt_ms)
    stats.write()
    slots = asyncio.Semaphore(args.max_connections)

    async def handle(c_reader, c_writer):
        async with slots:
            stats.v["connections"] += 1
            stats.v["active"] += 1
            stats.write()
            try:
                u_reader, u_writer = await asyncio.open_connection(up_host, up_port)
            except OSError:
                c_writer.close()
                stats.v["active"] -= 1
                stats.write()
                return
            try:
                await asyncio.gather(
                    pipe(c_reader, u_writer, delay, args.max_buffer, stats, "bytes_up"),
                    pipe(u_reader, c_writer, delay, args.max_buffer, stats, "bytes_down"),
                )
            finally:
                for w in (u_writer, c_writer):
                    try:
                        w.close()
                    except OSError:
                        pass
                stats.v["active"] -= 1
                stats.write()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port, backlog=256)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    parent = args.parent_pid if args.parent_pid is not None else os.getppid()
    deadline = time.monotonic() + args.ttl
    async with server:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            try:
                os.kill(parent, 0)
            except OSError:
                break


def main():
    ap = argparse.ArgumentParser(description="latency-adding TCP forwarder (loopback only)")
    ap.add_argument("--upstream", required=True, help="127.0.0.1:PORT")
    ap.add_argument("--rtt-ms", type=float, required=True, help="round trip to add, in ms")
    ap.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--port-file", help="also write the port here")
    ap.add_argument("--stats", help="JSON stats file, rewritten as connections open and close")
    ap.add_argument("--max-connections", type=int, default=64)
    ap.add_argument("--max-buffer", type=int, default=8 << 20, help="bytes held per direction")
    ap.add_argument("--ttl", type=float, default=600, help="exit after this many seconds")
    ap.add_argument("--parent-pid", type=int, default=None,
                    help="exit when this process is gone (default: the parent)")
    args = ap.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
