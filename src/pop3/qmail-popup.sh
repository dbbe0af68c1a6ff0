#!/bin/sh
# qmail-popup: the old name and calling convention of the POP3 login
# front end, kept for existing run scripts (qmail-popup(8)).
#
# "qmail-popup hostname checkpassword prog..." becomes
# "qmail-authup pop3 checkpassword prog...": the hostname is accepted and
# ignored, since qmail-authup takes its greeting from control/. Every
# other argument is passed through unchanged, never through eval; this
# script must never read from or write to the client itself.
if [ $# -lt 3 ]; then
	echo "qmail-popup: usage: qmail-popup hostname checkpassword prog..." >&2
	exit 100
fi
shift
exec "${QMAILHOME:-@PREFIX@}/bin/qmail-authup" pop3 "$@"
