#!/usr/bin/env python3
"""A small forward proxy for the tests of kubectl astro-sha (tests only): what a corporate
HTTPS_PROXY / HTTP_PROXY is to kubectl, docker and containerd.

    connect_proxy.py --log proxy.jsonl [--port 0] [--port-file F] [--ttl 300] [--parent-pid PID]
                     [--map NAME=ADDRESS ...]

* `CONNECT host:port` opens a TCP tunnel (HTTPS through a proxy: the client's TLS runs inside it,
  so the proxy sees the target and the byte counts, never a header or a credential).
* `GET http://host:port/path` (absolute-form, RFC 9112 3.2.2) is forwarded to that host, as an HTTP
  proxy does for plain-HTTP registries; the request's Authorization header passes through but is
  never logged.

Loopback only: a target that is not 127.0.0.0/8, ::1 or localhost is refused with 403 (this proxy
exists to prove that traffic goes THROUGH a proxy, not to reach anything). `--map NAME=ADDRESS`
resolves NAME (e.g. registry.bed.test) to a loopback ADDRESS inside the proxy, as a corporate
proxy resolves names the workstation cannot: kubectl, docker and containerd never send
localhost or loopback addresses through HTTPS_PROXY, so a test that proves registry traffic
goes through the proxy names the registry by such a name. The log shows the name asked for. It listens on
127.0.0.1 (port 0 = any free port) and prints the port as the first line of stdout. Bounded: exits
after --ttl seconds and when the process that started it is gone.

Log: JSON lines in --log: {"time", "method", "target", "status", "bytes_up", "bytes_down"} per
proxied request; `target` is host:port for CONNECT and the URL without query for GET. A tunnel
that opens writes a line with "event": "open" at once and one with "event": "close" and the byte
counts when it ends; a forwarded request, "open" before it goes on and "done" with the status.
"""

import argparse
import ipaddress
import json
import os
import select
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

LOG_LOCK = threading.Lock()


def loopback(host):
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host_port(hostport, default_port):
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.lstrip(":") or str(default_port)
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, str(default_port)
    return host, int(port)


class Handler(socketserver.StreamRequestHandler):
    # Unbuffered: whatever the client sends after the CONNECT headers (its TLS ClientHello) must
    # stay in the socket for the tunnel, not in a read buffer.
    rbufsize = 0
    def log(self, **entry):
        entry["time"] = time.time()
        with LOG_LOCK, open(self.server.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def reply(self, status, reason):
        body = f"{status} {reason}\n".encode()
        self.wfile.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    def read_headers(self):
        headers = []
        while True:
            line = self.rfile.readline(65537)
            if not line or line in (b"\r\n", b"\n"):
                return headers
            headers.append(line)

    def handle(self):
        line = self.rfile.readline(65537).decode("latin-1").strip()
        if not line:
            return
        parts = line.split()
        if len(parts) != 3:
            self.reply(400, "Bad Request")
            return
        method, target, _version = parts
        headers = self.read_headers()
        if method == "CONNECT":
            self.connect(target)
        else:
            self.forward(method, target, headers)

    def resolve(self, host):
        """The address to dial for a target host: a --map entry, else the host itself."""
        return self.server.names.get(host.lower(), host)

    def connect(self, target):
        host, port = split_host_port(target, 443)
        host = self.resolve(host)
        if not loopback(host):
            self.reply(403, "Forbidden")
            self.log(method="CONNECT", target=target, status=403, bytes_up=0, bytes_down=0)
            return
        try:
            upstream = socket.create_connection((host, port), timeout=10)
        except OSError:
            self.reply(502, "Bad Gateway")
            self.log(method="CONNECT", target=target, status=502, bytes_up=0, bytes_down=0)
            return
        self.wfile.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        self.wfile.flush()
        # Logged when the tunnel opens: a client that keeps its connection pooled closes it only
        # when it exits, and a reader of the log must not race that close. A second line with the
        # byte counts follows when the tunnel closes.
        self.log(method="CONNECT", target=target, status=200, event="open")
        up, down = self.pump(self.connection, upstream)
        self.log(method="CONNECT", target=target, status=200, event="close", bytes_up=up, bytes_down=down)

    def pump(self, client, upstream):
        """Copies bytes both ways until either side closes. Returns (client->upstream, upstream->client)."""
        up = down = 0
        socks = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(socks, [], [], 60)
                if not readable:
                    break
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return up, down
                    if s is client:
                        upstream.sendall(data)
                        up += len(data)
                    else:
                        client.sendall(data)
                        down += len(data)
        except OSError:
            pass
        finally:
            upstream.close()
        return up, down

    def forward(self, method, target, headers):
        url = urllib.parse.urlsplit(target)
        netloc = (url.hostname or "") + (f":{url.port}" if url.port else "")
        shown = urllib.parse.urlunsplit((url.scheme, netloc, url.path, "", ""))
        if url.scheme != "http" or not url.hostname:
            self.reply(400, "Bad Request")
            self.log(method=method, target=shown, status=400, bytes_up=0, bytes_down=0)
            return
        dial = self.resolve(url.hostname)
        if not loopback(dial):
            self.reply(403, "Forbidden")
            self.log(method=method, target=shown, status=403, bytes_up=0, bytes_down=0)
            return
        try:
            upstream = socket.create_connection((dial, url.port or 80), timeout=10)
        except OSError:
            self.reply(502, "Bad Gateway")
            self.log(method=method, target=shown, status=502, bytes_up=0, bytes_down=0)
            return
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        kept = [
            h for h in headers
            if not h.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
        ]
        request = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(kept) + b"Connection: close\r\n\r\n"
        # Logged before it goes on, as a CONNECT's open: the line after the answer is written once
        # the client already has it, and a test reading the log right after must not race it.
        self.log(method=method, target=shown, event="open")
        upstream.sendall(request)
        # The request body, if any (registries' GET/HEAD have none; a token POST is small).
        length = 0
        for h in headers:
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":", 1)[1].strip() or 0)
        if length:
            upstream.sendall(self.rfile.read(length))
        status = 0
        down = 0
        first = True
        while True:
            data = upstream.recv(65536)
            if not data:
                break
            if first:
                try:
                    status = int(data.split(b" ", 2)[1])
                except (IndexError, ValueError):
                    status = 0
                first = False
            self.connection.sendall(data)
            down += len(data)
        upstream.close()
        self.log(method=method, target=shown, status=status, event="done",
                 bytes_up=len(request) + length, bytes_down=down)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def watchdog(ttl, parent):
    deadline = time.time() + ttl
    while time.time() < deadline:
        if parent and not os.path.exists(f"/proc/{parent}"):
            break
        time.sleep(0.5)
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--log", required=True)
    p.add_argument("--ttl", type=float, default=300)
    p.add_argument("--parent-pid", type=int, default=os.getppid())
    p.add_argument("--map", action="append", default=[], metavar="NAME=ADDRESS",
                   help="resolve NAME to ADDRESS (a loopback address) inside the proxy")
    a = p.parse_args()
    names = {}
    for m in a.map:
        name, sep, address = m.partition("=")
        if not sep or not loopback(address):
            p.error(f"--map {m!r}: expected NAME=ADDRESS with a loopback ADDRESS")
        names[name.lower()] = address
    server = Server(("127.0.0.1", a.port), Handler)
    server.log_path = a.log
    server.names = names
    open(a.log, "a").close()
    port = server.server_address[1]
    if a.port_file:
        with open(a.port_file, "w") as f:
            f.write(f"{port}\n")
    print(port, flush=True)
    threading.Thread(target=watchdog, args=(a.ttl, a.parent_pid), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
