#!/usr/bin/env bash
# Install Debian's chromium for the viewer's browser tests, unless /usr/bin/chromium already
# starts. Exit 0 when it starts afterwards; non-zero with a message otherwise.
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ] && version=$("$CHROMIUM" --version 2>/dev/null); then
    echo "chromium already installed: $version"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install chromium: apt-get not found (not a Debian-based system)" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "cannot install chromium: not root and sudo is not available" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update; then
    echo "cannot install chromium: apt-get update failed" >&2
    exit 1
fi
if ! $SUDO apt-get install -y --no-install-recommends chromium; then
    echo "cannot install chromium: apt-get install chromium failed" >&2
    exit 1
fi

if ! version=$("$CHROMIUM" --version 2>/dev/null); then
    echo "cannot install chromium: package installed but $CHROMIUM does not start" >&2
    exit 1
fi
echo "chromium installed: $version"
