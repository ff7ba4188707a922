#!/bin/sh
# tests/fresh/check.sh: the README's test command on a clean Debian 12 root (debootstrap --variant=minbase from this
# machine's apt mirror, entered with chroot in a mount namespace of its own). In that root, with only `make` added:
#   1. as a user without sudo, `make test` stops at once, with one line naming the command to run;
#   2. as root, `make deb` installs only what building the package needs and builds it, lintian passing;
#   3. as root, `make test` installs what it needs (build/deps.sh) and runs: the unit tests, the fake Bitbucket's
#      tests and the integration tests that FRESH_PYTEST_ARGS selects (default: the logins and make install).
# Services installed there never start (policy-rc.d), so nothing listens on this machine's ports but the tests'.
#
#   tests/fresh/check.sh [dir]      as root; dir defaults to .build/fresh-root, made once and reused (apt's
#                                   packages stay in it: a second run checks that deps.sh is fast when all is there)
set -eu
cd "$(dirname "$0")/../.."

root=${1:-.build/fresh-root}
default_pytest_args='-k "test_login or test_install"'
pytest_args=${FRESH_PYTEST_ARGS:-$default_pytest_args}
[ "$(id -u)" -eq 0 ] || { echo "tests/fresh/check.sh: run as root (debootstrap, chroot)" >&2; exit 1; }

mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
if [ ! -x "$root/usr/bin/apt-get" ]; then
    debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}"
fi
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"

# The tree as a checkout has it: without build output.
rm -rf "$root/src"
build/copy-tree.sh "$root/src"

in_root() {
    unshare --mount --fork sh -c 'mount -t proc proc "$0/proc" && mount -t tmpfs tmpfs "$0/dev/shm" &&
                                  exec chroot "$0" "$@"' "$root" "$@"
}

echo "== the fresh root: only make added"
in_root apt-get update -q
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make
uid=$(in_root sh -c 'id -u tester >/dev/null 2>&1 || useradd -m tester; id -u tester')
in_root chown -R tester: /src

if in_root dpkg-query -W -f='${Status}' gcc 2>/dev/null | grep -q "install ok installed"; then
    echo "== (skipped: make test as a user without sudo; this root is no longer fresh: delete $root for it)"
else
    echo "== make test as a user without sudo (uid $uid): stops at once"
    if in_root su -s /bin/sh tester -c 'cd /src && make test' > "$root/user-make-test.log" 2>&1; then
        echo "FAIL: make test went on without its packages"; cat "$root/user-make-test.log"; exit 1
    fi
    cat "$root/user-make-test.log"
    grep -q '^build/deps.sh: missing Debian packages:.*; run as root first: build/deps.sh$' "$root/user-make-test.log" \
        || { echo "FAIL: no line naming build/deps.sh"; exit 1; }
    [ "$(grep -vc '^make' "$root/user-make-test.log")" -eq 2 ] \
        || { echo "FAIL: more than the command and one line"; exit 1; }
fi

echo "== make deb as root: installs its tools, builds the package, lintian passes"
in_root sh -c 'cd /src && make deb'
in_root sh -c 'dpkg-deb -I /src/libapache2-mod-bbauth_*.deb control'

echo "== make test as root: installs what it needs, then tests ($pytest_args)"
in_root sh -c "cd /src && make test PYTEST_ARGS='$pytest_args'"
echo "== again: build/deps.sh finds everything"
start=$(date +%s)
in_root sh -c 'cd /src && build/deps.sh'
echo "build/deps.sh took $(( $(date +%s) - start )) s with everything there"
echo "== fresh root check passed"
