#!/bin/sh
# datemail: sendmail with a Date field for now added to the message.
#
# A Date set by the sender's clock may be wrong or missing; this puts
# the current date in front so that qmail-inject keeps it. It only
# execs predate and sendmail from the qmail home ($QMAILHOME when set,
# which is safe: this script is never setuid) and passes every
# argument through unchanged, never through eval.
home=${QMAILHOME:-@PREFIX@}
exec "$home/bin/predate" "$home/bin/sendmail" "$@"
