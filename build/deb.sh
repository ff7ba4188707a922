#!/bin/sh
# build/deb.sh: builds the Debian source and binary packages of the module (dpkg-buildpackage with debhelper and
# dh_apache2, from debian/) in a copy of the tree under .build/deb/ (build/copy-tree.sh), checks them with lintian
# (no error allowed), and copies the .deb here: then `apt install ./libapache2-mod-bbauth_<version>_<arch>.deb`.
set -eu
cd "$(dirname "$0")/.."

version=$(dpkg-parsechangelog -S Version)
out=.build/deb
src=$out/libapache2-mod-bbauth-$version

rm -rf "$out"
build/copy-tree.sh "$src"
(cd "$src" && dpkg-buildpackage -us -uc --build=source,binary)
lintian --fail-on error --info "$out"/libapache2-mod-bbauth_"$version"_*.changes
cp "$out"/libapache2-mod-bbauth_"$version"_*.deb .
ls -1 "$out"/libapache2-mod-bbauth_"$version"* ./libapache2-mod-bbauth_"$version"_*.deb
