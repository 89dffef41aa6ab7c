#!/usr/bin/env bash
# Installs everything the local test bed needs on a fresh Debian 12 machine, and builds the upstream
# kube-apiserver from Debian's source package once, into a cache outside the checkout.
# Idempotent: every step checks before it acts. Needs root (apt-get).
set -euo pipefail

CACHE_DIR=${ASTRO_SHA_CACHE:-/var/cache/astro-sha-testbed}
APISERVER_BIN="$CACHE_DIR/bin/kube-apiserver"
PKGS=(etcd-server etcd-client golang-go dpkg-dev rsync make openssl curl jq
      docker-registry skopeo umoci apache2-utils python3 python3-cryptography
      zsh fish  # zsh and fish: the completion tests load the generated scripts into each shell
      time)     # time: peak RSS in scripts/bench

log() { printf '[testbed install] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

src_list=/etc/apt/sources.list.d/astro-sha-debsrc.sources
need_update=0
if [ ! -f "$src_list" ]; then
  log "adding deb-src entries for Debian bookworm (needed to build kube-apiserver from source)"
  as_root tee "$src_list" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_update=1
fi

if [ ${#missing[@]} -gt 0 ] || [ "$need_update" = 1 ] || [ ! -x "$APISERVER_BIN" ]; then
  log "apt-get update"
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$APISERVER_BIN" ]; then
  log "building kube-apiserver from Debian's kubernetes source package (one time, ~5 min on 2 cores)"
  as_root mkdir -p "$CACHE_DIR/bin" "$CACHE_DIR/src" "$CACHE_DIR/gocache"
  cd "$CACHE_DIR/src"
  if ! ls -d kubernetes-*/ >/dev/null 2>&1; then
    apt-get source --download-only kubernetes >/dev/null 2>&1 || apt-get source --download-only kubernetes
    dpkg-source -x --no-check kubernetes_*.dsc >/dev/null
  fi
  tree=$(ls -d kubernetes-*/ | head -1)
  cd "$tree"
  mkdir -p .go/src/k8s.io
  ln -sfn ../../.. .go/src/k8s.io/kubernetes
  GOPATH=$PWD/.go GOCACHE="$CACHE_DIR/gocache" GOPROXY=off GO111MODULE=off CGO_ENABLED=0 \
    make WHAT=cmd/kube-apiserver >"$CACHE_DIR/build.log" 2>&1 || {
      log "kube-apiserver build failed; last lines of $CACHE_DIR/build.log:"; tail -30 "$CACHE_DIR/build.log" >&2; exit 1; }
  cp "$(find _output -type f -name kube-apiserver | head -1)" "$APISERVER_BIN.tmp"
  mv "$APISERVER_BIN.tmp" "$APISERVER_BIN"
  log "kube-apiserver cached at $APISERVER_BIN"
fi
log "ready"
