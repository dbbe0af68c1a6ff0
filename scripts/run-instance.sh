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

# Ports, each overridable from the environment.
smtp_port=${QM_SMTP_PORT:-2525}
qmqp_port=${QM_QMQP_PORT:-2628}
hosts="127.0.0.1 ::1"

# Refuse to start when a port we need is taken, naming it.
port_free() { # host port
	/usr/bin/python3 - "$1" "$2" <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((host, port))
except OSError:
    sys.exit(1)
PY
}
for port in $smtp_port $qmqp_port; do
	for h in $hosts; do
		if ! port_free "$h" "$port"; then
			echo "$me: fatal: port $port on $h is already in use" >&2
			exit 111
		fi
	done
done

rm -rf "$inst/service"
mkdir -p "$inst/service"
if [ -x "$inst/bin/qmail-start" ]; then
	service qmail "$inst/bin/qmail-start" "$(head -n 1 "$inst/control/defaultdelivery")"
fi
# tcpserver: -R no ident lookup, -H no reverse DNS, -l our name.
myname=$(head -n 1 "$inst/control/me")
for h in $hosts; do
	case $h in *:*) tag=6 ;; *) tag=4 ;; esac
	if [ -x "$inst/bin/qmail-smtpd" ]; then
		service "smtpd$tag" tcpserver -v -R -H -l "$myname" "$h" "$smtp_port" "$inst/bin/qmail-smtpd"
	fi
	if [ -x "$inst/bin/qmail-qmqpd" ]; then
		service "qmqpd$tag" tcpserver -v -R -H -l "$myname" "$h" "$qmqp_port" "$inst/bin/qmail-qmqpd"
	fi
done

stop() {
	trap - INT TERM
	echo "$me: stopping" >&2
	# svscan first, so that it starts nothing new; then every supervise.
	kill "$svscan" 2>/dev/null || true
	wait "$svscan" 2>/dev/null || true
	sleep 0.2 # a supervise that svscan just forked takes its lock
	i=0
	while [ $i -lt 200 ]; do
		alive=0
		for d in "$inst"/service/* "$inst"/service/*/log; do
			if [ -d "$d" ] && svok "$d" 2>/dev/null; then
				alive=1
				svc -dx "$d" 2>/dev/null || true
			fi
		done
		[ $alive -eq 0 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	echo "$me: stopped" >&2
	exit 0
}

cat >&2 <<EOF
$me: mail system running in $inst (account $account)
  smtp:  port $smtp_port on 127.0.0.1 and ::1; qmqp: port $qmqp_port
  send:  swaks --server 127.0.0.1:$smtp_port --to demo@localhost
     or: printf 'Subject: hello\n\nhi\n' | $asuser env QMAILHOME=$inst $inst/bin/qmail-inject demo@localhost
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
