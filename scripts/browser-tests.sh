#!/bin/sh
# The browser suite: the JS SDK and the demo page in real headless Chromium against a real
# switchboard server, inside a loopback-only network namespace (nothing leaves the machine).
#
#   scripts/browser-tests.sh            build, install what is missing, run everything
#   TEST=errors scripts/browser-tests.sh   only the tests whose name contains "errors"
#
# Needs root (apt-get, unshare -n; the resume tests add veth pairs, a second network namespace
# and nftables rules, all inside the suite's namespace; the TURN tests run coturn on its
# loopback). Environment: SWITCHBOARD_BIN to test another server binary (skips the cargo build),
# CHROMIUM for another browser binary, SWITCHBOARD_LOG for the server's log filter. Logs and
# screenshots land in artifacts/.
set -eu

cd "$(dirname "$0")/.."

if [ -z "${SWITCHBOARD_BIN:-}" ]; then
    echo "== building switchboard"
    cargo build -p switchboard-server
fi

if [ -z "${CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
    echo "== installing chromium"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if ! command -v ip >/dev/null 2>&1 || ! command -v unshare >/dev/null 2>&1 || ! command -v nsenter >/dev/null 2>&1; then
    echo "== installing iproute2 and util-linux (ip, unshare, nsenter)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2 util-linux
fi

# The resume tests cut a member's WebSocket and UDP with nftables inside the namespace.
if ! command -v nft >/dev/null 2>&1; then
    echo "== installing nftables"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nftables
fi

# The TURN tests run coturn's turnserver binary themselves (on loopback, inside the namespace),
# never the packaged service: where the package's install started it under systemd, it is
# stopped and disabled again.
if ! command -v turnserver >/dev/null 2>&1; then
    echo "== installing coturn"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y coturn
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet coturn 2>/dev/null; then
        systemctl disable --now coturn
    fi
fi

echo "== npm ci (tests/browser)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# The SDK's TypeScript declarations must compile (strict), with every type they name declared.
echo "== tsc: the SDK's declarations (crates/control/web/sdk/*.d.ts)"
tests/browser/node_modules/.bin/tsc --noEmit --strict --lib es2022,dom crates/control/web/sdk/switchboard.d.ts

mkdir -p artifacts
echo "== running in a loopback-only network namespace"
exec unshare -n sh -c 'ip link set lo up && exec node tests/browser/run.mjs'
