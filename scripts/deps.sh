#!/bin/sh
# deps.sh: installs the Debian packages this project needs to build, run
# and test, and nothing else. As root it installs what is missing (after
# apt-get update); otherwise it prints the exact command to run.
set -eu

PACKAGES="gcc make pkg-config libcdb-dev tinycdb libssl-dev libcrypt-dev
openssl ucspi-tcp-ipv6 daemontools passwd procps python3 python3-pytest
python3-dnslib python3-aiosmtpd swaks"

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps: not a Debian system; install the equivalents of:" $PACKAGES >&2
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

if [ "$(id -u)" -eq 0 ]; then
	echo "deps: installing:$missing" >&2
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
else
	echo "deps: missing packages; as root, run:" >&2
	echo "apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
