#!/bin/sh
# qmail-config: write the basic control files for this host's name, as
# qmail's config-fast does.
#
# Given a fully qualified name it writes control/me, defaultdomain,
# plusdomain, locals, rcpthosts and defaultdelivery (and helohost with
# -H). Each file is written to a temporary name and renamed, so that a
# reader sees the old file or the new one; an existing file is kept
# unless -f is given. Names are checked before they reach a file, and
# nothing reaches a shell unquoted.
set -eu

me=qmail-config
home=${QMAILHOME:-@PREFIX@}

usage() {
	echo "usage: $me [-f] [-d domain] [-H helohost] [-D delivery] fqdn" >&2
	exit 100
}
die() {
	echo "$me: fatal: $*" >&2
	exit 111
}

force=""
domain=""
helohost=""
delivery=./Maildir/
while getopts fd:H:D: opt; do
	case $opt in
	f) force=1 ;;
	d) domain=$OPTARG ;;
	H) helohost=$OPTARG ;;
	D) delivery=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage

lower() {
	printf '%s\n' "$1" | LC_ALL=C tr '[:upper:]' '[:lower:]'
}

# A domain name: dot-separated labels of letters, digits and inner
# hyphens, 1 to 63 bytes each, 253 in all. With "fqdn", two labels at
# least.
check_name() { # what name [fqdn]
	name=$2
	case $name in
	'' | .* | *. | *..* | *[!a-z0-9.-]* | -* | *.-* | *-.* | *-)
		echo "$me: fatal: $1 is not a domain name: $name" >&2
		exit 100
		;;
	esac
	case ${name##*.} in
	*[!0-9]*) ;;
	*)
		echo "$me: fatal: $1 is an address, not a domain name: $name" >&2
		exit 100
		;;
	esac
	if [ ${#name} -gt 253 ] ||
		printf '%s\n' "$name" | tr . '\n' | grep -q '^.\{64,\}$'; then
		echo "$me: fatal: $1 is too long: $name" >&2
		exit 100
	fi
	case ${3:-}$name in
	fqdn*.*) ;;
	fqdn*)
		echo "$me: fatal: $name is not fully qualified (mail.example.com)" >&2
		exit 100
		;;
	esac
}

fqdn=$(lower "$1")
check_name "the host name" "$fqdn" fqdn
# The domain of the host: its name without the first label, unless that
# would leave a single label (example.com is its own domain).
if [ -z "$domain" ]; then
	domain=${fqdn#*.}
	case $domain in
	*.*) ;;
	*) domain=$fqdn ;;
	esac
fi
domain=$(lower "$domain")
check_name "the domain" "$domain"
if [ -n "$helohost" ]; then
	helohost=$(lower "$helohost")
	check_name "the helo host" "$helohost"
fi
case $delivery in
'' | *'
'*) die "the default delivery must be one line" ;;
esac

[ -d "$home/control" ] || die "no directory $home/control (run make install first)"
cd "$home/control" || die "unable to switch to $home/control"

# Writes a control file from stdin, unless it exists and -f was not given.
write() { # name
	if [ -e "$1" ] && [ -z "$force" ]; then
		cat >/dev/null
		echo "$me: control/$1 exists, kept (-f replaces it)"
		return 0
	fi
	tmp=.$1.tmp$$
	trap 'rm -f "$tmp"' EXIT
	umask 022
	cat >"$tmp" || die "unable to write $home/control/$tmp"
	chmod 644 "$tmp" || die "unable to chmod $home/control/$tmp"
	# GNU sync flushes the file; elsewhere the rename is still atomic.
	sync "$tmp" 2>/dev/null || :
	mv -f "$tmp" "$1" || die "unable to move $tmp to $home/control/$1"
	trap - EXIT
	echo "$me: control/$1: $(tr '\n' ' ' <"$1" | sed 's/ $//')"
}

printf '%s\n' "$fqdn" | write me
printf '%s\n' "$domain" | write defaultdomain
printf '%s\n' "$domain" | write plusdomain
printf '%s\nlocalhost\n' "$fqdn" | write locals
printf '%s\n' "$fqdn" | write rcpthosts
printf '%s\n' "$delivery" | write defaultdelivery
[ -z "$helohost" ] || printf '%s\n' "$helohost" | write helohost
exit 0
