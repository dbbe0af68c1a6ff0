#!/bin/sh
# qmail-sendmail-alt: make /usr/sbin/sendmail and /usr/lib/sendmail this
# system's sendmail through the alternatives system (Debian's
# update-alternatives), or with -r undo it.
#
# A file at those paths that the alternatives system does not manage
# (another MTA's sendmail, from its package) is never removed or
# overwritten: without -d the program explains and stops; with -d it
# moves the file aside with `dpkg-divert --local --rename`, which keeps it
# (as PATH.distrib) and keeps the package's upgrades away from it, and
# -r moves it back. It never runs anything but the dpkg tools.
set -eu

me=qmail-sendmail-alt
home=${QMAILHOME:-@PREFIX@}
PATH=$PATH:/usr/sbin:/sbin
export PATH
priority=25
master=/usr/sbin/sendmail
libpath=/usr/lib/sendmail
manpath=/usr/share/man/man8/sendmail.8

usage() {
	echo "usage: $me [-d | -r]" >&2
	exit 100
}
die() {
	echo "$me: fatal: $*" >&2
	exit 111
}
say() {
	echo "$me: $*"
}

action=install
while getopts dr opt; do
	case $opt in
	d) action=divert ;;
	r) action=remove ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[ "$(id -u)" -eq 0 ] || die "must run as root"
command -v update-alternatives >/dev/null 2>&1 ||
	die "update-alternatives is missing; link by hand: ln -s $home/bin/sendmail $master"
target=$home/bin/sendmail
[ -x "$target" ] || [ $action = remove ] || die "$target is missing (run make install)"

# True when path is free for the alternatives system: missing, or one of
# its links.
managed() { # path
	[ -e "$1" ] || [ -L "$1" ] || return 0
	[ -L "$1" ] || return 1
	case $(readlink "$1") in
	/etc/alternatives/*) return 0 ;;
	esac
	return 1
}

owner_of() { # path: the package that ships it, or nothing
	dpkg-query -S "$1" 2>/dev/null | grep -v '^diversion ' |
		sed -n 's/^\([^:,]*\): .*/\1/p' | head -n 1
}

divert() { # path
	command -v dpkg-divert >/dev/null 2>&1 ||
		die "$1 is in the way and dpkg-divert is missing: move it aside by hand"
	dpkg-divert --local --rename --divert "$1.distrib" --add "$1" >/dev/null ||
		die "dpkg-divert could not move $1 aside"
	say "$1: moved aside to $1.distrib (dpkg-divert --local --rename)"
}

undivert() { # path
	command -v dpkg-divert >/dev/null 2>&1 || return 0
	[ "$(dpkg-divert --listpackage "$1")" = LOCAL ] || return 0
	[ "$(dpkg-divert --truename "$1")" = "$1.distrib" ] || return 0
	if [ -e "$1" ] || [ -L "$1" ]; then
		say "$1: still in use by another alternative; $1.distrib stays"
		return 0
	fi
	dpkg-divert --local --rename --remove "$1" >/dev/null ||
		die "dpkg-divert could not move $1.distrib back"
	say "$1: moved back from $1.distrib"
}

if [ $action = remove ]; then
	if update-alternatives --list sendmail 2>/dev/null | grep -qxF "$target"; then
		update-alternatives --remove sendmail "$target" >/dev/null ||
			die "update-alternatives could not remove $target"
		say "sendmail: $target is no longer an alternative"
	fi
	undivert "$master"
	undivert "$libpath"
	exit 0
fi

in_the_way=""
for path in "$master" "$libpath"; do
	managed "$path" || in_the_way="$in_the_way $path"
done
if [ -n "$in_the_way" ] && [ $action = install ]; then
	for path in $in_the_way; do
		pkg=$(owner_of "$path")
		if [ -n "$pkg" ]; then
			say "$path belongs to the package $pkg, not to the alternatives system"
		else
			say "$path is a file of its own, not managed by the alternatives system"
		fi
	done
	cat <<EOF
$me: nothing was changed. Either remove that mail system (apt-get remove
$me: ...), or run $me -d: it keeps the file as PATH.distrib with
$me: dpkg-divert --local --rename, and -r puts it back.
EOF
	exit 1
fi
for path in $in_the_way; do
	divert "$path"
done

set -- --slave "$libpath" lib.sendmail "$target"
[ -f "$home/man/man8/sendmail.8" ] &&
	set -- "$@" --slave "$manpath" sendmail.8 "$home/man/man8/sendmail.8"
update-alternatives --install "$master" sendmail "$target" "$priority" "$@" \
	>/dev/null || die "update-alternatives could not install $target"
chosen=$(update-alternatives --query sendmail | sed -n 's/^Value: //p')
if [ "$chosen" = "$target" ]; then
	say "$master and $libpath now run $target"
else
	say "$target is an alternative (priority $priority), but $chosen is chosen;"
	say "  update-alternatives --set sendmail $target chooses it"
fi
