#!/bin/sh
# install.sh: what `make install` does.
#   install.sh BUILD DESTDIR PREFIX SPLIT [ACCOUNT]
#
# Installs the programs, the manual pages and the run-script templates
# under DESTDIR/PREFIX, and makes what is missing of the tree that
# qmail-instcheck's table describes (control/, users/, ~alias, the queue),
# with qmail's owners and modes. The table comes from `qmail-instcheck
# -p`, so that what is installed is exactly what the check verifies.
#
# It never changes what an administrator owns: an existing queue, control
# file, .qmail file or service directory is left as it is; only the
# programs, pages and templates, which are ours, are replaced, each by a
# rename, so that a running program is never overwritten in place.
#
# Owners are set only when installing for real (DESTDIR empty, as root,
# the accounts present), or with ACCOUNT, which stands for every account
# as in an instance (tests). Without owners nothing becomes setuid or
# setgid, and what is made only once (the queue, ~alias, control/,
# users/) is not made with the wrong owners: not at all when accounts
# are missing, only root's directories when staging into DESTDIR.
# SPLIT must be the one the build has compiled in, which the table uses.
set -eu

me=install
build=$1
dest=$2
prefix=$3
split=$4
account=${5:-}
root=$dest$prefix
check=$build/bin/qmail-instcheck

die() {
	echo "$me: fatal: $*" >&2
	exit 111
}

case $prefix in
/*) ;;
*) die "PREFIX must be an absolute path: $prefix" ;;
esac
case $dest$prefix in
*[!A-Za-z0-9._/+-]*) die "DESTDIR and PREFIX may hold only letters, digits and ._/+-: $root" ;;
esac
case $dest in
'' | /*) ;;
*) die "DESTDIR must be empty or an absolute path: $dest" ;;
esac
[ -x "$check" ] || die "$check is missing: run make first"
built_split=$(sed -n 's/^#define AUTO_SPLIT //p' "$build/gen/auto.h" 2>/dev/null) || :
[ -z "$built_split" ] || [ "$built_split" = "$split" ] ||
	die "the build has SPLIT $built_split compiled in, not $split: make SPLIT=$split"
[ -d doc/man ] && [ -d etc/service ] || die "run me from the top of the source tree"
# An existing queue fixes SPLIT: programs built for another split would
# look for messages in subdirectories that are not there.
if [ -d "$root/queue/mess" ]; then
	queue_split=$(find "$root/queue/mess" -mindepth 1 -maxdepth 1 -type d | wc -l)
	[ "$queue_split" -eq "$split" ] ||
		die "$root/queue/mess has $queue_split subdirectories, not SPLIT $split: make SPLIT=$queue_split && make install SPLIT=$queue_split"
fi

# --- owners or not ---
# Every account of doc/install.md, for the advice at the end; those that
# own files of the table decide whether owners can be set.
missing=""
for name in alias qmaild qmaill qmailp qmailq qmailr qmails ucspissl; do
	id -u "$name" >/dev/null 2>&1 || missing="$missing $name"
done
for name in qmail nofiles; do
	getent group "$name" >/dev/null 2>&1 || missing="$missing $name(group)"
done
owners=yes
if [ -n "$account" ]; then
	missing=""
elif [ -n "$dest" ] || [ "$(id -u)" -ne 0 ]; then
	owners=no
	missing=""
else
	for name in alias qmailq qmailr qmails 'qmail(group)'; do
		case " $missing " in
		*" $name "*) owners=no ;;
		esac
	done
fi

# --- the manifest: every file installed from this tree ---
mkdir -p "$root"
{
	for f in "$build"/bin/*; do
		[ -f "$f" ] && echo "bin/${f##*/}"
	done
	for page in doc/man/*.[1-8]; do
		[ -f "$page" ] && echo "man/man${page##*.}/${page##*/}"
	done
	for run in etc/service/*/run; do
		[ -f "$run" ] || continue
		svc=${run%/run}
		svc=${svc##*/}
		echo "service-templates/$svc/run"
		[ -f "etc/service/$svc/log/run" ] &&
			echo "service-templates/$svc/log/run"
	done
	for rules in tcp.smtp tcp.qmqp; do
		[ -f "etc/$rules" ] && echo "service-templates/$rules"
	done
	:
} >"$root/manifest.tmp" || die "unable to write $root/manifest.tmp"
mv -f "$root/manifest.tmp" "$root/manifest" ||
	die "unable to move $root/manifest.tmp into place"

if [ -n "$account" ]; then
	table=$("$check" -p -a "$account" "$root") || die "qmail-instcheck -p failed"
else
	table=$("$check" -p "$root") || die "qmail-instcheck -p failed"
fi

# A mode without the setuid and setgid bits, when owners are not set:
# without the right owner such a bit is a danger. The extra leading 0
# makes GNU chmod clear a directory's setgid bit too.
safe_mode() { # mode
	if [ $owners = yes ]; then
		echo "0$1"
	else
		# The table's modes have four digits; the first holds the bits.
		echo "00${1#?}"
	fi
}

attrs() { # owner group mode path
	if [ $owners = yes ]; then
		chown "$1:$2" "$4" || die "unable to chown $4 to $1:$2"
	fi
	chmod "$(safe_mode "$3")" "$4" || die "unable to chmod $4"
}

