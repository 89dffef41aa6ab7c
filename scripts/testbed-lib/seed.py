#!/usr/bin/env python3
"""Seed the astro-sha test bed (called by `scripts/testbed seed`; idempotent, deterministic).

1. Push one tiny image per Runtime version of tests/fixtures/catalog/runtime-releases.json:
   runtimeVersions   -> <push registry>/astronomer/astro-runtime:<version>
   runtimeVersionsV3 -> <push registry>/runtime:<version>
   kind cycling oci-manifest, oci-index, docker-list, docker-v2s2 by catalog index; the versions
   in MISSING are left unpushed on purpose.
2. Drift: runtime:3.1-1 pushed with salt "old", then re-pushed with salt "new".
3. Render tests/fixtures/platform/*.yaml (${VAR} placeholders), apply them with
   `kubectl apply --server-side --field-manager=helm --force-conflicts`, create one Pod per Airflow
   workload and write its status (imageID = digest that runs) through pods/status.
4. Write $DIR/seed.json:
   {
     "catalog": "tests/fixtures/catalog/runtime-releases.json",
     "registry": "127.0.0.1:5000",                       # where images were pushed
     "registries": {"plain": .., "basic": .., "token": .., "tls": ..},  # all share one storage
     "repositories": {"runtimeVersions": "astronomer/astro-runtime", "runtimeVersionsV3": "runtime"},
     "images": [{"repository", "tag", "section", "kind", "mediaType", "digest",
                 "platforms": {"linux/amd64": .., "linux/arm64": ..}  # {} for single manifests
               }, ...],                                  # catalog order, current digests
     "missing": [{"repository", "tag", "section"}, ...], # in the catalog, never pushed
     "drift": {"repository": "runtime", "tag": "3.1-1", "kind", "old_digest", "old_platforms",
               "digest", "platforms"},                   # digest = where the tag points now
     "platform": {"namespace", "release", "houstonDeployment", "houstonContainer",
                  "houstonConfigMap", "helmReleaseSecret", "chartName", "chartVersion",
                  "registry": "127.0.0.1:5002",          # registry the fixture images name
                  "releases": {"<release>": {
                     "namespace", "airflowMajor", "repository", "tag", "runtimeImage",
                     "currentDigest", "pinnedDigest" (null if tag-only), "oldDigest" (drifted only),
                     "expectedState": "tag-only" | "pinned" | "drifted",
                     "workloads"/"cronJobs": [{"kind", "name", "component", "runtimeContainers",
                                               "runtimeInitContainers", "otherImages"}],
                     "configMaps": [{"name", "keys"}],   # keys whose text holds runtimeImage
                     "pods": [{"name", "workload", "kind", "runningDigest" (null: no Runtime),
                               "imageIDs": {"<container>": "<reg>/<repo>@sha256:.."}}]}}}
   }
Digests do not depend on the registry host/port (content = repository:tag + kind + salt).
"""
import argparse
import base64
import gzip
import hashlib
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time
import types
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import push  # noqa: E402  (sibling module)

KINDS = ("oci-manifest", "oci-index", "docker-list", "docker-v2s2")
A2_REPO = "astronomer/astro-runtime"
A3_REPO = "runtime"
# Catalog versions deliberately NOT pushed (tests for "tag not found in the registry").
MISSING = [(A2_REPO, "4.2.3"), (A2_REPO, "10.7.0"), (A3_REPO, "3.0-2"), (A3_REPO, "3.1-9")]
DRIFT = (A3_REPO, "3.1-1")
FIXED_TIME = "2025-03-03T10:20:00Z"


