#!/bin/sh
# qmail-instance: create, or complete, a whole mail system in one directory.
#
# The instance is laid out like /var/qmail (bin, control, queue, users,
# alias) and every qmail role runs as one unprivileged account: the one
# running this tool, or, when it runs as root, a dedicated account that it
# creates. It never overwrites a control file, a mailbox or the queue, so
# running it again on an existing instance only refreshes bin/ and adds
# what is missing. Nothing it is given reaches a shell unquoted.
set -eu

SPLIT=@SPLIT@
me=qmail-instance

usage() {
	echo "usage: $me [-r] [-H host] [-u account] [-b bindir] [-m mailbox]... dir" >&2
	exit 100
}
die() {
	echo "$me: fatal: $*" >&2
	exit 111
}
# The first directory above dir that others may not search, if any: run
# as root, the instance's account could not reach its own files.
closed_parent() {
	p=$(dirname "$1")
	while :; do
		if [ -n "$(find "$p" -maxdepth 0 ! -perm -0001 2>/dev/null)" ]; then
			echo "$p"
			return
		fi
		[ "$p" = / ] && return
		p=$(dirname "$p")
	done
}

host=""
account=""
bindir=""
mailboxes=""
relocate=""
while getopts rH:u:b:m: opt; do
	case $opt in
	r) relocate=1 ;;
	H) host=$OPTARG ;;
	u) account=$OPTARG ;;
	b) bindir=$OPTARG ;;
	m) mailboxes="$mailboxes $OPTARG" ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
[ -n "$mailboxes" ] || mailboxes="demo alice bob"

for name in $mailboxes; do
	case $name in
	*[!a-z0-9._]* | "" | .*)
		echo "$me: fatal: mailbox name must be lowercase letters, digits, dot or underscore: $name" >&2
		exit 100
		;;
	esac
done
if [ -z "$host" ]; then
	host=$(hostname -f 2>/dev/null || hostname 2>/dev/null || echo localhost)
fi
case $host in
*[!A-Za-z0-9.-]* | "")
	echo "$me: fatal: not a host name: $host" >&2
	exit 100
	;;
esac

case $1 in
*[!A-Za-z0-9._/+-]*) die "instance path may hold only letters, digits and ._/+-: $1" ;;
esac
# -r: run as root, a new instance that its account could not reach (below
# root's 0700 home, say) is made under /var/lib/qmail-instance instead,
# and dir becomes a symbolic link to it.
if [ -n "$relocate" ] && [ "$(id -u)" -eq 0 ] && [ ! -e "$1" ] &&
	[ ! -L "$1" ]; then
	mkdir -p "$(dirname "$1")" || die "unable to create $(dirname "$1")"
	want=$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")
	closed=$(closed_parent "$want")
	if [ -n "$closed" ]; then
		real=/var/lib/qmail-instance/$(printf '%s' "$want" |
			tr -c 'A-Za-z0-9._+-' '_')
		mkdir -p "$real" || die "unable to create $real"
		chmod 755 /var/lib/qmail-instance
		ln -s "$real" "$1" || die "unable to link $1 to $real"
		echo "$me: $closed may not be searched by others: the instance" \
			"is in $real, and $1 links to it" >&2
	fi
fi
mkdir -p "$1" || die "unable to create $1"
dir=$(cd "$1" && pwd -P) || die "unable to enter $1"
case $dir in
*[!A-Za-z0-9._/+-]*) die "instance path may hold only letters, digits and ._/+-: $dir" ;;
esac

# --- the account ---
if [ "$(id -u)" -eq 0 ]; then
	closed=$(closed_parent "$dir")
	[ -z "$closed" ] ||
		die "$closed may not be searched by others (ls -ld $closed), so" \
			"the instance's account could not reach $dir: choose a" \
			"directory below searchable ones, or chmod o+x $closed"
	account=${account:-qmailinst}
	if ! id -u "$account" >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin \
			"$account" || die "unable to create account $account"
	fi
	[ "$(id -u "$account")" -ne 0 ] || die "account $account has uid 0"
else
	self=$(id -un)
	[ -z "$account" ] || [ "$account" = "$self" ] ||
		die "only root can make an instance for another account ($account)"
	account=$self
fi
uid=$(id -u "$account")
gid=$(id -g "$account")

# --- binaries: a symlink to bindir, or a fresh copy of our own directory ---
if [ -n "$bindir" ]; then
	[ -d "$bindir" ] || die "no such directory: $bindir"
	if [ -d "$dir/bin" ] && [ ! -L "$dir/bin" ]; then
		rm -rf "$dir/bin"
	fi
	ln -sfn "$bindir" "$dir/bin"
