#!/usr/bin/env bash
# Installs everything the local test bed needs on a fresh Debian 12 machine, and builds the upstream
# kube-apiserver from Debian's source package once, into a cache outside the checkout.
# Idempotent: every step checks before it acts. Needs root (apt-get).
set -euo pipefail

CACHE_DIR=${ASTRO_SHA_CACHE:-/var/cache/astro-sha-testbed}
APISERVER_BIN="$CACHE_DIR/bin/kube-apiserver"
PKGS=(etcd-server etcd-client golang-go dpkg-dev rsync make openssl curl jq
      docker-registry skopeo umoci apache2-utils python3 python3-cryptography
      golang-github-modern-go-reflect2-dev  # 1.0.2 replaces the vendored 1.0.1 (see build_apiserver)
      zsh fish   # the completion tests load the generated scripts into each shell
      time)      # peak RSS in scripts/bench

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

# The build recipe. Its own text, Go's version and reflect2's package version make the cache key:
# a machine that built kube-apiserver with an older recipe rebuilds it instead of keeping the old
# binary (issue 20: the first recipe's binary crashed under load).
build_apiserver() {
  cd "$CACHE_DIR/src"
  if ! ls -d kubernetes-*/ >/dev/null 2>&1; then
    apt-get source --download-only kubernetes >/dev/null 2>&1 || apt-get source --download-only kubernetes
    dpkg-source -x --no-check kubernetes_*.dsc >/dev/null
  fi
  tree=$(ls -d kubernetes-*/ | head -1)
  cd "$tree"
  # Go 1.19's map internals vs the vendored github.com/modern-go/reflect2 v1.0.1 (written before Go
  # 1.18): json-iterator's sorted map encoder walks maps through reflect2, and with 1.0.1 the API
  # server dies under load ("unexpected fault address ... aeshashbody ... mapiterinit ...
  # reflect2.(*UnsafeMapType).UnsafeIterate", seen listing 10,000 pods). Debian's 1.0.2 supports
  # Go >= 1.18 (upstream modern-go/reflect2 release notes for v1.0.2).
  rsync -a --delete /usr/share/gocode/src/github.com/modern-go/reflect2/ vendor/github.com/modern-go/reflect2/
  mkdir -p .go/src/k8s.io
  ln -sfn ../../.. .go/src/k8s.io/kubernetes
  GOPATH=$PWD/.go GOCACHE="$CACHE_DIR/gocache" GOPROXY=off GO111MODULE=off CGO_ENABLED=0 \
    make WHAT=cmd/kube-apiserver >"$CACHE_DIR/build.log" 2>&1 || {
      log "kube-apiserver build failed; last lines of $CACHE_DIR/build.log:"; tail -30 "$CACHE_DIR/build.log" >&2; exit 1; }
  cp "$(find _output -type f -name kube-apiserver | head -1)" "$APISERVER_BIN.tmp"
  mv "$APISERVER_BIN.tmp" "$APISERVER_BIN"
}

recipe_key() {
  { declare -f build_apiserver
    dpkg-query -W -f='${Version}\n' golang-go golang-github-modern-go-reflect2-dev 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}

key_file="$APISERVER_BIN.recipe"
built_with() { [ -x "$APISERVER_BIN" ] && [ -f "$key_file" ] && [ "$(cat "$key_file")" = "$(recipe_key)" ]; }

if [ ${#missing[@]} -gt 0 ] || [ "$need_update" = 1 ] || [ ! -x "$APISERVER_BIN" ]; then
  log "apt-get update"
  as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! built_with; then
  if [ -x "$APISERVER_BIN" ]; then
    log "kube-apiserver at $APISERVER_BIN was built by another recipe; rebuilding (~2 min)"
  else
    log "building kube-apiserver from Debian's kubernetes source package (one time, ~5 min on 2 cores)"
  fi
  as_root mkdir -p "$CACHE_DIR/bin" "$CACHE_DIR/src" "$CACHE_DIR/gocache"
  (build_apiserver)
  recipe_key >"$key_file"
  log "kube-apiserver cached at $APISERVER_BIN (recipe $(cut -c1-12 "$key_file"))"
fi
log "ready"
