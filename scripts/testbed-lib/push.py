#!/usr/bin/env python3
"""Build tiny deterministic images and push them straight to a registry (HTTP API v2).

    push.py REF [--kind oci-manifest|oci-index|docker-list|docker-v2s2] [--salt S]
        prints the top-level digest, then for indexes/lists one line per platform:
            sha256:<top>
            linux/amd64 sha256:<child>
            linux/arm64 sha256:<child>

    push.py --batch FILE [--out FILE] [--jobs N]
        FILE has lines `REF KIND [SALT]` ('#' comments and blank lines ignored); writes a JSON
        array with one object per line, in input order:
            {"ref", "registry", "repository", "tag", "kind", "salt", "digest",
             "mediaType", "platforms": {"linux/amd64": "sha256:..", ...}, "pushed": bool}
        Lines with the same REF are pushed in file order (so a tag can be moved); different
        REFs are pushed in parallel.

Content is derived from repository:tag + kind + salt (NOT from the registry host, so the same
image has the same digest on every registry/port). Same inputs -> same bytes -> same digests;
a different salt -> different digests. The digest is sha256 of the exact manifest bytes PUT.
An image whose tag already points at the expected digest is not uploaded again ("pushed": false).

Layer = gzip(tar) with mtime 0 everywhere; config JSON has a fixed `created`.
Kinds:
  oci-manifest  application/vnd.oci.image.manifest.v1+json
  oci-index     application/vnd.oci.image.index.v1+json, children OCI manifests linux/amd64 + linux/arm64
  docker-v2s2   application/vnd.docker.distribution.manifest.v2+json
  docker-list   application/vnd.docker.distribution.manifest.list.v2+json, children Docker schema2

Transport: http for registries listed in $ASTRO_SHA_INSECURE_REGISTRY (comma separated; default
127.0.0.1:5000,127.0.0.1:5001,127.0.0.1:5002), https otherwise, trusting --cacert /
$ASTRO_SHA_REGISTRY_CA. On 401 it answers Basic challenges and the Bearer token flow with
--user / $ASTRO_SHA_PUSH_USER (default testuser:testpassword).
"""
import argparse
import base64
import concurrent.futures
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import ssl
import sys
import tarfile
import threading
import urllib.parse

KINDS = ("oci-manifest", "oci-index", "docker-list", "docker-v2s2")

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ALL_MANIFEST_TYPES = ", ".join([MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST])

PLATFORMS = (("amd64", None), ("arm64", "v8"))
DEFAULT_INSECURE = "127.0.0.1:5000,127.0.0.1:5001,127.0.0.1:5002"


class PushError(Exception):
    pass


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"


# ---------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------
REF_RE = re.compile(r"^(?P<registry>[^/]+)/(?P<repo>[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
                    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$")


def parse_ref(ref: str):
    m = REF_RE.match(ref)
    if not m:
        raise PushError(f"not a reference REGISTRY/REPOSITORY[:TAG]: {ref!r}")
    registry = m.group("registry")
    if "." not in registry and ":" not in registry and registry != "localhost":
        raise PushError(f"reference must start with a registry host[:port]: {ref!r}")
    return registry, m.group("repo"), m.group("tag") or "latest"


# ---------------------------------------------------------------------------------------------
# image building (pure, deterministic)
# ---------------------------------------------------------------------------------------------
def make_layer(text: str):
    payload = text.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("etc/astro-sha-testbed", None), ("etc/astro-sha-testbed/image.txt", payload)):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as g:
        g.write(tar_bytes)
    return gz.getvalue(), sha256(tar_bytes)


def make_image(identity: str, arch: str, variant, docker: bool):
    """Returns (manifest_bytes, media_type, blobs{digest: bytes})."""
    text = f"astro-sha testbed image\n{identity}\nplatform=linux/{arch}{'/' + variant if variant else ''}\n"
    layer, diff_id = make_layer(text)
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/true"],
            "Labels": {"io.astronomer.astro-sha.testbed": identity},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "astro-sha testbed push.py"}],
    }
    if variant:
        config["variant"] = variant
    config_bytes = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_DOCKER_MANIFEST if docker else MT_OCI_MANIFEST,
        "config": {"mediaType": MT_DOCKER_CONFIG if docker else MT_OCI_CONFIG,
                   "digest": sha256(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": MT_DOCKER_LAYER if docker else MT_OCI_LAYER,
                    "digest": sha256(layer), "size": len(layer)}],
    }
    blobs = {sha256(config_bytes): config_bytes, sha256(layer): layer}
    return canonical(manifest), manifest["mediaType"], blobs


