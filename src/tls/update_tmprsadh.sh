#!/bin/sh
# update_tmprsadh: make fresh control/rsa2048.pem and control/dh2048.pem,
# as the qmail TLS patch's cron job of the same name does.
#
# Both are generated into .new files under umask 077, given their owner
# and mode 600, and renamed into place, so that a reader sees the old
# file or the new one, never a partial one. A lock directory keeps two
# runs (cron overlapping a manual run) apart. It never runs anything but
# openssl, and nothing it is given reaches a shell unquoted.
set -eu

me=update_tmprsadh
home=${QMAILHOME:-@PREFIX@}
bits=2048
dsaparam=""
owner=""

usage() {
	echo "usage: $me [-b bits] [-d] [-o owner[:group]]" >&2
	exit 100
}
die() {
	echo "$me: fatal: $*" >&2
	exit 111
}

while getopts b:do: opt; do
	case $opt in
	b) bits=$OPTARG ;;
	d) dsaparam=-dsaparam ;;
	o) owner=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
case $bits in
'' | *[!0-9]*) usage ;;
esac
case $owner in
*[!A-Za-z0-9._:-]*) die "not an owner: $owner" ;;
esac

umask 077
cd "$home/control" || die "unable to switch to $home/control"

# The files belong to whoever owns control/ (root in production, the
# instance's account in an instance) unless -o says otherwise.
if [ -z "$owner" ]; then
	# shellcheck disable=SC2012 # "." needs no quoting; stat(1) differs
	owner=$(ls -ldn . | awk '{ print $3 ":" $4 }')
fi
if [ "$(id -u)" -ne 0 ]; then
	case $owner in
	"$(id -u):$(id -g)" | "$(id -u)" | "$(id -un)" | "$(id -un):$(id -gn)") owner="" ;;
	*) die "only root may give the files to $owner" ;;
	esac
fi

lock=.update_tmprsadh.lock
# mkdir is atomic everywhere. A lock left by a run that died (its pid
# is gone) is taken over.
take_lock() {
	if mkdir "$lock" 2>/dev/null; then
		echo $$ >"$lock/pid"
		return 0
	fi
	holder=$(cat "$lock/pid" 2>/dev/null || :)
	case $holder in
	'' | *[!0-9]*) return 1 ;;
	esac
	kill -0 "$holder" 2>/dev/null && return 1
	rm -rf "$lock.stale.$$"
	mv "$lock" "$lock.stale.$$" 2>/dev/null || return 1
	rm -rf "$lock.stale.$$"
	mkdir "$lock" 2>/dev/null || return 1
	echo $$ >"$lock/pid"
}
take_lock || die "another $me is running (lock $home/control/$lock)"

# shellcheck disable=SC2317 # run by the trap
cleanup() {
	rm -f rsa2048.pem.new dh2048.pem.new
	rm -rf "$lock"
}
trap cleanup EXIT
trap 'exit 111' HUP INT TERM

rm -f rsa2048.pem.new dh2048.pem.new
errors=$lock/errors
openssl genrsa -out rsa2048.pem.new "$bits" 2>"$errors" ||
	die "openssl genrsa failed: $(cat "$errors")"
# shellcheck disable=SC2086 # dsaparam is one word or none
openssl dhparam $dsaparam -out dh2048.pem.new "$bits" 2>"$errors" ||
	die "openssl dhparam failed: $(cat "$errors")"
for f in rsa2048.pem.new dh2048.pem.new; do
	[ -s "$f" ] || die "openssl made an empty $f"
	if [ -n "$owner" ]; then
		chown "$owner" "$f" || die "unable to chown $f to $owner"
	fi
	chmod 600 "$f" || die "unable to chmod $f"
	# GNU sync takes file names and flushes them; elsewhere this is a
	# no-op and the rename is still atomic.
	sync "$f" 2>/dev/null || :
done
mv -f rsa2048.pem.new rsa2048.pem || die "unable to move rsa2048.pem.new"
mv -f dh2048.pem.new dh2048.pem || die "unable to move dh2048.pem.new"
exit 0
