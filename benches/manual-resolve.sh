#!/usr/bin/env bash
# The manual procedure the plugin replaces, scripted as an operator would run it: for each image
# reference on stdin, fetch the raw manifest with skopeo (anonymous, --tls-verify=false as for the
# bed's plain-HTTP registries), compute its digest with `skopeo manifest-digest`, and list the
# platforms of an index with jq. Prints `REF DIGEST PLATFORMS` per line.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while read -r ref; do
  [ -n "$ref" ] || continue
  # to a file: $(...) would strip a trailing newline and change the digest
  skopeo inspect --raw --tls-verify=false "docker://$ref" >"$tmp/manifest.json"
  digest=$(skopeo manifest-digest "$tmp/manifest.json")
  platforms=$(jq -r '[.manifests[]?.platform | "\(.os)/\(.architecture)\(if .variant then "/" + .variant else "" end)"] | join(",")' "$tmp/manifest.json")
  printf '%s %s %s\n' "$ref" "$digest" "${platforms:--}"
done