def log(msg):
    print(f"[testbed] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"ERROR: {msg}")
    sys.exit(1)


# ------------------------------------------------------------------------------------------------
# Kubernetes REST (for what kubectl makes awkward: pods/status, deletecollection)
# ------------------------------------------------------------------------------------------------
class Kube:
    def __init__(self, api, token, ca):
        u = urllib.parse.urlsplit(api)
        self.host, self.port = u.hostname, u.port or 443
        self.ctx = ssl.create_default_context(cafile=ca)
        self.token = token
        self.conn = None

    def call(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError) as e:
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    die(f"{method} {path}: {e}")
        if resp.status not in ok:
            return resp.status, raw
        return resp.status, (json.loads(raw) if raw else None)

    def must(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        status, out = self.call(method, path, body, content_type, ok)
        if status not in ok:
            die(f"{method} {path} -> HTTP {status}: {out[:500].decode(errors='replace')}")
        return out

    def apply(self, path, obj, manager):
        q = urllib.parse.urlencode({"fieldManager": manager, "force": "true"})
        return self.call("PATCH", f"{path}?{q}", obj, "application/apply-patch+yaml")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def parse_image(image):
    """'reg/repo:tag@sha256:..' -> (registry, repository, tag|None, digest|None)."""
    name, digest = (image.split("@", 1) + [None])[:2]
    registry, _, path = name.partition("/")
    tag = None
    if ":" in path:
        path, tag = path.rsplit(":", 1)
    return registry, path, tag, digest


def fake_digest(image):
    return "sha256:" + hashlib.sha256(f"astro-sha testbed fake digest {image}".encode()).hexdigest()


def render(text, variables, where):
    def sub(m):
        key = m.group(1)
        if key not in variables:
            die(f"{where}: unknown placeholder ${{{key}}}")
        return variables[key]
    return re.sub(r"\$\{([A-Z0-9_]+)\}", sub, text)


def helm_release_data(path):
    """Secret `data.release` value: base64(base64(gzip(json))) - Helm's own base64(gzip(json)),
    base64-encoded once more because a Secret's `data` holds base64."""
    with open(path, encoding="utf-8") as f:
        release = json.load(f)
    raw = json.dumps(release, separators=(",", ":")).encode()
    buf = gzip.compress(raw, compresslevel=9, mtime=0)
    helm_string = base64.b64encode(buf)
    return base64.b64encode(helm_string).decode()


def kubectl(args, kubeconfig, stdin=None):
    cmd = ["kubectl", "--kubeconfig", kubeconfig, "--context", "testbed-admin"] + args
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        die(f"{' '.join(cmd)} failed (rc {p.returncode}):\n{p.stderr.strip()}\n{p.stdout.strip()[-2000:]}")
    return p.stdout


# ------------------------------------------------------------------------------------------------
# 1+2: images
# ------------------------------------------------------------------------------------------------
def seed_images(args, catalog):
    entries = [("runtimeVersions", A2_REPO, t) for t in catalog.get("runtimeVersions", {})] + \
              [("runtimeVersionsV3", A3_REPO, t) for t in catalog.get("runtimeVersionsV3", {})]
    batch, meta = [], []
    for index, (section, repo, tag) in enumerate(entries):
        if (repo, tag) in MISSING:
            continue
        kind = KINDS[index % len(KINDS)]
        ref = f"{args.push_registry}/{repo}:{tag}"
        if (repo, tag) == DRIFT:
            batch.append((ref, kind, "old"))
            meta.append(None)  # old push: recorded as drift.old_digest only
            batch.append((ref, kind, "new"))
        else:
            batch.append((ref, kind, ""))
        meta.append((section, repo, tag))
    if DRIFT not in [(r, t) for _, r, t in entries]:
        die(f"catalog has no {DRIFT[0]}:{DRIFT[1]} entry for the drift scenario")

    pusher = push.Pusher(types.SimpleNamespace(scheme=None, cacert=None, user=None))
    t0 = time.time()
    try:
        # drift already in place (tag at the "new" digest, "old" manifest still stored)? then
        # do not move the tag back and forth again: same end state, no registry writes
        drift_ref = f"{args.push_registry}/{DRIFT[0]}:{DRIFT[1]}"
        drift_items = [b for b in batch if b[0] == drift_ref]
        plans = {salt: push.build(DRIFT[0], DRIFT[1], kind, salt) for _, kind, salt in drift_items}
        digests = {salt: push.sha256(p["top"][0]) for salt, p in plans.items()}
        reg = pusher.registry(args.push_registry)
        if (reg.manifest_digest(DRIFT[0], DRIFT[1]) == digests["new"]
                and reg.manifest_digest(DRIFT[0], digests["old"]) == digests["old"]):
            batch = [b for b in batch if b[0] != drift_ref]
            results = push.run_batch(pusher, batch, jobs=8)
            for pos, (_, kind, salt) in zip([i for i, m in enumerate(meta) if m is None or m[1:] == DRIFT],
                                            drift_items):
                results.insert(pos, {"ref": drift_ref, "kind": kind, "salt": salt, "digest": digests[salt],
                                     "mediaType": plans[salt]["top"][1], "pushed": False,
                                     "platforms": {pl: push.sha256(d) for pl, d, _ in plans[salt]["children"]}})
        else:
            results = push.run_batch(pusher, batch, jobs=8)
    except push.PushError as e:
        die(f"pushing images to {args.push_registry} failed: {e}")
    pushed = sum(1 for r in results if r["pushed"])
    log(f"images: {len(results)} pushes checked, {pushed} uploaded, in {time.time() - t0:.1f}s "
        f"({len(MISSING)} catalog versions deliberately left out)")

    images, current, drift_old = [], {}, None
    for m, r in zip(meta, results):
        if m is None:
            drift_old = r
            continue
        section, repo, tag = m
        img = {"repository": repo, "tag": tag, "section": section, "kind": r["kind"],
               "mediaType": r["mediaType"], "digest": r["digest"], "platforms": r["platforms"]}
        images.append(img)
        current[(repo, tag)] = img
    drift = {"repository": DRIFT[0], "tag": DRIFT[1], "kind": current[DRIFT]["kind"],
             "old_digest": drift_old["digest"], "old_platforms": drift_old["platforms"],
             "digest": current[DRIFT]["digest"], "platforms": current[DRIFT]["platforms"]}
    missing = [{"repository": r, "tag": t,
                "section": "runtimeVersions" if r == A2_REPO else "runtimeVersionsV3"} for r, t in MISSING]
    return images, current, drift, missing


# ------------------------------------------------------------------------------------------------
# 3: cluster
# ------------------------------------------------------------------------------------------------
WORKLOADS = (("apps/v1", "deployments", "Deployment"), ("apps/v1", "statefulsets", "StatefulSet"))


def release_image(rel, reg, current, drift):
    repo, tag = rel["repository"], rel["tag"]
    if (repo, tag) not in current:
        die(f"release {rel['release']}: {repo}:{tag} was not seeded")
    if rel["reference"] == "tag":
        return f"{reg}/{repo}:{tag}"
    if rel["reference"] == "current-digest":
        return f"{reg}/{repo}:{tag}@{current[(repo, tag)]['digest']}"
    if rel["reference"] == "drift-old-digest":
        if (repo, tag) != (drift["repository"], drift["tag"]):
            die(f"release {rel['release']}: drift-old-digest only exists for {drift['repository']}:{drift['tag']}")
        return f"{reg}/{repo}:{tag}@{drift['old_digest']}"
    die(f"release {rel['release']}: unknown reference {rel['reference']!r}")


def reset_namespaces(kube, namespaces):
    kinds = [("/api/v1", "pods"), ("/apis/apps/v1", "deployments"), ("/apis/apps/v1", "statefulsets"),
             ("/apis/apps/v1", "replicasets"), ("/apis/batch/v1beta1", "cronjobs"), ("/apis/batch/v1", "jobs"),
             ("/api/v1", "configmaps"), ("/api/v1", "secrets")]
    for ns in namespaces:
        for prefix, plural in kinds:
            status, _ = kube.call("DELETE", f"{prefix}/namespaces/{ns}/{plural}", ok=(200, 404))
        log(f"reset: emptied namespace {ns}")


def make_pod(workload, kind):
    meta, tmpl = workload["metadata"], workload["spec"]["template"]
    ns, name = meta["namespace"], meta["name"]
    pod_name = f"{name}-0" if kind == "StatefulSet" else f"{name}-abc12"
    labels = dict(tmpl["metadata"].get("labels", {}))
    spec = json.loads(json.dumps(tmpl["spec"]))
    spec["automountServiceAccountToken"] = False
    if kind == "StatefulSet":
        labels["statefulset.kubernetes.io/pod-name"] = pod_name
        spec["hostname"] = pod_name
        spec["subdomain"] = workload["spec"].get("serviceName", name)
        vols = spec.setdefault("volumes", [])
        have = {v["name"] for v in vols}
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            cname = claim["metadata"]["name"]
            if cname not in have:
                vols.append({"name": cname, "persistentVolumeClaim": {"claimName": f"{cname}-{pod_name}"}})
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": pod_name, "namespace": ns, "labels": labels},
           "spec": spec}
    if tmpl["metadata"].get("annotations"):
        pod["metadata"]["annotations"] = dict(tmpl["metadata"]["annotations"])
    return pod


def container_status(pod_name, c, image_id, init):
    cid = "containerd://" + hashlib.sha256(f"{pod_name}/{c['name']}".encode()).hexdigest()
    st = {"name": c["name"], "image": c["image"], "imageID": image_id, "containerID": cid,
          "ready": True, "restartCount": 0}
    if init:
        st["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": FIXED_TIME,
                                      "finishedAt": FIXED_TIME, "containerID": cid}}
    else:
        st["started"] = True
        st["state"] = {"running": {"startedAt": FIXED_TIME}}
    return st


