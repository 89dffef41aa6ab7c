#!/usr/bin/env python3
"""A small fault-injecting HTTP(S) proxy for the tests of kubectl astro-sha (tests only).

It sits in front of ONE upstream (a registry of the bed, or a kube-apiserver), forwards every
request, and misbehaves where a rule says so. Loopback only; it stops by itself.

    faultproxy.py --upstream http://127.0.0.1:5002 --rules rules.json --log requests.jsonl
    faultproxy.py --upstream https://127.0.0.1:6443 --upstream-ca ca.pem \
                  --tls-ca-cert ca.pem --tls-ca-key ca.key --rules rules.json --log requests.jsonl

It listens on 127.0.0.1 (port 0 = any free port unless --port) and prints the port as the first
line of stdout (and into --port-file). With --tls-ca-cert/--tls-ca-key it terminates TLS with a
fresh leaf certificate signed by that CA (CA:FALSE, SAN IP:127.0.0.1 + DNS:localhost; rustls
refuses a CA certificate as a server certificate), ALPN http/1.1 only, and re-originates TLS to an
https upstream trusting --upstream-ca. Request headers (Authorization included) pass through.

Bounded: exits after --ttl seconds (default 300), and as soon as the process that started it
(--parent-pid, default the parent) is gone.

Rules (JSON file, a list; re-read whenever the file changes, which resets the counters). Each
rule matches requests by `method` (string, list, or "*"; default any) and `path` (a Python regex
searched in the request target, query included; default any). Among its matches, `after` (default
0) are let through untouched first, then the rule fires `times` times (default: every time). The
first rule that fires decides. Actions (keys of the rule; several may combine where it makes sense):

    "status": 429, "headers": {"Retry-After": "1"}, "body": "...", "k8s": true
        answer this status without asking the upstream. k8s=true writes a Kubernetes Status
        body (message from "body", "reason" from "reason"); otherwise a distribution-style
        {"errors":[...]} JSON body.
    "reset": true              close the connection with a TCP RST before answering
    "delay": 2.5               wait this many seconds, then go on (forward, or the other action)
    "hold_until": "/path", "hold_max": 30
                               wait until that file exists (at most hold_max s), then go on;
                               with "held_mark": "/file" a line "METHOD PATH" is appended to
                               that file as the hold begins (a test's cue that the request is
                               in flight)
    "strip_headers": ["Docker-Content-Digest"]
                               forward, then drop these headers from the response
    "corrupt_body": true       forward, then append a space to the body (still valid JSON, a
                               different sha256; Content-Length fixed up)
    "truncate_body": 100, "keep_length": true
                               forward, then send only the first N bytes ("half" = half). With
                               keep_length the original Content-Length is announced and the
                               connection is closed early (a cut transfer); without it the
                               short body is announced as complete.
    "reset_after_forward": true
                               forward (the upstream acts on it), then reset the connection
                               instead of answering: a write that was applied but whose answer
                               was lost
    "expire_token_after": 3    per Bearer token: its first N uses of matching requests pass;
                               after that the request is forwarded WITHOUT Authorization, so the
                               registry itself answers 401 with its real challenge (a token that
                               expired mid-run). "expire_tokens": K limits this to the first K
                               distinct tokens seen (later, refreshed tokens stay valid)

When the upstream cannot be reached the proxy answers 502, or with --on-upstream-error reset
closes the connection with a reset (what a client sees of an API server that died mid-request).

Log: one JSON line per request in --log: {"seq", "time", "method", "path", "rule", "action",
"status", "upstream_status", "token" (a short hash of the bearer token, never the token),
"user_agent", "impersonate_user" and "accept_encoding" (the request's User-Agent, Impersonate-User
and Accept-Encoding headers, or null), "content_encoding" (the forwarded answer's Content-Encoding,
or null), "bytes" (the forwarded answer's body length as sent), "elapsed_ms"}. `rule` is the index of the rule that fired, or null.

Why Python and not Rust: the bed's helpers (push, seed, token server) are Python stdlib already,
the benchmarks' shell script uses the same proxy to count API requests, and a fault proxy that
lives outside the binary under test cannot share (or hide) its HTTP stack's behaviour.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
}


class Rules:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.mtime = None
        self.rules = []
        self.matches = []
        self.token_uses = {}
        self.token_order = []
        self.reload()

    def reload(self):
        if not self.path:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.rules, self.matches, self.mtime = [], [], None
            return
        key = (st.st_mtime_ns, st.st_size)
        if key == self.mtime:
            return
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        rules = json.loads(text) if text.strip() else []
        if not isinstance(rules, list):
            raise ValueError("rules file must hold a JSON list")
        for r in rules:
            r["_re"] = re.compile(r.get("path", ""))
        self.rules, self.matches, self.mtime = rules, [0] * len(rules), key
        self.token_uses = {}
        self.token_order = []

    def pick(self, method, target, token):
        """The (index, rule) that fires for this request, or (None, None)."""
        with self.lock:
            try:
                self.reload()
            except Exception as e:  # a half-written rules file: keep the old rules
                print(f"faultproxy: cannot read rules: {e}", file=sys.stderr)
            for i, r in enumerate(self.rules):
                m = r.get("method", "*")
                methods = m if isinstance(m, list) else [m]
                if "*" not in methods and method not in methods:
                    continue
                if not r["_re"].search(target):
                    continue
                if "expire_token_after" in r:
                    if token is None:
                        continue
                    if token not in self.token_order:
                        self.token_order.append(token)
                    if self.token_order.index(token) >= int(r.get("expire_tokens", 1 << 30)):
                        continue  # a later (refreshed) token: it stays valid
                    uses = self.token_uses.get(token, 0) + 1
                    self.token_uses[token] = uses
                    if uses <= int(r["expire_token_after"]):
                        continue
                    return i, r
                self.matches[i] += 1
                n = self.matches[i]
                after = int(r.get("after", 0))
                times = r.get("times")
                if n <= after:
                    continue
                if times is not None and n > after + int(times):
                    continue
                return i, r
            return None, None


class Log:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8") if path else None
        self.lock = threading.Lock()
        self.seq = 0

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def write(self, entry):
        if not self.f:
            return
        with self.lock:
            self.f.write(json.dumps(entry, sort_keys=True) + "\n")
            self.f.flush()


def make_leaf(ca_cert_path, ca_key_path, outdir):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    with open(ca_cert_path, "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(ca_key_path, "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "astro-sha faultproxy")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]),
            critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = os.path.join(outdir, "leaf.pem")
    key_path = os.path.join(outdir, "leaf.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def token_of(headers):
    v = headers.get("Authorization") or ""
    if not v.lower().startswith("bearer "):
        return None
    return hashlib.sha256(v[7:].strip().encode()).hexdigest()[:12]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "astro-sha-faultproxy"

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.request.close()
                raise
        super().setup()
        self.upstream_conn = None

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    # every method goes through one place
    def do_GET(self): self.handle_any()
    def do_HEAD(self): self.handle_any()
    def do_POST(self): self.handle_any()
    def do_PUT(self): self.handle_any()
    def do_PATCH(self): self.handle_any()
    def do_DELETE(self): self.handle_any()
    def do_OPTIONS(self): self.handle_any()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        cfg = self.server.cfg
        t0 = time.monotonic()
        body = self.read_body()
        token = token_of(self.headers)
        idx, rule = cfg.rules.pick(self.command, self.path, token)
        rule = rule or {}
        entry = {
            "seq": cfg.log.next_seq(),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "method": self.command,
            "path": self.path,
            "rule": idx,
            "action": None,
            "status": None,
            "upstream_status": None,
            "token": token,
            "user_agent": self.headers.get("User-Agent"),
            "impersonate_user": self.headers.get("Impersonate-User"),
            "accept_encoding": self.headers.get("Accept-Encoding"),
            "content_encoding": None,
            "bytes": None,
        }
        actions = [k for k in ("status", "reset", "delay", "hold_until", "strip_headers",
                               "corrupt_body", "truncate_body", "reset_after_forward",
                               "expire_token_after") if k in rule]
        entry["action"] = ",".join(actions) or None
        try:
            self.act(rule, body, entry)
        finally:
            entry["elapsed_ms"] = int((time.monotonic() - t0) * 1000)
            cfg.log.write(entry)

    def act(self, rule, body, entry):
        if "delay" in rule:
            time.sleep(float(rule["delay"]))
        if "hold_until" in rule:
            if "held_mark" in rule:
                with open(rule["held_mark"], "a") as f:
                    f.write(f"{self.command} {self.path}\n")
            deadline = time.monotonic() + float(rule.get("hold_max", 30))
            while not os.path.exists(rule["hold_until"]) and time.monotonic() < deadline:
                time.sleep(0.05)
        if rule.get("reset"):
            entry["status"] = "reset"
            self.reset()
            return
        if "status" in rule:
            self.answer(rule, entry)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if "expire_token_after" in rule:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        try:
            status, reason, resp_headers, resp_body = self.forward(headers, body)
        except OSError as e:
            entry["upstream_error"] = str(e)
            if self.server.cfg.on_upstream_error == "reset":
                entry["status"] = "reset"
                self.reset()
            else:
                entry["status"] = 502
                self.send_plain(502, f"faultproxy: upstream unreachable: {e}\n".encode())
            return
        entry["upstream_status"] = status
        if rule.get("reset_after_forward"):
            entry["status"] = "reset"
            self.reset()
            return
        strip = {h.lower() for h in rule.get("strip_headers", [])}
        resp_headers = [(k, v) for k, v in resp_headers
                        if k.lower() not in HOP_BY_HOP and k.lower() not in strip]
        length = None
        if self.command != "HEAD":
            if rule.get("corrupt_body") and resp_body:
                resp_body = resp_body + b" "
            length = len(resp_body)
            announced = length
            cut = None
            if "truncate_body" in rule and resp_body:
                n = rule["truncate_body"]
                cut = len(resp_body) // 2 if n == "half" else min(int(n), len(resp_body))
                if not rule.get("keep_length"):
                    announced = cut
            resp_headers = [(k, v) for k, v in resp_headers if k.lower() != "content-length"]
            resp_headers.append(("Content-Length", str(announced)))
        entry["status"] = status
        entry["content_encoding"] = next(
            (v for k, v in resp_headers if k.lower() == "content-encoding"), None)
        entry["bytes"] = length
        self.send_response_only(status, reason)
        for k, v in resp_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            self.wfile.flush()
            return
        if "truncate_body" in rule and resp_body:
            self.wfile.write(resp_body[:cut])
            self.wfile.flush()
            if rule.get("keep_length"):
                entry["status"] = f"{status} cut"
                self.reset()
            return
        self.wfile.write(resp_body)
        self.wfile.flush()

    def forward(self, headers, body):
        cfg = self.server.cfg
        for attempt in (1, 2):
            conn = self.upstream_conn
            if conn is None:
                if cfg.upstream_scheme == "https":
                    conn = http.client.HTTPSConnection(cfg.upstream_host, cfg.upstream_port,
                                                       timeout=cfg.upstream_timeout,
                                                       context=cfg.upstream_ctx)
                else:
                    conn = http.client.HTTPConnection(cfg.upstream_host, cfg.upstream_port,
                                                      timeout=cfg.upstream_timeout)
                self.upstream_conn = conn
            h = {k: v for k, v in headers.items() if k.lower() != "host"}
            h["Host"] = f"{cfg.upstream_host}:{cfg.upstream_port}"
            try:
                conn.request(self.command, self.path, body=body if body else None, headers=h)
                resp = conn.getresponse()
                data = resp.read() if self.command != "HEAD" else b""
                if self.command == "HEAD":
                    resp.read()
                return resp.status, resp.reason, resp.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady) as e:
                conn.close()
                self.upstream_conn = None
                if attempt == 2:
                    raise OSError(str(e) or type(e).__name__)
            except OSError:
                conn.close()
                self.upstream_conn = None
                raise
        raise OSError("unreachable")

    def answer(self, rule, entry):
        status = int(rule["status"])
        text = rule.get("body")
        if rule.get("k8s"):
            reason = rule.get("reason", http.client.responses.get(status, "Unknown").replace(" ", ""))
            payload = json.dumps({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": text or f"injected by faultproxy: {status}", "reason": reason,
                "code": status,
            }).encode()
            ctype = "application/json"
        elif text is not None:
            payload = text.encode()
            ctype = rule.get("content_type", "text/plain")
        else:
            payload = json.dumps({"errors": [{
                "code": "UNKNOWN", "message": f"injected by faultproxy: {status}"}]}).encode()
            ctype = "application/json"
        entry["status"] = status
        self.send_response_only(status)
        self.send_header("Content-Type", ctype)
        for k, v in rule.get("headers", {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def send_plain(self, status, payload):
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    def reset(self):
        """Close with RST (SO_LINGER 0), so the client sees `connection reset`."""
        try:
            self.wfile.flush()
        except OSError:
            pass
        sock = self.request
        try:
            raw = sock
            if isinstance(sock, ssl.SSLSocket):
                raw = socket.socket(fileno=os.dup(sock.fileno()))
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if raw is not sock:
                raw.close()
        except OSError:
            pass
        self.close_connection = True
        try:
            sock.close()
        except OSError:
            pass

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        if getattr(self, "upstream_conn", None) is not None:
            self.upstream_conn.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # client went away mid-request: nothing to report


class Config:
    pass


def watchdog(ttl, parent):
    deadline = time.monotonic() + ttl
    while time.monotonic() < deadline:
        if parent and parent != 1:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
        time.sleep(0.5)
    print(f"faultproxy: ttl of {ttl}s reached, exiting", file=sys.stderr)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description="fault-injecting proxy for the astro-sha tests")
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT or https://HOST:PORT")
    ap.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--rules", help="JSON rules file (re-read when it changes)")
    ap.add_argument("--log", help="JSON-lines request log")
    ap.add_argument("--port-file", help="also write the port here")
    ap.add_argument("--tls-ca-cert", help="terminate TLS with a leaf signed by this CA")
    ap.add_argument("--tls-ca-key")
    ap.add_argument("--upstream-ca", help="CA to trust for an https upstream")
    ap.add_argument("--upstream-timeout", type=float, default=60)
    ap.add_argument("--on-upstream-error", choices=("502", "reset"), default="502",
                    help="answer when the upstream cannot be reached")
    ap.add_argument("--ttl", type=float, default=300, help="exit after this many seconds")
    ap.add_argument("--parent-pid", type=int, default=None,
                    help="exit when this process is gone (default: the parent)")
    args = ap.parse_args()

    m = re.fullmatch(r"(https?)://(127\.0\.0\.1|localhost):(\d+)", args.upstream)
    if not m:
        ap.error("--upstream must be http(s)://127.0.0.1:PORT (loopback only)")
    cfg = Config()
    cfg.upstream_scheme, cfg.upstream_host, cfg.upstream_port = m.group(1), m.group(2), int(m.group(3))
    cfg.upstream_timeout = args.upstream_timeout
    cfg.on_upstream_error = args.on_upstream_error
    cfg.upstream_ctx = None
    if cfg.upstream_scheme == "https":
        cfg.upstream_ctx = ssl.create_default_context(cafile=args.upstream_ca)
    cfg.rules = Rules(args.rules)
    cfg.log = Log(args.log)

    server = Server(("127.0.0.1", args.port), Handler)
    server.cfg = cfg
    if args.tls_ca_cert:
        if not args.tls_ca_key:
            ap.error("--tls-ca-cert needs --tls-ca-key")
        tmp = tempfile.mkdtemp(prefix="faultproxy-")
        cert, key = make_leaf(args.tls_ca_cert, args.tls_ca_key, tmp)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        shutil.rmtree(tmp, ignore_errors=True)  # loaded: leave no key material behind
        ctx.set_alpn_protocols(["http/1.1"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    parent = args.parent_pid if args.parent_pid is not None else os.getppid()
    threading.Thread(target=watchdog, args=(args.ttl, parent), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
