#!/bin/sh
# qmail-services: make the daemontools service directories of a
# production install, and what their run scripts need.
#
# For each service it copies the run scripts that make install left in
# PREFIX/service-templates into DIR/NAME (a new service is built under a
# dot name and renamed, so that svscan never starts half of one), makes
# its log directory for qmaill, and, when the scripts use them, builds
# /etc/tcp.smtp.cdb or /etc/tcp.qmqp.cdb with tcprules and makes a
# self-signed certificate and DH parameters. It never replaces a run
# script, a rules file or a certificate that exists, unless -f is given
# (then only the run scripts). Nothing it is given reaches a shell
# unquoted.
set -eu

me=qmail-services
home=${QMAILHOME:-@PREFIX@}
templates=$home/service-templates
logdir=/var/log/qmail
force=""

usage() {
	echo "usage: $me [-f] [-l logdir] dir [service...]" >&2
	exit 100
}
die() {
	echo "$me: fatal: $*" >&2
	exit 111
}
say() {
	echo "$me: $*"
}

while getopts fl: opt; do
	case $opt in
	f) force=1 ;;
	l) logdir=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
dir=$1
shift
for path in "$dir" "$logdir"; do
	case $path in
	/*) ;;
	*) die "not an absolute path: $path" ;;
	esac
	case $path in
	*[!A-Za-z0-9._/+-]*) die "a path may hold only letters, digits and ._/+-: $path" ;;
	esac
done
[ -d "$templates" ] || die "no templates in $templates (run make install first)"
if [ $# -eq 0 ]; then
	for run in "$templates"/*/run; do
		[ -f "$run" ] || continue
		svc=${run%/run}
		set -- "$@" "${svc##*/}"
	done
fi
for svc in "$@"; do
	case $svc in
	'' | .* | */* | *[!A-Za-z0-9._-]*) die "not a service name: $svc" ;;
	esac
	[ -f "$templates/$svc/run" ] || die "no service $svc in $templates"
done

[ "$(id -u)" -eq 0 ] || die "must run as root: the services start as root"
for name in qmaill qmaild ucspissl; do
	id -u "$name" >/dev/null 2>&1 ||
		die "the account $name is missing (run $home/bin/qmail-mkaccounts)"
done
for f in me defaultdelivery; do
	[ -s "$home/control/$f" ] ||
		die "$home/control/$f is missing (run $home/bin/qmail-config first)"
done

uses() { # service text: true when its run script mentions text
	grep -q -F -- "$2" "$templates/$1/run"
}

# The log directory a log/run script writes to (multilog's last word).
log_target() { # file
	sed -n 's/.*multilog .* \([^ ]*\)$/\1/p' "$1" | tail -n 1
}

# A template with the log directory moved to logdir.
copy_script() { # template target
	sed "s|/var/log/qmail|$logdir|g" "$1" >"$2.tmp" &&
		chmod 755 "$2.tmp" && mv -f "$2.tmp" "$2" ||
		die "unable to write $2"
}

make_service() { # name
	target=$dir/$1
	if [ -d "$target" ]; then
		for f in run log/run; do
			[ -f "$templates/$1/$f" ] || continue
			if [ -e "$target/$f" ] && [ -z "$force" ]; then
				say "$target/$f exists, kept (-f replaces it)"
				continue
			fi
			mkdir -p "$target/log" || die "unable to make $target/log"
			copy_script "$templates/$1/$f" "$target/$f"
			say "$target/$f: written"
		done
		return 0
	fi
	new=$dir/.$1.new
	rm -rf "$new"
	mkdir -p "$new/log" || die "unable to make $new/log"
	copy_script "$templates/$1/run" "$new/run"
	[ -f "$templates/$1/log/run" ] &&
		copy_script "$templates/$1/log/run" "$new/log/run"
	mv "$new" "$target" || die "unable to move $new to $target"
	say "$target: made"
}

# A log directory for qmaill. Called shortest path first, so that a log
# directory that holds others (qmail-send's) is made as qmaill's, not as
# a parent of root's.
make_logdir() { # path
	if [ -d "$1" ]; then
		[ -n "$(find "$1" -maxdepth 0 -user qmaill)" ] ||
			say "warning: $1 is not qmaill's, so multilog cannot write there: chown qmaill $1"
		return 0
	fi
	mkdir -p "${1%/*}" && mkdir "$1" &&
		chown qmaill:"$(id -g qmaill)" "$1" && chmod 750 "$1" ||
		die "unable to make $1"
	say "$1: made for qmaill"
}

make_rules() { # name: /etc/NAME and /etc/NAME.cdb
	src=/etc/$1
	if [ ! -e "$src" ]; then
		[ -f "$templates/$1" ] || die "no $templates/$1 to start $src from"
		cp "$templates/$1" "$src.tmp" && chmod 644 "$src.tmp" &&
			mv -f "$src.tmp" "$src" || die "unable to write $src"
		say "$src: written from $templates/$1; edit it for your networks"
	fi
	if [ ! -e "$src.cdb" ] || [ -n "$(find "$src" -newer "$src.cdb")" ]; then
		tcprules "$src.cdb" "$src.tmp" <"$src" ||
			die "tcprules could not build $src.cdb from $src"
		say "$src.cdb: built from $src"
	fi
}

make_tls() {
	control=$home/control
	if [ ! -e "$control/servercert.pem" ]; then
		"$home/bin/mkcert" "$(head -n 1 "$control/me")" >/dev/null ||
			die "mkcert failed"
		say "$control/servercert.pem: self-signed; replace it with one a CA signed"
	fi
	if [ ! -e "$control/dh2048.pem" ]; then
		"$home/bin/update_tmprsadh" -d || die "update_tmprsadh failed"
		say "$control/dh2048.pem: made; renew it weekly from cron (update_tmprsadh)"
	fi
}

mkdir -p "$dir" || die "unable to make $dir"
tls=no
logs=""
for svc in "$@"; do
	make_service "$svc"
	if [ -f "$dir/$svc/log/run" ]; then
		logs="$logs$(log_target "$dir/$svc/log/run")
"
	fi
	if uses "$svc" /etc/tcp.smtp.cdb; then make_rules tcp.smtp; fi
	if uses "$svc" /etc/tcp.qmqp.cdb; then make_rules tcp.qmqp; fi
	if uses "$svc" servercert.pem; then tls=yes; fi
done
for path in $(printf '%s' "$logs" | sort -u); do
	case $path in
	/*) make_logdir "$path" ;;
	*) die "a log/run script names no absolute log directory: $path" ;;
	esac
done
[ $tls = no ] || make_tls
say "ready in $dir; svscan starts what is linked into its directory:"
say "  ln -s $dir/NAME /etc/service/"
