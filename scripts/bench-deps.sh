#!/bin/sh
# bench-deps.sh: installs Debian's Postfix for `make bench` only.
#
# The benchmark runs Postfix from private configuration and queue
# directories, so the package must configure nothing and start nothing:
# debconf is told "No configuration" before the install, and afterwards
# this checks that no system Postfix runs and that no /etc/postfix/main.cf
# appeared. It must never touch an existing Postfix setup. As root it
# installs; otherwise it prints the command to run.
set -eu

me=bench-deps
preseed='postfix postfix/main_mailer_type select No configuration'
install='DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix'

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "$me: not a Debian system; install Postfix (3.x) so that" \
		"postfix and sendmail are in /usr/sbin" >&2
	exit 1
fi
if dpkg-query -W -f='${Status}\n' postfix 2>/dev/null |
	grep -q 'install ok installed'; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "$me: Postfix is missing; as root, run:" >&2
	echo "echo '$preseed' | debconf-set-selections &&" \
		"apt-get update && $install" >&2
	exit 1
fi

# A system master process: Debian's is /usr/lib/postfix/sbin/master.
system_master() {
	ps -eo pid=,args= | awk '$2 ~ /\/postfix\/sbin\/master$/ { print $1 }'
}

had_maincf=no
[ -e /etc/postfix/main.cf ] && had_maincf=yes
was_running=$(system_master)

echo "$me: installing postfix (configured for nothing, started never)" >&2
echo "$preseed" | debconf-set-selections
# Old or missing package lists make the install fail: update, then retry.
if ! apt-cache show postfix >/dev/null 2>&1 ||
	! env DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends postfix; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends postfix
fi

# Undo whatever the install did beyond installing: stop a master it
# started (before removing main.cf, which `postfix stop` reads).
now_running=$(system_master)
if [ -n "$now_running" ] && [ -z "$was_running" ]; then
	echo "$me: warning: the install started a system Postfix" \
		"(pid $now_running); stopping it" >&2
	# shellcheck disable=SC2086 # one word per pid
	/usr/sbin/postfix stop >/dev/null 2>&1 || kill $now_running || true
	sleep 1
	if [ -n "$(system_master)" ]; then
		echo "$me: fatal: a system Postfix is still running" >&2
		exit 1
	fi
fi
if [ "$had_maincf" = no ] && [ -e /etc/postfix/main.cf ]; then
	echo "$me: warning: the install created /etc/postfix/main.cf;" \
		"removing it" >&2
	rm -f /etc/postfix/main.cf
fi
echo "$me: postfix installed; no system Postfix configured or running" >&2
