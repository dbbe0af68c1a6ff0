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

"$build/bin/qmail-instance" -r "$inst" >/dev/null
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
smtps_port=${QM_SMTPS_PORT:-2465}
submission_port=${QM_SUBMISSION_PORT:-2587}
pop3_port=${QM_POP3_PORT:-2110}
pop3s_port=${QM_POP3S_PORT:-2995}
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
for port in $smtp_port $smtps_port $submission_port $pop3_port $pop3s_port \
	$qmqp_port; do
	for h in $hosts; do
		if ! port_free "$h" "$port"; then
			echo "$me: fatal: port $port on $h is already in use" >&2
			exit 111
		fi
	done
done

myname=$(head -n 1 "$inst/control/me")
# Host qualification for submission: rewriting(5)'s defaults without
# "?:.defaultdomain", which would turn demo@localhost into
# demo@localhost.<me>. Written once; an edited file is kept.
if [ ! -e "$inst/control/rewrite" ]; then
	printf '*.:\n=:%s\n*+:.%s\n' "$myname" "$myname" >"$inst/control/rewrite"
	[ -z "$asuser" ] || chown "$account" "$inst/control/rewrite"
fi
tls=no
if [ -x "$inst/bin/sslserver" ] && [ -x "$inst/bin/mkcert" ]; then
	tls=yes
	# A self-signed certificate for the instance, made once.
	if [ ! -e "$inst/control/servercert.pem" ]; then
		$asuser env QMAILHOME="$inst" "$inst/bin/mkcert" "$myname" >/dev/null ||
			{ echo "$me: fatal: unable to make a certificate" >&2; exit 111; }
	fi
fi

# The demo mailbox's password, made once and kept in demo.password.
auth=no
if [ -x "$inst/bin/qmail-passwd" ] && [ -x "$inst/bin/checkpassword-cdb" ]; then
	auth=yes
	if [ ! -s "$inst/demo.password" ]; then
		pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
		(umask 077 && printf '%s\n' "$pw" >"$inst/demo.password.tmp") &&
			mv "$inst/demo.password.tmp" "$inst/demo.password"
		[ -z "$asuser" ] || chown "$account" "$inst/demo.password"
		printf '%s\n' "$pw" | $asuser env QMAILHOME="$inst" \
			"$inst/bin/qmail-passwd" add demo >/dev/null ||
			{ echo "$me: fatal: unable to set the demo password" >&2; exit 111; }
	fi
fi

rm -rf "$inst/service"
mkdir -p "$inst/service"
if [ -x "$inst/bin/qmail-start" ]; then
	service qmail "$inst/bin/qmail-start" "$(head -n 1 "$inst/control/defaultdelivery")"
fi
# tcpserver and sslserver: -R no ident lookup, -H no reverse DNS, -l our
# name. Everything runs as the instance's account already, so sslserver
# gets no -u/-g: its TLS process and the mail program share that account.
tcp="tcpserver -v -R -H -l $myname"
ssl="env CERTFILE=$inst/control/servercert.pem $inst/bin/sslserver -e -v -R -H -l $myname"
bin=$inst/bin
for h in $hosts; do
	case $h in *:*) tag=6 ;; *) tag=4 ;; esac
	if [ $tls = yes ]; then
		service "smtpd$tag" env UCSPITLS= $ssl -n "$h" "$smtp_port" "$bin/qmail-smtpd"
		service "smtps$tag" env SMTPS=1 $ssl "$h" "$smtps_port" "$bin/qmail-smtpd"
	else
		service "smtpd$tag" $tcp "$h" "$smtp_port" "$bin/qmail-smtpd"
	fi
	if [ $tls = yes ] && [ $auth = yes ]; then
		service "submission$tag" env UCSPITLS=! $ssl -n "$h" "$submission_port" \
			"$bin/qmail-reup" -t 5 "$bin/qmail-authup" smtp \
			"$bin/checkpassword-cdb" "$bin/checknotroot" "$bin/qmail-ofmipd"
		service "pop3d$tag" env UCSPITLS=! $ssl -n "$h" "$pop3_port" \
			"$bin/qmail-authup" pop3 "$bin/checkpassword-cdb" \
			"$bin/checknotroot" "$bin/qmail-pop3d" Maildir
		service "pop3s$tag" env POP3S=1 $ssl "$h" "$pop3s_port" \
			"$bin/qmail-authup" pop3 "$bin/checkpassword-cdb" \
			"$bin/checknotroot" "$bin/qmail-pop3d" Maildir
	fi
	service "qmqpd$tag" $tcp "$h" "$qmqp_port" "$bin/qmail-qmqpd"
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

# svscan in its own session, so that Ctrl-C reaches only this script,
# which then stops the services in order. The trap is set before the
# banner says Ctrl-C works.
setsid svscan "$inst/service" &
svscan=$!
trap stop INT TERM

password=$(cat "$inst/demo.password" 2>/dev/null || echo "(none)")
cat >&2 <<EOF
$me: mail system running in $inst (account $account)
  ports (127.0.0.1 and ::1): smtp $smtp_port (STARTTLS), smtps $smtps_port,
    submission $submission_port (STARTTLS + AUTH), pop3 $pop3_port (STLS),
    pop3s $pop3s_port, qmqp $qmqp_port
  mailbox demo, password $password (also in $inst/demo.password)
  send:  swaks --server 127.0.0.1:$smtp_port --tls --to demo@localhost
     or: swaks --server 127.0.0.1:$submission_port --tls --auth PLAIN \\
           --auth-user demo --auth-password $password --to demo@localhost
     or: printf 'Subject: hello\\n\\nhi\\n' | $asuser env QMAILHOME=$inst $inst/bin/sendmail demo@localhost
  read:  openssl s_client -quiet -starttls pop3 -connect 127.0.0.1:$pop3_port
         (then: USER demo, PASS $password, LIST, RETR 1, QUIT)
  logs:  $inst/log/
Press Ctrl-C to stop.
EOF

wait "$svscan" || true
stop
