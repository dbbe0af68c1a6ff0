#!/bin/sh
# run-instance.sh: what `make run` does.
#
# Creates the instance (or refreshes its binaries), writes a daemontools
# service for every mail service built so far, and runs svscan in the
# foreground. Each service logs through multilog into instance/log/ and
# also to this terminal. Ctrl-C or SIGTERM stops every service and waits
# until no process of the instance is left.
set -eu

inst=${1:?usage: run-instance.sh instance-dir}
build=${QM_BUILD:?QM_BUILD must name the build directory}
me=run-instance

"$build/bin/qmail-instance" "$inst" >/dev/null
inst=$(cd "$inst" && pwd -P)
account=$(cat "$inst/INSTANCE")
if [ "$(id -u)" -eq 0 ]; then
	asuser="setuidgid $account"
else
	asuser=""
fi

# A service directory: run script plus a multilog log service.
service() { # name command...
	name=$1
	shift
	dir=$inst/service/$name
	mkdir -p "$dir/log"
	cat >"$dir/run.tmp" <<EOF
#!/bin/sh
exec 2>&1
exec $asuser env QMAILHOME=$inst $*
EOF
	cat >"$dir/log/run.tmp" <<EOF
#!/bin/sh
exec $asuser multilog t e $inst/log/$name
EOF
	chmod 755 "$dir/run.tmp" "$dir/log/run.tmp"
	mv -f "$dir/run.tmp" "$dir/run"
	mv -f "$dir/log/run.tmp" "$dir/log/run"
	[ -z "$asuser" ] || chown -R "$account" "$inst/log"
}

rm -rf "$inst/service"
mkdir -p "$inst/service"
if [ -x "$inst/bin/qmail-start" ]; then
	service qmail "$inst/bin/qmail-start" "$(head -n 1 "$inst/control/defaultdelivery")"
fi

stop() {
	trap - INT TERM
	echo "$me: stopping" >&2
	for d in "$inst"/service/*; do
		[ -d "$d" ] || continue
		svc -dx "$d" "$d/log" 2>/dev/null || true
	done
	kill "$svscan" 2>/dev/null || true
	# Wait for every supervise to finish its service and exit.
	i=0
	while [ $i -lt 100 ]; do
		alive=0
		for d in "$inst"/service/* "$inst"/service/*/log; do
			[ -d "$d" ] && svok "$d" 2>/dev/null && alive=1
		done
		[ $alive -eq 0 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	wait "$svscan" 2>/dev/null || true
	echo "$me: stopped" >&2
	exit 0
}

cat >&2 <<EOF
$me: mail system running in $inst (account $account)
  send:  printf 'Subject: hello\n\nhi\n' | $asuser env QMAILHOME=$inst $inst/bin/qmail-inject demo@localhost
  read:  ls $inst/mail/demo/Maildir/new
  logs:  $inst/log/
Press Ctrl-C to stop.
EOF

# svscan in its own session, so that Ctrl-C reaches only this script,
# which then stops the services in order.
setsid svscan "$inst/service" &
svscan=$!
trap stop INT TERM
wait "$svscan" || true
stop
