#!/bin/sh
# build/copy-tree.sh DEST: copies the source tree into DEST (made if missing) without what .gitignore names (build
# output), the git metadata, or built packages: what a source package or a fresh machine's checkout holds.
set -eu
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: build/copy-tree.sh DEST" >&2; exit 2; }
mkdir -p "$1"
sed 's#/$##' .gitignore | tar -c --exclude=./.git --exclude='./libapache2-mod-bbauth_*' -X - . | tar -x -C "$1"
