#!/usr/bin/env bash
# Install the pinned Go tools this project needs (nats-server x2, opa) into a cache
# outside the repo, and link them into .tools/bin. Idempotent: a cached build is reused.
#
# A user who already has the exact pinned version on PATH is not forced to build:
# the binary on PATH is linked instead. A user with neither the tool nor Go gets one
# clear message naming what to install.
set -euo pipefail

NATS_SERVER_VERSION="${NATS_SERVER_VERSION:-v2.15.3}"     # newest stable v2 on the module proxy
NATS_SERVER_210_VERSION="${NATS_SERVER_210_VERSION:-v2.10.27}" # oldest line with auth callout
OPA_VERSION="${OPA_VERSION:-v1.22.4}"                      # newest v1

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${NOC_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nats-opa-callout/tools}"
bin="$root/.tools/bin"
mkdir -p "$cache" "$bin"

log() { printf 'tools: %s\n' "$*" >&2; }

GO_MIN="1.26"  # the go directive of opa v1.22 and nats-server v2.15's go.mod

# go_ok: Go is installed and at least $GO_MIN (the builds run with GOTOOLCHAIN=local: no toolchain download)
go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v; v="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
  [ "$(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -1)" = "$GO_MIN" ]
}

# path_version NAME CMD... -> prints the version the binary on PATH reports, or nothing
on_path_version() {
  local name="$1"
  command -v "$name" >/dev/null 2>&1 || return 0
  case "$name" in
    nats-server) "$name" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/v\1/p' | head -1 ;;
    opa) "$name" version 2>/dev/null | sed -n 's/^Version: \([0-9][0-9.]*\).*/v\1/p' | head -1 ;;
  esac
}

# build_go NAME VERSION MODULE PKG LINKNAME
build_go() {
  local name="$1" version="$2" module="$3" pkg="$4" link="$5"
  local dir="$cache/$name-$version" out
  out="$dir/$name"
  if [ -x "$out" ]; then
    ln -sfn "$out" "$bin/$link"; return 0
  fi
  if [ "$(on_path_version "$name")" = "$version" ]; then
    log "using $name $version from PATH ($(command -v "$name"))"
    ln -sfn "$(command -v "$name")" "$bin/$link"; return 0
  fi
  log "building $name $version from the Go module proxy (first time only; a few minutes)"
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
    go mod init noc-tools-build >/dev/null 2>&1
    go get "$module@$version" >/dev/null
    mkdir -p "$dir"
    go build -trimpath -o "$out.tmp" "$pkg"
    mv "$out.tmp" "$out"
  )
  ln -sfn "$out" "$bin/$link"
  log "built $out"
}

# have NAME VERSION: a cached build or a matching binary on PATH exists
have() { [ -x "$cache/$1-$2/$1" ] || [ "$(on_path_version "$1")" = "$2" ]; }

missing=()
have nats-server "$NATS_SERVER_VERSION" || missing+=("nats-server $NATS_SERVER_VERSION")
have nats-server "$NATS_SERVER_210_VERSION" || missing+=("nats-server $NATS_SERVER_210_VERSION")
have opa "$OPA_VERSION" || missing+=("opa $OPA_VERSION")
if [ ${#missing[@]} -gt 0 ] && ! go_ok; then
  found="not installed"; command -v go >/dev/null 2>&1 && found="found $(go env GOVERSION 2>/dev/null)"
  {
    printf 'tools: need to build %s, which takes Go >= %s (%s).\n' "$(IFS=,; echo "${missing[*]}" | sed 's/,/, /g')" "$GO_MIN" "$found"
    printf 'tools: install Go >= %s from https://go.dev/dl (Debian bookworm'"'"'s golang is too old), or put those exact versions on PATH, then re-run '"'"'make tools'"'"'.\n' "$GO_MIN"
  } >&2
  exit 3
fi

build_go nats-server "$NATS_SERVER_VERSION" github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2 nats-server &
p1=$!
build_go nats-server "$NATS_SERVER_210_VERSION" github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2 nats-server-2.10 &
p2=$!
build_go opa "$OPA_VERSION" github.com/open-policy-agent/opa github.com/open-policy-agent/opa opa &
p3=$!
rc=0
wait $p1 || rc=$?
wait $p2 || rc=$?
wait $p3 || rc=$?
[ $rc -eq 0 ] || exit $rc

"$bin/nats-server" --version >/dev/null
"$bin/nats-server-2.10" --version >/dev/null
"$bin/opa" version >/dev/null
