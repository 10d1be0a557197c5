#!/usr/bin/env bash
# Installs what the test suite needs, when it is missing. Idempotent, and quiet when
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

missing=()
have redis-server || missing+=(redis-server)
have nginx || missing+=(nginx)
have chromium || missing+=(chromium)
have docker-compose || missing+=(docker-compose)
have node || missing+=(nodejs)
have npm || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Without refreshing the package lists first when that works: much faster on a fresh image.
  if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ -f tests/browser/package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
