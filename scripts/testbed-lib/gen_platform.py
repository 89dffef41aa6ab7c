#!/usr/bin/env python3
"""Generate a platform of N Airflow Deployments for the benchmarks (scripts/bench).

    gen_platform.py --releases 200 --pushed pushed.json --registry 127.0.0.1:5002 > platform.yaml

Each release gets its own namespace and is shaped like the airflow chart renders it (labels
tier=airflow, component, release): a scheduler Deployment (migrations init container, scheduler,
log-groomer sidecar on the Runtime image), webserver and triggerer Deployments on the Runtime
image, statsd and pgbouncer Deployments that are not the Runtime, the `<release>-config`
ConfigMap with the KubernetesExecutor pod template, one scheduler Pod (and the `default`
ServiceAccount it needs: the bed runs no controller-manager). That is 5 workloads
and 6 Runtime containers (template included) per release.

Releases use --distinct-tags tags of the pushed bench repository (round robin); every third
release is already pinned (repo:tag@digest), the others are on the tag only.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--releases", type=int, default=200)
    ap.add_argument("--pushed", required=True, help="JSON written by `scripts/testbed push --batch --out`")
    ap.add_argument("--registry", required=True, help="host:port the workloads pull from")
    ap.add_argument("--distinct-tags", type=int, default=20)
    args = ap.parse_args()

    pushed = json.load(open(args.pushed, encoding="utf-8"))
    tags = pushed[: args.distinct_tags]
    docs = []

    def labels(release, component, indent):
        pad = " " * indent
        return f"\n{pad}tier: airflow\n{pad}component: {component}\n{pad}release: {release}"

    def deployment(ns, release, component, containers, init=""):
        return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {release}-{component}
  namespace: {ns}
  labels:{labels(release, component, 4)}
spec:
  replicas: 1
  selector:
    matchLabels:{labels(release, component, 6)}
  template:
    metadata:
      labels:{labels(release, component, 8)}
    spec:{init}
      containers:{containers}
"""

    for i in range(args.releases):
        release = f"bench-{i:03d}-{['quasaric', 'eccentric', 'galactic', 'nebular'][i % 4]}"
        ns = f"astronomer-{release}"
        t = tags[i % len(tags)]
        image = f"{args.registry}/{t['repository']}:{t['tag']}"
        if i % 3 == 0:
            image = f"{image}@{t['digest']}"
        docs.append(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    platform-release: astronomer\n")
        # no controller-manager on the bed: the ServiceAccount the Pod's admission looks up
        docs.append(f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n")
        rt = lambda name, extra="": f"\n        - name: {name}\n          image: {image}{extra}"
        docs.append(deployment(
            ns, release, "scheduler",
            rt("scheduler") + rt("scheduler-log-groomer"),
            init="\n      initContainers:" + rt("wait-for-airflow-migrations"),
        ))
        docs.append(deployment(ns, release, "webserver", rt("webserver")))
        docs.append(deployment(ns, release, "triggerer", rt("triggerer")))
        docs.append(deployment(ns, release, "statsd",
                               "\n        - name: statsd\n          image: quay.io/prometheus/statsd-exporter:v0.26.1"))
        docs.append(deployment(ns, release, "pgbouncer",
                               "\n        - name: pgbouncer\n          image: quay.io/astronomer/ap-pgbouncer:1.24.1"))
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {release}-config
  namespace: {ns}
  labels:{labels(release, 'config', 4)}
data:
  airflow.cfg: |
    [core]
    executor = KubernetesExecutor
  pod_template_file.yaml: |
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: placeholder-name
      labels:
        tier: airflow
        component: worker
        release: {release}
    spec:
      containers:
        - args: []
          image: {image}
          imagePullPolicy: IfNotPresent
          name: base
      restartPolicy: Never
""")
        docs.append(f"""apiVersion: v1
kind: Pod
metadata:
  name: {release}-scheduler-0
  namespace: {ns}
  labels:{labels(release, 'scheduler', 4)}
spec:
  automountServiceAccountToken: false
  containers:
    - name: scheduler
      image: {image}
""")
    sys.stdout.write("---\n".join(docs))


if __name__ == "__main__":
    main()
