#!/bin/sh
# Install Chromium from the Debian package unless it is already on PATH. The dashboard's
# browser test drives it with Playwright (executable_path=/usr/bin/chromium), because
# Playwright's own browser download cannot run where only package registries are reached.
# Idempotent and non-interactive: the test setup runs it in CI as root with no stdin.
# Recommended packages are left out; the test runs the browser headless.
set -eu

if command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: found $(command -v chromium); nothing to do"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: chromium is missing and installing needs root; run as root" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: apt-get not found; install Chromium by hand (chromium on PATH)" >&2
    exit 1
fi

echo "install-chromium: chromium missing; installing the Debian package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q </dev/null
apt-get install -y -q --no-install-recommends chromium </dev/null

if ! command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: chromium is still missing after installing the package" >&2
    exit 1
fi
echo "install-chromium: installed $(chromium --version 2>/dev/null | head -n 1)"
