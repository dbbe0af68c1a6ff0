#!/bin/sh
# deps.sh: installs the Debian packages this project needs to build, run
# and test (and benchmark), and nothing else. As root it installs what is
# missing (after apt-get update); otherwise it prints the exact command.
#
# Postfix is a test peer and the benchmark's yardstick, never this
# machine's mail system: debconf is told "No configuration" before it is
# installed, and afterwards a system Postfix that the install started is
# stopped and a main.cf that it created is removed. An existing Postfix
# setup is never touched.
set -eu

me=deps
PACKAGES="gcc make pkg-config libcdb-dev tinycdb libssl-dev libcrypt-dev
openssl ucspi-tcp-ipv6 daemontools passwd procps python3 python3-pytest
python3-dnslib python3-aiosmtpd swaks postfix msmtp fetchmail
sasl2-bin libsasl2-modules libsasl2-modules-db cppcheck clang-tidy man-db
clang libclang-rt-14-dev musl-tools"
preseed='postfix postfix/main_mailer_type select No configuration'

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "$me: not a Debian system; install the equivalents of:" $PACKAGES >&2
	exit 0
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "$me: missing packages; as root, run:" >&2
	case " $missing " in
	*" postfix "*) echo "echo '$preseed' | debconf-set-selections" >&2 ;;
	esac
	echo "apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi

# Debian's Postfix master process, if one runs.
system_master() {
	ps -eo pid=,args= | awk '$2 ~ /\/postfix\/sbin\/master$/ { print $1 }'
}
had_maincf=no
[ -e /etc/postfix/main.cf ] && had_maincf=yes
was_running=$(system_master)

echo "$me: installing:$missing" >&2
case " $missing " in
*" postfix "*) echo "$preseed" | debconf-set-selections ;;
esac
apt-get update
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing

# Undo whatever the Postfix install did beyond installing.
now_running=$(system_master)
if [ -n "$now_running" ] && [ -z "$was_running" ]; then
	echo "$me: warning: the install started a system Postfix" \
		"(pid $now_running); stopping it" >&2
	# shellcheck disable=SC2086 # one word per pid
	/usr/sbin/postfix stop >/dev/null 2>&1 || kill $now_running || true
fi
if [ "$had_maincf" = no ] && [ -e /etc/postfix/main.cf ]; then
	echo "$me: warning: the install created /etc/postfix/main.cf;" \
		"removing it" >&2
	rm -f /etc/postfix/main.cf
fi
