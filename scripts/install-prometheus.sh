#!/bin/sh
# Install Prometheus and promtool from the Debian package unless both are already on PATH.
# Idempotent and non-interactive: the test setup runs it in CI as root with no stdin.
# Recommended packages (the node exporter) are left out; the tests need only the two
# binaries, and they start their own Prometheus on a free port.
set -eu

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "install-prometheus: found $(command -v prometheus) and $(command -v promtool); nothing to do"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-prometheus: prometheus or promtool is missing and installing needs root; run as root" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-prometheus: apt-get not found; install Prometheus 2.x by hand (prometheus and promtool on PATH)" >&2
    exit 1
fi

echo "install-prometheus: prometheus or promtool missing; installing the Debian package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q </dev/null
apt-get install -y -q --no-install-recommends prometheus </dev/null

for tool in prometheus promtool; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-prometheus: $tool is still missing after installing the package" >&2
        exit 1
    fi
done
echo "install-prometheus: installed $(prometheus --version 2>&1 | head -n 1)"
