#!/usr/bin/env bash
# Installs what the build and the browser, load-balancer and compose tests need, only when
# missing: make (jemalloc's build), nginx, Chromium, docker-compose and openssl (the Redis TLS
# tests' certificates) as Debian packages, and the npm packages of tests/browser.
# Idempotent and quiet when everything is already there; run as root (or with sudo).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }
have make || missing+=(make)
have nginx || missing+=(nginx)
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || missing+=(chromium)
have docker-compose || missing+=(docker-compose)
have redis-server || missing+=(redis-server)
have node || missing+=(nodejs)
have npm || missing+=(npm)
have openssl || missing+=(openssl)

if ((${#missing[@]})); then
  echo "install-test-deps: installing ${missing[*]}"
  sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Only the binary is wanted: the distribution's nginx service must not hold port 80.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null 2>&1; then
    "${sudo[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
fi

# npm ci only when node_modules does not match the committed lock file: every package of the
# lock (playwright-core, axe-core, ...) must be installed at the locked version and integrity.
browser="$root/tests/browser"
lock="$browser/package-lock.json"
stamp="$browser/node_modules/.package-lock.json"
lock_matches() {
  [[ -f "$stamp" && ! "$lock" -nt "$stamp" ]] || return 1
  node -e '
    const [want, have] = process.argv.slice(1).map((f) => require(f).packages ?? {});
    const stale = Object.entries(want).filter(([k, v]) => k !== "" && (
      !have[k] || have[k].version !== v.version || have[k].integrity !== v.integrity));
    process.exit(stale.length ? 1 : 0);
  ' "$lock" "$stamp"
}
if ! lock_matches; then
  echo "install-test-deps: npm ci in tests/browser"
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