else
	src=$(cd "$(dirname "$0")" && pwd -P)
	if [ "$src" != "$dir/bin" ]; then
		[ -L "$dir/bin" ] && rm -f "$dir/bin"
		mkdir -p "$dir/bin"
		for f in "$src"/*; do
			[ -f "$f" ] || continue
			# Copy then rename, so a running binary is never overwritten.
			cp "$f" "$dir/bin/.new" && chmod 755 "$dir/bin/.new" &&
				mv -f "$dir/bin/.new" "$dir/bin/$(basename "$f")" ||
				die "unable to copy $f to $dir/bin"
		done
	fi
fi

# Write a file only when it does not exist yet.
newfile() {
	if [ ! -e "$1" ]; then
		cat >"$1.tmp" && mv "$1.tmp" "$1" || die "unable to write $1"
	else
		cat >/dev/null
	fi
}

# --- control ---
mkdir -p "$dir/control"
printf '%s\n' "$host" | newfile "$dir/control/me"
printf '%s\nlocalhost\n' "$host" | newfile "$dir/control/locals"
printf '%s\nlocalhost\n' "$host" | newfile "$dir/control/rcpthosts"
printf './Maildir/\n' | newfile "$dir/control/defaultdelivery"

# --- the queue, as qmail lays it out ---
# One mkdir and one chmod per mode: a few processes, not hundreds.
q=$dir/queue
split_dirs() { # name
	i=0
	while [ $i -lt "$SPLIT" ]; do
		printf '%s/%s/%s\n' "$q" "$1" "$i"
		i=$((i + 1))
	done
}
dirs750="$q $q/todo $q/lock $q/mess $(split_dirs mess)"
dirs700="$q/pid $q/intd $q/bounce $q/info $q/local $q/remote
$(split_dirs info) $(split_dirs local) $(split_dirs remote)"
# shellcheck disable=SC2086 # the lists hold no blanks: $dir was checked
mkdir -p $dirs750 $dirs700 || die "unable to make the queue in $q"
# shellcheck disable=SC2086
chmod 750 $dirs750 && chmod 700 $dirs700 ||
	die "unable to set the modes of the queue in $q"
[ -e "$dir/queue/lock/sendmutex" ] || : >"$dir/queue/lock/sendmutex"
chmod 600 "$dir/queue/lock/sendmutex"
[ -e "$dir/queue/lock/tcpto" ] ||
	head -c 1024 /dev/zero >"$dir/queue/lock/tcpto"
chmod 644 "$dir/queue/lock/tcpto"
# The IPv6 table (qmail-remote(8)); made here because lock/ is not
# writable by the account that runs qmail-remote in production.
[ -e "$dir/queue/lock/tcpto6" ] ||
	head -c 2048 /dev/zero >"$dir/queue/lock/tcpto6"
chmod 644 "$dir/queue/lock/tcpto6"
[ -p "$dir/queue/lock/trigger" ] || mkfifo "$dir/queue/lock/trigger"
chmod 622 "$dir/queue/lock/trigger"

# --- mailboxes ---
maildir() {
	for sub in "" /cur /new /tmp; do
		mkdir -p "$1$sub" && chmod 700 "$1$sub" || die "unable to make $1$sub"
	done
}
mkdir -p "$dir/mail" "$dir/alias" "$dir/users"
assign=""
for name in $mailboxes; do
	mkdir -p "$dir/mail/$name"
	maildir "$dir/mail/$name/Maildir"
	assign="$assign=$name:$account:$uid:$gid:$dir/mail/$name:::
+$name-:$account:$uid:$gid:$dir/mail/$name:-::
"
done
# Everything else goes to the alias home, as qmail's ~alias does.
maildir "$dir/alias/Maildir"
for a in postmaster mailer-daemon root; do
	printf './Maildir/\n' | newfile "$dir/alias/.qmail-$a"
done
printf '%s+:%s:%s:%s:%s/alias:-::\n.\n' "$assign" "$account" "$uid" "$gid" "$dir" |
	newfile "$dir/users/assign"

mkdir -p "$dir/service" "$dir/log"
printf '%s\n' "$account" | newfile "$dir/INSTANCE"

if [ -x "$dir/bin/qmail-newu" ]; then
	QMAILHOME=$dir "$dir/bin/qmail-newu" || die "qmail-newu failed"
fi

if [ "$(id -u)" -eq 0 ]; then
	chown -R -h "$uid:$gid" "$dir" || die "unable to chown $dir"
fi
echo "$me: instance ready in $dir (account $account, host $(cat "$dir/control/me"))"
