#!/usr/bin/env python3
"""A deliberately hostile OCI registry for the tests of kubectl astro-sha (tests only).

    hostile_registry.py --mode MODE [--tls bed|untrusted] [--aux-tls bed|untrusted|none]
                        [--ca-cert ca.pem --ca-key ca.key] --log requests.jsonl [--digest VALUE]

It serves ONE repository's manifests on a "registry" port and, for the modes that need a second
host, an "aux" port (a token realm or a redirect target) on 127.0.0.1; both ports are free ones,
printed as the first stdout line: {"registry": PORT, "aux": PORT}. TLS leaves are signed by the
bed's CA (--tls bed, with --ca-cert/--ca-key) or by a throwaway CA nobody trusts (untrusted);
rustls needs CA:FALSE leaves with SAN IP:127.0.0.1.

Modes (every manifest is a small valid OCI image manifest unless the mode says otherwise):
    digest-header      HEAD and GET send `Docker-Content-Digest: <--digest>` (e.g. sha512:..., or
                       not-a-digest)
    index-entry        GET answers an OCI index (correct digest header) whose linux/amd64 entry's
                       digest is `sha256:not-a-digest<ESC>[2J`; HEAD has no digest
    media-type         HEAD without digest; GET answers a manifest whose mediaType holds an escape
                       sequence, no digest header
    endless            HEAD without digest; GET streams an endless (chunked) manifest body
    drip               HEAD without digest; GET sends its headers, then one byte every 0.5 s
    error-body         HEAD and GET answer 400 with a distribution error body whose code and
                       message hold escape sequences and a bell
    token-endless      /v2/ asks for a Bearer token at the aux realm (plain HTTP); the realm
                       streams an endless token response
    realm-http         registry over TLS; /v2/ asks for a Bearer token at http://127.0.0.1:AUX/token
                       (plain HTTP; the realm URL carries userinfo and a ?sig= query that must
                       never be shown); the realm hands out a token to anyone and logs whether an
                       Authorization header arrived
    realm-tls          like realm-http, but the realm is https on the aux port (--aux-tls decides
                       its certificate)
    redirect           /v2/ asks for Basic auth; manifests answer 307 to the same path on the aux
                       port (plain HTTP unless --aux-tls), where they are served (so a client that
                       follows works)
    refresh-redirect   /v2/ asks for a Bearer token at https://127.0.0.1:REGISTRY/token, which
                       answers 307 to the aux port's /token (another host); the aux logs whether a
                       request body carried a refresh_token

Log: one JSON line per request: {"port": "registry"|"aux", "method", "path", "authorization":
"basic"|"bearer"|null, "user": basic user or null}; never a password or a token.

Bounded: exits after --ttl seconds and when --parent-pid is gone.
"""
import argparse
import base64
import datetime
import hashlib
import ipaddress
import json
import os
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + "1" * 64, "size": 2},
    "layers": [],
}, separators=(",", ":")).encode()


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def make_cert(outdir, name, ca_cert_path=None, ca_key_path=None):
    """A leaf for 127.0.0.1/localhost signed by the given CA, or by a fresh throwaway CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    if ca_cert_path:
        with open(ca_cert_path, "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        with open(ca_key_path, "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
        issuer = ca_cert.subject
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "untrusted throwaway CA")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile registry")]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]),
            critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = os.path.join(outdir, f"{name}.pem")
    key_path = os.path.join(outdir, f"{name}.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class State:
    args = None
    ports = {}
    log_lock = threading.Lock()


def log(entry):
    with State.log_lock, open(State.args.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hostile-registry"
    role = "registry"

    def log_message(self, *a):
        pass

    def record(self):
        authz = self.headers.get("Authorization") or ""
        kind, user = None, None
        if authz.lower().startswith("basic "):
            kind = "basic"
            try:
                user = base64.b64decode(authz[6:].strip()).decode().split(":", 1)[0]
            except Exception:
                user = "?"
        elif authz.lower().startswith("bearer "):
            kind = "bearer"
        log({"port": self.role, "method": self.command, "path": self.path,
             "authorization": kind, "user": user})

    def send(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if b"refresh_token" in body:
            log({"port": self.role, "event": "body carried a refresh_token"})
        self.handle_any(head=False)

    def scheme_of(self, role):
        tls = State.args.tls if role == "registry" else State.args.aux_tls
        return "http" if tls == "none" else "https"

    def handle_any(self, head):
        self.record()
        mode = State.args.mode
        path = self.path.split("?")[0]
        if self.role == "aux":
            return self.aux(mode, path, head)
        if path == "/v2/" or path == "/v2":
            return self.ping(mode, head)
        if mode == "refresh-redirect" and path == "/token":
            target = f"{self.scheme_of('aux')}://127.0.0.1:{State.ports['aux']}{self.path}"
            return self.send(307, headers={"Location": target}, head=head)
        if "/manifests/" not in path:
            return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}', head=head)
        if mode in ("realm-http", "realm-tls", "token-endless", "refresh-redirect"):
            if not (self.headers.get("Authorization") or "").lower().startswith("bearer "):
                return self.ping(mode, head)
        if mode == "redirect":
            if not (self.headers.get("Authorization") or "").lower().startswith("basic "):
                return self.ping(mode, head)
            target = f"{self.scheme_of('aux')}://127.0.0.1:{State.ports['aux']}{self.path}"
            return self.send(307, headers={"Location": target}, head=head)
        return self.manifest(mode, head)

    def ping(self, mode, head):
        aux = State.ports.get("aux")
        if mode == "realm-http":
            # userinfo and a query string that must never reach an error or a log line
            chal = (f'Bearer realm="http://realm-user:REALM-PASSWORD@127.0.0.1:{aux}/token'
                    f'?sig=REALM-SECRET",service="hostile"')
        elif mode == "token-endless":
            chal = f'Bearer realm="http://127.0.0.1:{aux}/token",service="hostile"'
        elif mode == "realm-tls":
            chal = f'Bearer realm="https://127.0.0.1:{aux}/token",service="hostile"'
        elif mode == "refresh-redirect":
            chal = f'Bearer realm="https://127.0.0.1:{State.ports["registry"]}/token",service="hostile"'
        elif mode == "redirect":
            chal = 'Basic realm="hostile"'
        else:
            return self.send(200, b"{}", {"Content-Type": "application/json"}, head)
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        return self.send(401, body, {"WWW-Authenticate": chal,
                                     "Content-Type": "application/json"}, head)

    def manifest(self, mode, head):
        ct = {"Content-Type": OCI_MANIFEST}
        if mode == "digest-header":
            return self.send(200, MANIFEST, {**ct, "Docker-Content-Digest": State.args.digest}, head)
        if mode == "index-entry":
            index = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": "sha256:not-a-digest\u001b[2J",
                     "size": len(MANIFEST), "platform": {"os": "linux", "architecture": "amd64"}},
                    {"mediaType": OCI_MANIFEST, "digest": sha256(MANIFEST),
                     "size": len(MANIFEST), "platform": {"os": "linux", "architecture": "arm64"}},
                ]}).encode()
            hdr = {"Content-Type": OCI_INDEX}
            if not head:
                hdr["Docker-Content-Digest"] = sha256(index)
            return self.send(200, index, hdr, head)
        if mode == "media-type":
            body = MANIFEST.replace(OCI_MANIFEST.encode(), b"application/vnd.oci\\u001b[31m.evil")
            return self.send(200, body, {"Content-Type": "application/json"}, head)
        if mode == "endless":
            if head:
                return self.send(200, b"", ct, head=True)
            return self.endless(b'{"schemaVersion":2,"layers":[', b'{"a":"' + b"x" * 65000 + b'"},')
        if mode == "drip":
            if head:
                return self.send(200, b"", ct, head=True)
            return self.drip()
        if mode == "error-body":
            body = json.dumps({"errors": [{
                "code": "BLOCKED\u001b[2J",
                "message": "policy says no\u001b]0;pwned\u0007 to this image\u009b31m"}]}).encode()
            return self.send(400, body, {"Content-Type": "application/json"}, head)
        return self.send(200, MANIFEST, {**ct, "Docker-Content-Digest": sha256(MANIFEST)}, head)

    def endless(self, start, chunk):
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        closed_by_client = False
        try:
            data = start
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                sent += len(data)
                data = chunk
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            closed_by_client = True
        log({"port": self.role, "event": "endless body stopped", "bytes": sent,
             "closed_by_client": closed_by_client})
        self.close_connection = True

    def drip(self):
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST)
        self.send_header("Content-Length", str(len(MANIFEST)))
        self.end_headers()
        sent = 0
        closed_by_client = False
        try:
            for b in MANIFEST:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                sent += 1
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            closed_by_client = True
        log({"port": self.role, "event": "drip stopped", "bytes": sent, "of": len(MANIFEST),
             "closed_by_client": closed_by_client})
        self.close_connection = True

    def aux(self, mode, path, head):
        if mode == "token-endless":
            return self.endless(b'{"token":"', b"t" * 65000)
        if path == "/token":
            body = json.dumps({"token": "hostile-token", "expires_in": 300}).encode()
            return self.send(200, body, {"Content-Type": "application/json"}, head)
        if "/manifests/" in path:
            return self.send(200, MANIFEST, {"Content-Type": OCI_MANIFEST,
                                             "Docker-Content-Digest": sha256(MANIFEST)}, head)
        return self.send(404, b"", head=head)


class AuxHandler(Handler):
    role = "aux"


def serve(handler, tls, tmp, name):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    if tls != "none":
        a = State.args
        if tls == "bed":
            cert, key = make_cert(tmp, name, a.ca_cert, a.ca_key)
        else:
            cert, key = make_cert(tmp, name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def watchdog(ttl, parent):
    deadline = time.monotonic() + ttl
    while time.monotonic() < deadline:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(0.5)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description="hostile registry for the astro-sha tests")
    ap.add_argument("--mode", required=True)
    ap.add_argument("--tls", default="none", choices=["none", "bed", "untrusted"])
    ap.add_argument("--aux-tls", default="none", choices=["none", "bed", "untrusted"])
    ap.add_argument("--ca-cert")
    ap.add_argument("--ca-key")
    ap.add_argument("--digest", default="")
    ap.add_argument("--log", required=True)
    ap.add_argument("--ttl", type=int, default=180)
    ap.add_argument("--parent-pid", type=int, default=None)
    State.args = a = ap.parse_args()
    # The keys are loaded into the SSL contexts at once; the files go before serving starts.
    with tempfile.TemporaryDirectory(prefix="astro-sha-hostile-") as tmp:
        State.ports["aux"] = serve(AuxHandler, a.aux_tls, tmp, "aux")
        State.ports["registry"] = serve(Handler, a.tls, tmp, "registry")
    print(json.dumps(State.ports), flush=True)
    watchdog(a.ttl, a.parent_pid if a.parent_pid is not None else os.getppid())


if __name__ == "__main__":
    sys.exit(main())
