#!/bin/sh
# Installs the Debian 12 packages that building, testing and the demo need.
# Idempotent: packages already present are not fetched again; apt-get update runs only when something is missing.
set -eu

BUILD_PKGS="make gcc pkg-config apache2 apache2-dev libcurl4-openssl-dev libssl-dev libjansson-dev"
TEST_PKGS="libcmocka-dev openssl curl python3 python3-pytest python3-requests python3-jwt python3-oauthlib
 python3-cryptography python3-selenium python3-prometheus-client chromium chromium-driver"
CLIENT_PKGS="composer php-cli python3-pip memcached redis-server"
# clang's libFuzzer: CI runs `make fuzz-smoke`.
FUZZ_PKGS="clang libclang-rt-14-dev"
BENCH_PKGS="wrk valgrind"

wanted="$BUILD_PKGS $TEST_PKGS $CLIENT_PKGS $FUZZ_PKGS"
case "${1:-}" in
  --bench) wanted="$wanted $BENCH_PKGS" ;;
  --build-only) wanted="$BUILD_PKGS" ;;
esac

# Measured against when it installs (make bench); optional: the benchmark notes its absence.
OPTIONAL_BENCH_PKGS="libapache2-mod-auth-openidc"

missing=""
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
# npm: the machine may already have Node.js from elsewhere, which conflicts with Debian's npm package.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
optional=""
if [ "${1:-}" = "--bench" ]; then
  for pkg in $OPTIONAL_BENCH_PKGS; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || optional="$optional $pkg"
  done
fi
[ -z "$missing$optional" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "build/deps.sh: installing:$missing$optional"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
[ -z "$missing" ] || $SUDO apt-get install -y -q --no-install-recommends $missing
for pkg in $optional; do
  $SUDO apt-get install -y -q --no-install-recommends "$pkg" || echo "build/deps.sh: $pkg did not install (optional)"
done
