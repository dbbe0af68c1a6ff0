#!/bin/sh
# qmail-mkaccounts: create the accounts and groups of a production install,
# or, with -n, only report what is missing or wrong.
#
# The accounts are qmail's (alias qmaild qmaill qmailp qmailq qmailr
# qmails; groups nofiles and qmail) plus ucspissl for the TLS processes,
# as doc/install.md lists them. Missing ones are made with groupadd and
# useradd. An existing account is only checked (primary group, login
# shell, ~alias, uid 0), and changed with usermod only under -f. It never
# removes an account, and no name it prints or passes comes from outside
# this file.
set -eu

me=qmail-mkaccounts
home=${QMAILHOME:-@PREFIX@}
PATH=$PATH:/usr/sbin:/sbin
export PATH

usage() {
	echo "usage: $me [-n | -f]" >&2
	exit 100
}
die() {
	echo "$me: fatal: $*" >&2
	exit 111
}

mode=create
while getopts nf opt; do
	case $opt in
	n) mode=check ;;
	f) mode=fix ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
case $home in
/*) ;;
*) die "the home must be an absolute path: $home" ;;
esac

# name group home, as doc/install.md lists them.
accounts="alias nofiles $home/alias
qmaild nofiles $home
qmaill nofiles $home
qmailp nofiles $home
qmailq qmail $home
qmailr qmail $home
qmails qmail $home
ucspissl ucspissl /nonexistent"
groups="nofiles qmail ucspissl"

nologin=/usr/sbin/nologin
for shell in /usr/sbin/nologin /sbin/nologin /usr/bin/false /bin/false; do
	if [ -x "$shell" ]; then
		nologin=$shell
		break
	fi
done

problems=0
say() {
	echo "$me: $*"
}
problem() {
	say "$*"
	problems=$((problems + 1))
}

# Runs an account tool, again while another process holds the lock on
# the account files.
tool() {
	tries=0
	while :; do
		if err=$("$@" 2>&1); then
			return 0
		fi
		case $err in
		*lock*) ;;
		*) die "$* failed: $err" ;;
		esac
		tries=$((tries + 1))
		[ $tries -lt 30 ] || die "$* failed: $err"
		sleep 1
	done
}

group_id() { # name: prints the gid, or nothing
	getent group "$1" | cut -d: -f3
}

for group in $groups; do
	[ -n "$(group_id "$group")" ] && continue
	if [ $mode = check ]; then
		problem "group $group: missing"
		continue
	fi
	tool groupadd -r "$group"
	say "group $group: created"
done

login_refused() { # shell
	case $1 in
	*/nologin | */false) return 0 ;;
	esac
	return 1
}

# Checks one existing account, and with -f fixes what it can.
check_account() { # name group home
	entry=$(getent passwd "$1")
	uid=$(echo "$entry" | cut -d: -f3)
	gid=$(echo "$entry" | cut -d: -f4)
	dir=$(echo "$entry" | cut -d: -f6)
	shell=$(echo "$entry" | cut -d: -f7)
	want=$(group_id "$2")
	if [ "$uid" = 0 ]; then
		problem "account $1: has uid 0; remove it and run $me again"
	fi
	if [ -n "$want" ] && [ "$gid" != "$want" ]; then
		fix_or_report "$1" "primary group $gid, expected $2 ($want)" -g "$2"
	fi
	if ! login_refused "$shell"; then
		fix_or_report "$1" "login shell ${shell:-(none)}, expected $nologin" \
			-s "$nologin"
	fi
	# qmail-lspawn delivers to ~alias; the other homes are never used.
	if [ "$1" = alias ] && [ "$dir" != "$3" ]; then
		fix_or_report "$1" "home $dir, expected $3" -d "$3"
	fi
}

fix_or_report() { # name what usermod-options...
	name=$1
	what=$2
	shift 2
	if [ $mode = fix ]; then
		tool usermod "$@" "$name"
		say "account $name: $what: fixed"
	else
		problem "account $name: $what (-f fixes it: usermod $* $name)"
	fi
}

echo "$accounts" | {
	while read -r name group dir; do
		if [ -n "$(getent passwd "$name")" ]; then
			check_account "$name" "$group" "$dir"
			continue
		fi
		if [ $mode = check ]; then
			problem "account $name: missing"
			continue
		fi
		if [ -z "$(group_id "$group")" ]; then
			problem "account $name: not created: group $group is missing"
			continue
		fi
		tool useradd -r -M -g "$group" -d "$dir" -s "$nologin" "$name"
		say "account $name: created"
	done
	if [ $problems -eq 1 ]; then
		say "1 problem"
		exit 1
	elif [ $problems -gt 1 ]; then
		say "$problems problems"
		exit 1
	fi
	say "ok: the 8 accounts and 3 groups of doc/install.md are as they should be"
}
