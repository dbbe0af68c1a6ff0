#!/bin/sh
# mkcert: make a self-signed certificate and key for a host name, in one
# file as control/servercert.pem holds them.
#
# The key and certificate are made by openssl req in a private
# temporary directory next to the target, joined, given mode 600 (and
# their owner), and renamed into place: a server never reads a partial
# file. An existing file is replaced only with -F, since it may be a
# certificate a CA signed. The host name is checked before it reaches
# openssl, and never reaches a shell unquoted.
set -eu

me=mkcert
home=${QMAILHOME:-@PREFIX@}
file=""
days=365
force=""
owner=""

usage() {
	echo "usage: $me [-F] [-d days] [-f file] [-o owner[:group]] host" >&2
	exit 100
}
die() {
	echo "$me: fatal: $*" >&2
	exit 111
}

while getopts Fd:f:o: opt; do
	case $opt in
	F) force=1 ;;
	d) days=$OPTARG ;;
	f) file=$OPTARG ;;
	o) owner=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
host=$1
case $days in
'' | *[!0-9]*) usage ;;
esac
case $host in
'' | .* | *..* | *[!A-Za-z0-9.:-]*) die "not a host name or address: $host" ;;
esac
case $owner in
*[!A-Za-z0-9._:-]*) die "not an owner: $owner" ;;
esac
case $host in
*:*) san="IP:$host" ;;
*[!0-9.]*) san="DNS:$host" ;;
*) san="IP:$host" ;;
esac
[ -n "$file" ] || file=$home/control/servercert.pem
if [ -e "$file" ] && [ -z "$force" ]; then
	die "$file exists; use -F to replace it"
fi

dir=$(dirname -- "$file")
[ -d "$dir" ] || die "no directory $dir"
umask 077
tmp=$(mktemp -d "$dir/.mkcert.XXXXXX") || die "unable to make a directory in $dir"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 111' HUP INT TERM

openssl req -x509 -newkey rsa:2048 -nodes -days "$days" \
	-subj "/CN=$host" -addext "subjectAltName=$san" \
	-addext "extendedKeyUsage=serverAuth,clientAuth" \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/errors" ||
	die "openssl req failed: $(cat "$tmp/errors")"
cat "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/servercert.pem" ||
	die "unable to write $tmp/servercert.pem"
chmod 600 "$tmp/servercert.pem"
if [ -n "$owner" ]; then
	chown "$owner" "$tmp/servercert.pem" || die "unable to chown to $owner"
fi
sync "$tmp/servercert.pem" 2>/dev/null || :
mv -f "$tmp/servercert.pem" "$file" || die "unable to move into $file"
echo "$me: wrote $file for $host"
