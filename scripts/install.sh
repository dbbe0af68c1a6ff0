#!/bin/sh
# install.sh: what `make install` does.
#   install.sh BUILD DESTDIR PREFIX SPLIT
# Installs the programs into DESTDIR/PREFIX/bin and the manual pages into
# DESTDIR/PREFIX/man. When installing for real (no DESTDIR) as root and
# the qmail accounts exist, qmail-queue becomes setuid qmailq as in
# qmail. Creating the accounts and the queue is a separate, documented
# step (qmail-instance for instances; the production step is planned).
set -eu
build=$1
dest=$2
prefix=$3
root=$dest$prefix

install -d -m 755 "$root" "$root/bin" "$root/control" "$root/users" \
	"$root/man"
for f in "$build"/bin/*; do
	install -m 755 "$f" "$root/bin/"
done
for page in doc/man/*.[1-8]; do
	[ -f "$page" ] || continue
	sec=${page##*.}
	install -d -m 755 "$root/man/man$sec"
	install -m 644 "$page" "$root/man/man$sec/"
done
if [ -z "$dest" ] && [ "$(id -u)" -eq 0 ] && id -u qmailq >/dev/null 2>&1; then
	chown qmailq "$root/bin/qmail-queue"
	chmod 4711 "$root/bin/qmail-queue"
fi
echo "install: installed into $root"
