#!/usr/bin/env bash
# The Debian packages the demo and the test suite use: redis-server, nginx (deployment tests), chromium (browser
# tests), node (the JS client's unit tests). Installs what is missing when run as root; otherwise says what to install.
set -euo pipefail
need=()
for pkg in redis-server nginx-light chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)  # htmx and Turbo for the live-HTML tests and the demo's board
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ws4redis: please install these Debian packages first: ${need[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
