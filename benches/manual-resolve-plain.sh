#!/usr/bin/env bash
# The plainest manual resolve: for each image reference on stdin, `skopeo inspect --raw` piped into
# `skopeo manifest-digest` (no jq, no temp file: manifest-digest reads /dev/stdin). Prints
# `REF DIGEST` per line. The floor of what a skopeo loop costs per tag (two processes).
set -euo pipefail
while read -r ref; do
  [ -n "$ref" ] || continue
  digest=$(skopeo inspect --raw --tls-verify=false "docker://$ref" | skopeo manifest-digest /dev/stdin)
  printf '%s %s\n' "$ref" "$digest"
done
