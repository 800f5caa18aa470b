#!/usr/bin/env bash
# The Debian packages `make test` needs beyond Python and Node.js, installed only when missing:
# chromium (the browser tests drive Debian's chromium, never a downloaded browser) and nginx (the
# gateway). apt-get, through sudo unless run as root.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system-packages: ${missing[*]} missing and no apt-get here: install them first" >&2
  exit 1
fi
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
echo "ensure-system-packages: installing Debian packages: ${missing[*]}" >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
