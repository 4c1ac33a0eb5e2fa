#!/usr/bin/env bash
# Test setup only (never `just up`): the chat page's browser test drives Debian's chromium through
# Playwright. `playwright install` would download a browser; nothing is downloaded outside the
# package managers, so the browser comes from the system's packages. Installs it when run as root
# on a Debian-like system; otherwise says what to install.
set -euo pipefail
if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium for the browser test (apt-get) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
else
  echo "note: chromium is not installed; the chat page's browser test will fail until it is" \
       "(Debian/Ubuntu: sudo apt-get install chromium)" >&2
fi
