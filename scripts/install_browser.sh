#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test of the Import/Export page (tests/test_ui_server.py),
# only when no Chromium is on the PATH. .ci/run calls it before `make test`.
# Needs apt-get and root (or sudo); without them it says so and the browser test skips itself.
set -euo pipefail

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "install_browser: $name is already installed ($(command -v "$name"))"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: no apt-get on this machine; install Chromium yourself, else the browser test is skipped" >&2
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_browser: not root and no sudo; install Chromium yourself, else the browser test is skipped" >&2
        exit 0
    fi
    as_root=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y chromium
echo "install_browser: installed $(command -v chromium)"