def build(repo: str, tag: str, kind: str, salt: str):
    """Returns a plan: {"top": (bytes, mt), "children": [(platform, bytes, mt)], "blobs": {..}}."""
    if kind not in KINDS:
        raise PushError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    identity = f"ref={repo}:{tag} kind={kind} salt={salt}"
    if kind in ("oci-manifest", "docker-v2s2"):
        data, mt, blobs = make_image(identity, "amd64", None, kind == "docker-v2s2")
        return {"top": (data, mt), "children": [], "blobs": blobs}
    docker = kind == "docker-list"
    children, blobs, entries = [], {}, []
    for arch, variant in PLATFORMS:
        data, mt, b = make_image(identity, arch, variant, docker)
        blobs.update(b)
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        children.append((f"linux/{arch}", data, mt))
        entries.append({"mediaType": mt, "digest": sha256(data), "size": len(data), "platform": platform})
    index = {"schemaVersion": 2, "mediaType": MT_DOCKER_LIST if docker else MT_OCI_INDEX,
             "manifests": entries}
    return {"top": (canonical(index), index["mediaType"]), "children": children, "blobs": blobs}


# ---------------------------------------------------------------------------------------------
# registry client
# ---------------------------------------------------------------------------------------------
class Registry:
    """One keep-alive connection to one registry (use one instance per thread)."""

    def __init__(self, host, scheme, cafile, user):
        self.host, self.scheme, self.cafile, self.user = host, scheme, cafile, user
        self.conn = None
        self.auth = None          # None | ("basic", header) | ("bearer", realm, service)
        self.tokens = {}          # repo -> "Bearer ..."

    def _connect(self):
        hostname, _, port = self.host.rpartition(":") if ":" in self.host else (self.host, "", "")
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.cafile) if self.cafile else ssl.create_default_context()
            return http.client.HTTPSConnection(hostname, int(port or 443), timeout=30, context=ctx)
        return http.client.HTTPConnection(hostname, int(port or 80), timeout=30)

    def _raw(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp, data
            except (http.client.HTTPException, ConnectionError, OSError) as e:
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise PushError(f"{method} {self.scheme}://{self.host}{path}: {e}") from e
        raise AssertionError("unreachable")

    def _credentials_header(self):
        return "Basic " + base64.b64encode(self.user.encode()).decode()

    def _authorization(self, repo):
        if self.auth is None:
            return None
        if self.auth[0] == "basic":
            return self.auth[1]
        if repo not in self.tokens:
            _, realm, service = self.auth
            query = urllib.parse.urlencode({"service": service, "scope": f"repository:{repo}:pull,push"})
            url = urllib.parse.urlsplit(realm)
            tok = Registry(url.netloc, url.scheme, self.cafile, self.user)
            resp, data = tok._raw("GET", f"{url.path}?{query}",
                                  headers={"Authorization": self._credentials_header()})
            if resp.status != 200:
                raise PushError(f"token server {realm} answered {resp.status}: {data[:300]!r}")
            body = json.loads(data)
            self.tokens[repo] = "Bearer " + (body.get("token") or body["access_token"])
        return self.tokens[repo]

    def request(self, method, repo, path, body=None, headers=None, ok=(200,)):
        headers = dict(headers or {})
        for attempt in (1, 2):
            auth = self._authorization(repo)
            if auth:
                headers["Authorization"] = auth
            resp, data = self._raw(method, path, body, headers)
            if resp.status == 401 and attempt == 1:
                challenge = resp.getheader("WWW-Authenticate", "")
                if challenge.lower().startswith("basic"):
                    self.auth = ("basic", self._credentials_header())
                elif challenge.lower().startswith("bearer"):
                    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
                    self.auth = ("bearer", params.get("realm", ""), params.get("service", ""))
                    self.tokens.pop(repo, None)
                else:
                    raise PushError(f"{method} {path}: 401 with challenge {challenge!r}")
                continue
            if resp.status not in ok:
                raise PushError(f"{method} {self.scheme}://{self.host}{path}: HTTP {resp.status}: "
                                f"{data[:400].decode(errors='replace')}")
            return resp, data
        raise PushError(f"{method} {self.scheme}://{self.host}{path}: still 401 after authenticating "
                        f"as {self.user.split(':', 1)[0]!r}")

    def manifest_digest(self, repo, reference):
        resp, _ = self.request("HEAD", repo, f"/v2/{repo}/manifests/{reference}",
                               headers={"Accept": ALL_MANIFEST_TYPES}, ok=(200, 404))
        return resp.getheader("Docker-Content-Digest") if resp.status == 200 else None

    def put_blob(self, repo, digest, data):
        resp, _ = self.request("HEAD", repo, f"/v2/{repo}/blobs/{digest}", ok=(200, 404))
        if resp.status == 200:
            return
        resp, _ = self.request("POST", repo, f"/v2/{repo}/blobs/uploads/", body=b"",
                               headers={"Content-Length": "0"}, ok=(202,))
        loc = urllib.parse.urlsplit(resp.getheader("Location"))
        query = (loc.query + "&" if loc.query else "") + urllib.parse.urlencode({"digest": digest})
        self.request("PUT", repo, f"{loc.path}?{query}", body=data,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(len(data))}, ok=(201,))

    def put_manifest(self, repo, reference, data, media_type):
        resp, _ = self.request("PUT", repo, f"/v2/{repo}/manifests/{reference}", body=data,
                               headers={"Content-Type": media_type, "Content-Length": str(len(data))},
                               ok=(201,))
        got = resp.getheader("Docker-Content-Digest")
        if got and got != sha256(data):
            raise PushError(f"registry stored {repo}:{reference} as {got}, expected {sha256(data)}")


