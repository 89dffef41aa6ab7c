#!/usr/bin/env python3
"""A tiny Docker/OCI registry token server for the astro-sha test bed (like quay.io's).

Implements the Docker "token authentication" flow that CNCF distribution's
`auth: token` expects (https://distribution.github.io/distribution/spec/auth/token/):

    GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...][&account=A]
    POST /token   (OAuth2 form: grant_type=password|refresh_token, service, scope, username, password)

and answers {"token", "access_token", "expires_in", "issued_at"}. Tokens are ES256 JWTs with an
`x5c` header holding the signing certificate (the registry's `rootcertbundle` trusts it).

Policy:
  * anonymous                      -> `pull` on any repository, nothing else
  * HTTP Basic with a known user   -> pull, push, delete (and `registry:catalog:*`)
  * HTTP Basic with a wrong secret -> 401

Every issued token appends one JSON line to --log, e.g.
  {"time": "...", "authenticated": false, "account": "", "service": "astro-sha-testbed",
   "scopes": ["repository:runtime:pull"], "repositories": ["runtime"],
   "access": [{"type": "repository", "name": "runtime", "actions": ["pull"]}]}
so tests can count tokens per repository, e.g.
  jq -c 'select(.repositories | index("runtime"))' "$ASTRO_SHA_TESTBED_DIR/logs/token-server.log" | wc -l

Only binds the loopback address it is given. Uses python3-cryptography.
"""
import argparse
import base64
import datetime
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

TOKEN_TTL = 300
PRIVILEGED_ACTIONS = {"pull", "push", "delete", "*"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    def __init__(self, key_path, cert_path):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(self.key, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"{key_path}: need an EC P-256 key for ES256")
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "ES256", "x5c": self.x5c}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = self.key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def parse_scope(scope: str):
    """'repository:foo/bar:pull,push' -> ('repository', 'foo/bar', ['pull', 'push'])."""
    try:
        typ, rest = scope.split(":", 1)
        name, actions = rest.rsplit(":", 1)
    except ValueError:
        return None
    typ = typ.split("(", 1)[0]  # 'repository(plugin)' -> 'repository'
    return typ, name, [a for a in actions.split(",") if a]


class Handler(BaseHTTPRequestHandler):
    server_version = "astro-sha-testbed-token/1"
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------
    def log_message(self, fmt, *args):  # access log to stderr (the process log), short
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def reply(self, code, body: dict, extra_headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def unauthorized(self, why):
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": why}]},
                   {"WWW-Authenticate": 'Basic realm="astro-sha-testbed-token"'})

    def basic_credentials(self):
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(h[6:].strip()).decode().partition(":")
        except Exception:  # noqa: BLE001 - malformed header = bad credentials
            return ("", "\0bad")
        return user, password

    # -- endpoints --------------------------------------------------------------------------
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in ("/healthz", "/"):
            self.reply(200, {"status": "ok"})
            return
        if url.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        q = parse_qs(url.query)
        creds = self.basic_credentials()
        self.issue(q.get("service", [""])[0], q.get("scope", []), creds,
                   q.get("account", [""])[0])

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        scopes = [s for raw in form.get("scope", []) for s in raw.split(" ") if s]
        creds = self.basic_credentials()
        if creds is None and form.get("grant_type", [""])[0] == "password":
            creds = (form.get("username", [""])[0], form.get("password", [""])[0])
        self.issue(form.get("service", [""])[0], scopes, creds, form.get("username", [""])[0])

    def issue(self, service, scopes, creds, account):
        cfg = self.server.cfg
        authenticated = False
        if creds is not None:
            user, password = creds
            if cfg.users.get(user) != password:
                self.unauthorized("invalid username or password")
                return
            authenticated = True
            account = user
        if service and service != cfg.service:
            self.reply(400, {"errors": [{"code": "DENIED", "message": f"unknown service {service!r}"}]})
            return
        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            typ, name, actions = parsed
            if typ == "repository":
                allowed = PRIVILEGED_ACTIONS if authenticated else {"pull"}
            elif typ == "registry" and name == "catalog":
                allowed = {"*"} if authenticated else set()
            else:
                allowed = set()
            granted = [a for a in actions if a in allowed]
            access.append({"type": typ, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": account if authenticated else "",
            "aud": cfg.service,
            "exp": now + TOKEN_TTL,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = cfg.signer.sign(claims)
        issued_at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        line = {
            "time": issued_at,
            "authenticated": authenticated,
            "account": account if authenticated else "",
            "service": cfg.service,
            "scopes": list(scopes),
            "repositories": [a["name"] for a in access if a["type"] == "repository"],
            "access": access,
        }
        with cfg.log_lock:
            with open(cfg.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.reply(200, {"token": token, "access_token": token, "expires_in": TOKEN_TTL,
                         "issued_at": issued_at})


class Config:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5003)
    ap.add_argument("--key", required=True, help="EC P-256 private key (PEM)")
    ap.add_argument("--cert", required=True, help="certificate of that key (PEM), sent as x5c")
    ap.add_argument("--issuer", default="astro-sha-testbed-token-issuer")
    ap.add_argument("--service", default="astro-sha-testbed")
    ap.add_argument("--user", action="append", default=[], metavar="USER:PASSWORD",
                    help="an account allowed to push (repeatable)")
    ap.add_argument("--log", required=True, help="file to append one JSON line per issued token")
    args = ap.parse_args()
    if args.addr not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("token_server.py only binds loopback addresses")

    cfg = Config()
    cfg.signer = Signer(args.key, args.cert)
    cfg.issuer = args.issuer
    cfg.service = args.service
    cfg.users = dict(u.split(":", 1) for u in args.user)
    cfg.log_path = args.log
    cfg.log_lock = threading.Lock()
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    httpd = ThreadingHTTPServer((args.addr, args.port), Handler)
    httpd.cfg = cfg
    sys.stderr.write(f"token server listening on http://{args.addr}:{args.port}/token "
                     f"(service={cfg.service}, issuer={cfg.issuer})\n")
    sys.stderr.flush()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
