#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright cannot download its own browsers here):
# install it when it is missing and we are root; otherwise say which command would.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium: $CHROMIUM is missing; installing Debian's chromium package ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "chromium: $CHROMIUM is missing and could not be installed here; the browser tests need it:" >&2
echo "  sudo apt-get install -y chromium" >&2
exit 1