def seed_cluster(args, fixtures, releases_cfg, current, drift):
    reg = args.fixture_registry
    kube = Kube(args.api, args.token, args.ca)
    platform = releases_cfg["platform"]
    releases = releases_cfg["releases"]

    # --- render
    common = {"REG": reg}
    for var, fname in platform.get("helmReleases", {}).items():
        common[var] = helm_release_data(os.path.join(fixtures, fname))
    docs = []
    for fname in platform["templates"]:
        with open(os.path.join(fixtures, fname), encoding="utf-8") as f:
            docs.append(render(f.read(), common, fname))
    release_images = {}
    for rel in releases:
        image = release_image(rel, reg, current, drift)
        release_images[rel["release"]] = image
        _, repo, tag, _ = parse_image(image)
        variables = dict(common, RUNTIME_IMAGE=image, RUNTIME_REPOSITORY=f"{reg}/{repo}", RUNTIME_TAG=tag)
        with open(os.path.join(fixtures, rel["template"]), encoding="utf-8") as f:
            docs.append(render(f.read(), variables, rel["template"]))
    rendered = "\n---\n".join(d.strip("\n") for d in docs) + "\n"
    os.makedirs(os.path.join(args.dir, "platform"), exist_ok=True)
    rendered_path = os.path.join(args.dir, "platform", "rendered.yaml")
    with open(rendered_path, "w", encoding="utf-8") as f:
        f.write(rendered)

    namespaces = [platform["namespace"]] + [r["namespace"] for r in releases]
    if args.reset:
        reset_namespaces(kube, namespaces)

    # --- apply (server-side apply, field manager "helm": no last-applied annotation, like Helm)
    t0 = time.time()
    out = kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=helm",
                   "-f", rendered_path], args.kubeconfig)
    log(f"platform fixture applied ({len(out.splitlines())} objects, {time.time() - t0:.1f}s); "
        f"rendered copy: {rendered_path}")

    # --- a `default` ServiceAccount in every namespace (no controller-manager makes them)
    # Namespaces being deleted (tests clean up after themselves) refuse new content: skip them.
    for ns in kube.must("GET", "/api/v1/namespaces")["items"]:
        n = ns["metadata"]["name"]
        if ns.get("status", {}).get("phase") == "Terminating" or ns["metadata"].get("deletionTimestamp"):
            continue
        status, body = kube.apply(f"/api/v1/namespaces/{n}/serviceaccounts/default",
                                  {"apiVersion": "v1", "kind": "ServiceAccount",
                                   "metadata": {"name": "default", "namespace": n}},
                                  "kube-controller-manager")
        if status not in (200, 201):
            die(f"creating ServiceAccount default in {n}: HTTP {status}: {body[:300]!r}")

    # --- pods + status
    platform_facts = {k: v for k, v in platform.items() if k not in ("templates", "helmReleases")}
    platform_facts["registry"] = reg
    platform_facts["releases"] = {}
    pod_count = 0
    for rel in releases:
        ns, name = rel["namespace"], rel["release"]
        image = release_images[name]
        _, repo, tag, pinned = parse_image(image)
        cur = current[(repo, tag)]["digest"]
        running_default = pinned or cur
        runtime_prefix = f"{reg}/{repo}"

        def is_runtime(img):
            r, p, _, _ = parse_image(img)
            return f"{r}/{p}" == runtime_prefix

        facts = {"namespace": ns, "airflowMajor": rel["airflowMajor"], "repository": repo, "tag": tag,
                 "runtimeImage": image, "currentDigest": cur, "pinnedDigest": pinned,
                 "expectedState": rel["expectedState"], "workloads": [], "cronJobs": [],
                 "configMaps": [], "pods": []}
        if rel["reference"] == "drift-old-digest":
            facts["oldDigest"] = drift["old_digest"]

        def describe(kind, obj, pod_spec):
            return {"kind": kind, "name": obj["metadata"]["name"],
                    "component": obj["metadata"].get("labels", {}).get("component"),
                    "runtimeContainers": [c["name"] for c in pod_spec.get("containers", []) if is_runtime(c["image"])],
                    "runtimeInitContainers": [c["name"] for c in pod_spec.get("initContainers", []) if is_runtime(c["image"])],
                    "otherImages": sorted({c["image"] for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", [])
                                           if not is_runtime(c["image"])})}

        sel = urllib.parse.urlencode({"labelSelector": f"tier=airflow,release={name}"})
        for api, plural, kind in WORKLOADS:
            items = kube.must("GET", f"/apis/{api}/namespaces/{ns}/{plural}?{sel}")["items"]
            for wl in sorted(items, key=lambda o: o["metadata"]["name"]):
                facts["workloads"].append(describe(kind, wl, wl["spec"]["template"]["spec"]))
                pod = make_pod(wl, kind)
                pname = pod["metadata"]["name"]
                ppath = f"/api/v1/namespaces/{ns}/pods/{pname}"
                status, body = kube.apply(ppath, pod, "kube-controller-manager")
                if status == 422:  # pod spec is immutable: recreate it
                    kube.must("DELETE", ppath + "?gracePeriodSeconds=0", ok=(200, 202, 404))
                    status, body = kube.apply(ppath, pod, "kube-controller-manager")
                if status not in (200, 201):
                    die(f"applying Pod {ns}/{pname}: HTTP {status}: {body[:500]!r}")
                override = rel.get("runningOverrides", {}).get(wl["metadata"]["name"])
                run_digest = {"current-digest": cur, "drift-old-digest": drift["old_digest"],
                              None: running_default}.get(override)
                if run_digest is None:
                    die(f"release {name}: unknown running override {override!r}")

                def image_id(img):
                    r, p, _, _ = parse_image(img)
                    if is_runtime(img):
                        return f"{r}/{p}@{run_digest}"
                    return f"{r}/{p}@{fake_digest(img)}"

                spec = pod["spec"]
                status_body = {"status": {
                    "phase": "Running",
                    "startTime": FIXED_TIME,
                    "conditions": [{"type": t, "status": "True", "lastTransitionTime": FIXED_TIME}
                                   for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                    "initContainerStatuses": [container_status(pname, c, image_id(c["image"]), True)
                                              for c in spec.get("initContainers", [])],
                    "containerStatuses": [container_status(pname, c, image_id(c["image"]), False)
                                          for c in spec.get("containers", [])],
                }}
                q = urllib.parse.urlencode({"fieldManager": "kubelet"})
                kube.must("PATCH", f"{ppath}/status?{q}", status_body, "application/merge-patch+json")
                pod_count += 1
                runtime_ids = {c["name"]: image_id(c["image"])
                               for c in spec.get("initContainers", []) + spec.get("containers", [])
                               if is_runtime(c["image"])}
                facts["pods"].append({
                    "name": pname, "workload": wl["metadata"]["name"], "kind": kind,
                    "runningDigest": run_digest if runtime_ids else None,
                    "imageIDs": runtime_ids})
        items = kube.must("GET", f"/apis/batch/v1beta1/namespaces/{ns}/cronjobs?{sel}")["items"]
        for cj in sorted(items, key=lambda o: o["metadata"]["name"]):
            facts["cronJobs"].append(describe("CronJob", cj, cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        for cm in kube.must("GET", f"/api/v1/namespaces/{ns}/configmaps?{sel}")["items"]:
            keys = sorted(k for k, v in (cm.get("data") or {}).items() if image in v)
            if keys:
                facts["configMaps"].append({"name": cm["metadata"]["name"], "keys": keys})
        platform_facts["releases"][name] = facts
    log(f"cluster: {pod_count} pods with status written in {len(releases)} Airflow namespaces")
    return platform_facts


# ------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--push-registry", required=True)
    ap.add_argument("--fixture-registry", required=True)
    ap.add_argument("--registries", default="", help="flavour=host:port,... recorded in seed.json")
    ap.add_argument("--api", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--reset", action="store_true",
                    help="first delete pods/workloads/configmaps/secrets in the fixture namespaces")
    args = ap.parse_args()

    catalog_path = os.path.join(args.root, "tests", "fixtures", "catalog", "runtime-releases.json")
    fixtures = os.path.join(args.root, "tests", "fixtures", "platform")
    with open(catalog_path, encoding="utf-8") as f:
        catalog = json.load(f)
    with open(os.path.join(fixtures, "releases.json"), encoding="utf-8") as f:
        releases_cfg = json.load(f)

    t0 = time.time()
    images, current, drift, missing = seed_images(args, catalog)
    platform_facts = seed_cluster(args, fixtures, releases_cfg, current, drift)

    seed = {
        "catalog": os.path.relpath(catalog_path, args.root),
        "registry": args.push_registry,
        "registries": dict(kv.split("=", 1) for kv in args.registries.split(",") if kv),
        "repositories": {"runtimeVersions": A2_REPO, "runtimeVersionsV3": A3_REPO},
        "images": images,
        "missing": missing,
        "drift": drift,
        "platform": platform_facts,
    }
    out = os.path.join(args.dir, "seed.json")
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(seed, f, indent=2)
        f.write("\n")
    os.replace(out + ".tmp", out)
    log(f"wrote {out} ({len(images)} images, {len(missing)} missing) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
