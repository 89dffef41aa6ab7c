#!/usr/bin/env bash
# The manual import the plugin replaces, scripted: resolve every Airflow 2 tag of a releases
# catalog with the skopeo loop (manual-resolve.sh), merge the digests into the catalog with jq,
# and store it as the ConfigMap Houston reads with kubectl.
#   manual-import.sh CATALOG REPOSITORY NAMESPACE CONFIGMAP
set -euo pipefail
catalog=$1 repo=$2 ns=$3 cm=$4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jq -r --arg repo "$repo" '.runtimeVersions | keys[] | "\($repo):\(.)"' "$catalog" \
  | "$here/manual-resolve.sh" >"$tmp/digests.txt"
# {"tag": "sha256:..."} from `REF DIGEST PLATFORMS` lines
jq -R -n '[inputs | split(" ") | {key: (.[0] | sub(".*:"; "")), value: .[1]}] | from_entries' \
  "$tmp/digests.txt" >"$tmp/digests.json"
jq --slurpfile d "$tmp/digests.json" \
  '.runtimeVersions |= with_entries(.value.sha256 = $d[0][.key])' "$catalog" >"$tmp/astro_runtime_releases.json"
kubectl -n "$ns" create configmap "$cm" --from-file="$tmp/astro_runtime_releases.json" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