# Ours: written next to the target with its owner and mode, then renamed
# over it, so that qmail-queue is setuid from its first byte and a
# running program is never overwritten.
install_file() { # owner group mode path
	target=$root/$4
	tmp=${target%/*}/.${target##*/}.new
	case $4 in
	bin/*) from=$build/$4 ;;
	man/man*/*) from=doc/man/${4##*/} ;;
	service-templates/tcp.*) from=etc/${4#service-templates/} ;;
	service-templates/*) from=etc/service/${4#service-templates/} ;;
	*)
		attrs "$1" "$2" "$3" "$target"
		return
		;;
	esac
	rm -f "$tmp"
	if [ $owners = yes ]; then
		set -- -o "$1" -g "$2" -m "$(safe_mode "$3")"
	else
		set -- -m "$(safe_mode "$3")"
	fi
	case $from in
	etc/service/*)
		# The templates name /var/qmail; they get the real prefix.
		sed "s|/var/qmail|$prefix|g" "$from" >"$tmp.sed" &&
			install "$@" "$tmp.sed" "$tmp" && rm -f "$tmp.sed"
		;;
	*) install "$@" "$from" "$tmp" ;;
	esac || die "unable to install $from as $tmp"
	mv -f "$tmp" "$target" || die "unable to move $tmp to $target"
}

# The administrator's: made only when missing, never touched again.
make_missing() { # kind owner group mode size path
	target=$root/$6
	[ -e "$target" ] || [ -L "$target" ] && return 0
	case $1 in
	d) mkdir "$target" ;;
	p) mkfifo "$target" ;;
	f) head -c "$5" /dev/zero >"$target" ;;
	esac || die "unable to make $target"
	attrs "$2" "$3" "$4" "$target"
}

rootowner=$(printf '%s\n' "$table" | awk '$7 == "." { print $3 }')
rootgroup=$(printf '%s\n' "$table" | awk '$7 == "." { print $4 }')
aliasowner=$(printf '%s\n' "$table" | awk '$7 == "alias" { print $3 }')

printf '%s\n' "$table" | while read -r when kind owner group mode size path; do
	case $when/$kind in
	own/d)
		[ -d "$root/$path" ] || mkdir "$root/$path" ||
			die "unable to make $root/$path"
		attrs "$owner" "$group" "$mode" "$root/$path"
		;;
	own/f) install_file "$owner" "$group" "$mode" "$path" ;;
	make/*)
		# What is made once must be made right: nothing without the
		# accounts; only root's when staging (the queue and ~alias are
		# useless with the wrong owners).
		[ $owners = yes ] || { [ -z "$missing" ] &&
			[ "$owner" = "$rootowner" ]; } || continue
		make_missing "$kind" "$owner" "$group" "$mode" "$size" "$path"
		;;
	esac
done

# ~alias: placeholders for the addresses every host must accept. They
# keep the mail in ~alias/Maildir until the administrator says where it
# goes; an existing file is never replaced.
placeholder() { # name
	cat <<EOF
# Mail for $1 at this host. Replace the line below with where it should
# go, for example &you@example.com, and keep this file mode 644.
./Maildir/
EOF
}
made_placeholder=no
if [ $owners = yes ]; then
	for name in postmaster mailer-daemon root; do
		f=$root/alias/.qmail-$name
		[ -e "$f" ] || [ -L "$f" ] && continue
		# Not .qmail-*: a leftover must not be a .qmail file itself.
		tmp=$root/alias/.new-qmail-$name
		placeholder "$name" >"$tmp" || die "unable to write $tmp"
		attrs "$rootowner" "$rootgroup" 0644 "$tmp"
		mv -f "$tmp" "$f" || die "unable to move $tmp to $f"
		made_placeholder=yes
	done
	if [ $made_placeholder = yes ] && [ ! -e "$root/alias/Maildir" ]; then
		aliasgroup=$(id -g "$aliasowner") || die "unable to find $aliasowner"
		for sub in "" /new /cur /tmp; do
			mkdir "$root/alias/Maildir$sub" &&
				chown "$aliasowner:$aliasgroup" "$root/alias/Maildir$sub" &&
				chmod 700 "$root/alias/Maildir$sub" ||
				die "unable to make $root/alias/Maildir$sub"
		done
	fi
fi

echo "$me: installed into $root"
if [ $owners = no ] && [ -n "$missing" ]; then
	cat <<EOF
$me: the accounts$missing are missing, so qmail-queue is not setuid and
$me: the queue, ~alias, control/ and users/ were not made. Create the
$me: accounts with
$me:   $prefix/bin/qmail-mkaccounts
$me: and run make install again.
EOF
	exit 0
fi
if [ $owners = no ]; then
	echo "$me: staged without owners: no setuid qmail-queue, no queue, no ~alias;"
	echo "$me: the target's install step applies qmail-instcheck -p's table."
	exit 0
fi
[ -z "$missing" ] ||
	echo "$me: the accounts$missing are missing: run $prefix/bin/qmail-mkaccounts"

if [ -n "$account" ]; then
	"$check" -a "$account" "$root" || die "the check above found problems"
else
	"$check" "$root" || die "the check above found problems"
fi
[ -z "$dest" ] && [ -z "$account" ] || exit 0
[ -e "$root/control/me" ] ||
	echo "$me: next: $prefix/bin/qmail-config $(hostname -f 2>/dev/null || echo HOST)"
cat <<EOF
$me: run scripts: $prefix/bin/qmail-services $prefix/supervise, then link
$me:   the services you want into svscan's directory (doc/install.md).
$me: /usr/sbin/sendmail: $prefix/bin/qmail-sendmail-alt
EOF