def push_one(reg: Registry, ref, kind, salt):
    registry, repo, tag = parse_ref(ref)
    plan = build(repo, tag, kind, salt)
    top, top_mt = plan["top"]
    digest = sha256(top)
    result = {"ref": ref, "registry": registry, "repository": repo, "tag": tag, "kind": kind,
              "salt": salt, "digest": digest, "mediaType": top_mt,
              "platforms": {p: sha256(d) for p, d, _ in plan["children"]}, "pushed": False}
    if reg.manifest_digest(repo, tag) == digest:
        return result
    for blob_digest, data in plan["blobs"].items():
        reg.put_blob(repo, blob_digest, data)
    for _, data, mt in plan["children"]:
        reg.put_manifest(repo, sha256(data), data, mt)
    reg.put_manifest(repo, tag, top, top_mt)
    result["pushed"] = True
    return result


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
class Pusher:
    def __init__(self, args):
        self.insecure = {h.strip() for h in
                         (os.environ.get("ASTRO_SHA_INSECURE_REGISTRY") or DEFAULT_INSECURE).split(",") if h.strip()}
        self.scheme = args.scheme
        self.cafile = args.cacert or os.environ.get("ASTRO_SHA_REGISTRY_CA") or None
        if self.cafile and not os.path.exists(self.cafile):
            self.cafile = None
        self.user = args.user or os.environ.get("ASTRO_SHA_PUSH_USER") or "testuser:testpassword"
        self.local = threading.local()

    def registry(self, host) -> Registry:
        cache = getattr(self.local, "regs", None)
        if cache is None:
            cache = self.local.regs = {}
        if host not in cache:
            scheme = self.scheme or ("http" if host in self.insecure else "https")
            cache[host] = Registry(host, scheme, self.cafile, self.user)
        return cache[host]

    def push(self, ref, kind, salt):
        return push_one(self.registry(parse_ref(ref)[0]), ref, kind, salt)


def read_batch(path):
    items = []
    with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise PushError(f"{path}:{lineno}: want `REF KIND [SALT]`, got {line!r}")
            items.append((parts[0], parts[1], parts[2] if len(parts) == 3 else ""))
    return items


def run_batch(pusher, items, jobs):
    groups = {}
    for i, (ref, kind, salt) in enumerate(items):
        groups.setdefault(ref, []).append((i, ref, kind, salt))
    results = [None] * len(items)

    def work(group):
        for i, ref, kind, salt in group:
            results[i] = pusher.push(ref, kind, salt)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        for fut in [ex.submit(work, g) for g in groups.values()]:
            fut.result()
    return results


def main():
    ap = argparse.ArgumentParser(description="push tiny deterministic test images (astro-sha testbed)")
    ap.add_argument("ref", nargs="?", help="REGISTRY/REPOSITORY[:TAG]")
    ap.add_argument("--kind", default="oci-manifest", choices=KINDS)
    ap.add_argument("--salt", default="")
    ap.add_argument("--batch", metavar="FILE", help="lines `REF KIND [SALT]` ('-' = stdin)")
    ap.add_argument("--out", metavar="FILE", help="batch: write the JSON here instead of stdout")
    ap.add_argument("--jobs", type=int, default=8, help="batch: parallel connections (default 8)")
    ap.add_argument("--scheme", choices=("http", "https"), help="force the scheme for every registry")
    ap.add_argument("--cacert", help="PEM CA for https registries (default $ASTRO_SHA_REGISTRY_CA)")
    ap.add_argument("--user", help="USER:PASSWORD for registries that ask (default testuser:testpassword)")
    ap.add_argument("--dry-run", action="store_true", help="print the digests without pushing")
    args = ap.parse_args()
    if bool(args.ref) == bool(args.batch):
        ap.error("give either REF or --batch FILE")
    pusher = Pusher(args)
    try:
        if args.batch:
            items = read_batch(args.batch)
            if args.dry_run:
                results = []
                for ref, kind, salt in items:
                    _, repo, tag = parse_ref(ref)
                    plan = build(repo, tag, kind, salt)
                    results.append({"ref": ref, "kind": kind, "salt": salt, "digest": sha256(plan["top"][0]),
                                    "platforms": {p: sha256(d) for p, d, _ in plan["children"]}})
            else:
                results = run_batch(pusher, items, args.jobs)
            text = json.dumps(results, indent=2) + "\n"
            if args.out:
                with open(args.out + ".tmp", "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(args.out + ".tmp", args.out)
            else:
                sys.stdout.write(text)
            return
        if args.dry_run:
            _, repo, tag = parse_ref(args.ref)
            plan = build(repo, tag, args.kind, args.salt)
            res = {"digest": sha256(plan["top"][0]),
                   "platforms": {p: sha256(d) for p, d, _ in plan["children"]}}
        else:
            res = pusher.push(args.ref, args.kind, args.salt)
        print(res["digest"])
        for platform, digest in res["platforms"].items():
            print(f"{platform} {digest}")
    except PushError as e:
        print(f"push.py: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
