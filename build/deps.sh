#!/bin/sh
# Installs the Debian 12 packages that building, testing and the demo need (--bench: and benchmarks and fuzzing;
# --build-only: building only; --deb: building the Debian package).
# Idempotent: packages already present are not fetched again; apt-get update runs only when something is missing.
set -eu

BUILD_PKGS="make gcc pkg-config apache2 apache2-dev libcurl4-openssl-dev libssl-dev libjansson-dev"
TEST_PKGS="libcmocka-dev openssl curl python3 python3-pytest python3-requests python3-jwt python3-oauthlib
 python3-cryptography python3-selenium python3-prometheus-client chromium chromium-driver"
CLIENT_PKGS="composer php-cli python3-pip memcached redis-server"
# clang's libFuzzer: CI runs `make fuzz-smoke`.
FUZZ_PKGS="clang libclang-rt-14-dev"
BENCH_PKGS="wrk valgrind"
# make deb: debian/control's Build-Depends (dh_apache2 comes with apache2-dev), build-essential (which
# dpkg-buildpackage always asks for), dpkg-buildpackage and lintian.
DEB_PKGS="build-essential dpkg-dev debhelper lintian libcmocka-dev"

wanted="$BUILD_PKGS $TEST_PKGS $CLIENT_PKGS $FUZZ_PKGS"
case "${1:-}" in
  --bench) wanted="$wanted $BENCH_PKGS" ;;
  --build-only) wanted="$BUILD_PKGS" ;;
  --deb) wanted="$BUILD_PKGS $DEB_PKGS" ;;
esac

# Measured against when it installs (make bench); optional: the benchmark notes its absence.
OPTIONAL_BENCH_PKGS="libapache2-mod-auth-openidc"

missing=""
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
# npm: the machine may already have Node.js from elsewhere, which conflicts with Debian's npm package.
case "${1:-}" in
  --build-only|--deb) ;;
  *) command -v npm >/dev/null 2>&1 || missing="$missing npm" ;;
esac
optional=""
if [ "${1:-}" = "--bench" ]; then
  for pkg in $OPTIONAL_BENCH_PKGS; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || optional="$optional $pkg"
  done
fi
[ -z "$missing$optional" ] && exit 0

# Root installs; a user installs through sudo when it needs no password or can ask for one here. Anyone else is
# told at once, in one line, what to run (make test, bench, fuzz and deb call this first).
if [ "$(id -u)" -eq 0 ]; then
  SUDO=
elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
  SUDO=sudo
elif [ -z "$missing" ]; then
  echo "build/deps.sh: optional packages not installed:$optional (as root: build/deps.sh${1:+ $1})"
  exit 0
else
  echo "build/deps.sh: missing Debian packages:$missing; run as root first: build/deps.sh${1:+ $1}" >&2
  exit 1
fi
echo "build/deps.sh: installing:$missing$optional"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
[ -z "$missing" ] || $SUDO apt-get install -y -q --no-install-recommends $missing
for pkg in $optional; do
  $SUDO apt-get install -y -q --no-install-recommends "$pkg" || echo "build/deps.sh: $pkg did not install (optional)"
done
