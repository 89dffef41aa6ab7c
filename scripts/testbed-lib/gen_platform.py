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

--pods-per-release N (issue 18's fleet) adds N pods per release shaped like the airflow chart's
KubernetesExecutor task pods and workers: ~40 env vars (plain and from Secrets), node affinity
and pod anti-affinity, tolerations, a dozen volumes and their mounts, resources, probes and a
security context, a log-groomer sidecar: about 16 KB of JSON each once the API server has added
its defaults and the managedFields of the create. --output json writes one JSON object per line
(kubectl create -f reads that too).
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
    ap.add_argument("--pods-per-release", type=int, default=0,
                    help="fleet-shaped pods per release (issue 18), besides the scheduler pod")
    ap.add_argument("--prefix", default="bench", help="release names start with this")
    ap.add_argument("--first", type=int, default=0, help="number of the first release (to shard)")
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

    for i in range(args.first, args.first + args.releases):
        release = f"{args.prefix}-{i:03d}-{['quasaric', 'eccentric', 'galactic', 'nebular'][i % 4]}"
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
        for j in range(args.pods_per_release):
            docs.append(json.dumps(fleet_pod(ns, release, image, j)))
    sys.stdout.write("---\n".join(d if d.endswith("\n") else d + "\n" for d in docs))


def fleet_pod(ns, release, image, j):
    """A KubernetesExecutor task pod / worker as the airflow chart renders one (issue 18's shape)."""
    component = "worker" if j % 4 == 0 else "task"
    labels = {"tier": "airflow", "component": component, "release": release,
              "airflow-worker": str(100000 + j), "dag_id": f"etl_pipeline_{j % 7}",
              "task_id": f"load_partition_{j}", "try_number": "1", "kubernetes_executor": "True",
              "airflow_version": "2.10.5-astro.1", "run_id": f"scheduled__2026-12-05T07{j % 60:02d}0000-0000"}
    env = []
    for k in range(28):
        env.append({"name": f"AIRFLOW__CORE__OPTION_{k}", "value": f"value-{k}"})
    for k in range(8):
        env.append({"name": f"AIRFLOW_VAR_SETTING_{k}", "value": f"s{k}"})
    for name, path in (("AIRFLOW__CORE__SQL_ALCHEMY_CONN", "connection"), ("AIRFLOW__CORE__FERNET_KEY", "fernet-key"),
                       ("AIRFLOW__WEBSERVER__SECRET_KEY", "webserver-secret-key"), ("AIRFLOW_CONN_AIRFLOW_DB", "connection")):
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": f"{release}-airflow-metadata", "key": path}}})
    volumes = [
        {"name": "config", "configMap": {"name": f"{release}-airflow-config"}},
        {"name": "pod-template", "configMap": {"name": f"{release}-pod-template"}},
        {"name": "logs", "emptyDir": {"sizeLimit": "10Gi"}},
        {"name": "dags", "persistentVolumeClaim": {"claimName": f"{release}-dags"}},
        {"name": "git-sync-ssh-key", "secret": {"secretName": f"{release}-git-sync-ssh", "defaultMode": 288}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
        {"name": "ca-certificates", "secret": {"secretName": "platform-ca-bundle"}},
        {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}},
    ]
    mounts = [{"name": v["name"], "mountPath": f"/usr/local/airflow/{v['name']}", "readOnly": k % 2 == 0}
              for k, v in enumerate(volumes)]
    resources = {"limits": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "2Gi"},
                 "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"}}
    security = {"runAsUser": 50000, "runAsGroup": 0, "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{release}-etl-pipeline-load-partition-{j:03d}-{(j * 7919) % 100000:05d}",
            "namespace": ns, "labels": labels,
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
                            "checksum/airflow-config": "3f" * 32, "checksum/pod-template": "a9" * 32,
                            "dag_id": f"etl_pipeline_{j % 7}", "task_id": f"load_partition_{j}",
                            "run_id": labels["run_id"], "try_number": "1"},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 600,
            "securityContext": {"runAsUser": 50000, "fsGroup": 0, "runAsNonRoot": True},
            "nodeSelector": {"astronomer.io/multi-tenant": "false", "kubernetes.io/os": "linux"},
            "tolerations": [{"key": "astronomer", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
                            {"key": "dynamic-pods", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "astronomer.io/node-pool", "operator": "In", "values": ["dynamic-pods", "airflow-workers"]},
                                          {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                     "labelSelector": {"matchLabels": {"component": component, "release": release, "tier": "airflow"}}}}]},
            },
            "volumes": volumes,
            "initContainers": [{"name": "wait-for-airflow-migrations", "image": image,
                                "args": ["airflow", "db", "check-migrations", "--migration-wait-timeout=60"],
                                "resources": resources, "securityContext": security,
                                "volumeMounts": mounts[:2]}],
            "containers": [
                {"name": "base", "image": image, "imagePullPolicy": "IfNotPresent",
                 "args": ["airflow", "tasks", "run", f"etl_pipeline_{j % 7}", f"load_partition_{j}",
                          labels["run_id"], "--local", "--subdir", "DAGS_FOLDER/etl_pipeline.py"],
                 "env": env, "resources": resources, "securityContext": security, "volumeMounts": mounts,
                 "ports": [{"name": "worker-logs", "containerPort": 8793, "protocol": "TCP"}],
                 "livenessProbe": {"exec": {"command": ["sh", "-c", "exec /entrypoint python -m celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d celery@$(hostname)"]},
                                   "initialDelaySeconds": 10, "periodSeconds": 60, "timeoutSeconds": 20, "failureThreshold": 5}},
                {"name": "worker-log-groomer", "image": image, "args": ["bash", "/clean-logs"],
                 "env": [{"name": "AIRFLOW__LOG_RETENTION_DAYS", "value": "15"}, {"name": "AIRFLOW_HOME", "value": "/usr/local/airflow"}],
                 "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
                 "securityContext": security, "volumeMounts": [mounts[2]]},
            ],
        },
    }


if __name__ == "__main__":
    main()
