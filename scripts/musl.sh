#!/bin/sh
# musl.sh: finds out whether the per-message programs can be linked
# statically against musl here, for the Makefile.
#
#   sh scripts/musl.sh MUSL_CC OUTDIR
#
# Prints one line, "LIBDIR CDB_ARCHIVE", when a probe program built the
# way the Makefile builds those programs (static PIE, musl's rcrt1.o,
# tinycdb's static archive) links and runs; prints nothing otherwise.
# Also makes OUTDIR/inc/cdb.h, because musl-gcc searches no system
# include directory. A working setup is kept in OUTDIR/probe and reused
# while this script is older than it; a failure is not kept, because
# "make check" and "make run" parse the Makefile before scripts/deps.sh
# installs musl-gcc (Debian's musl-tools), and their sub-makes must see
# it. This script never installs anything.
set -u

cc=$1
out=$2
cache=$out/probe
if [ -f "$cache" ] && [ "$cache" -nt "$0" ]; then
	cat "$cache"
	exit 0
fi
mkdir -p "$out/inc" || exit 0
rm -f "$cache"

say() {
	echo "musl.sh: $*; the per-message programs use the default C library" >&2
}

ccpath=$(command -v "$cc" 2>/dev/null) || {
	say "$cc not found (Debian: musl-tools)"
	exit 0
}
# musl-gcc is a wrapper that passes -specs DIR/musl-gcc.specs; the start
# files for a static PIE (rcrt1.o) live in that DIR. MUSL_LIBDIR overrides.
libdir=${MUSL_LIBDIR:-$(sed -n 's/.*-specs "\{0,1\}\([^" ]*\)\/musl-gcc\.specs.*/\1/p' \
	"$ccpath" 2>/dev/null | head -n 1)}
if [ -z "$libdir" ] || [ ! -f "$libdir/rcrt1.o" ]; then
	say "no rcrt1.o next to musl-gcc.specs (set MUSL_LIBDIR)"
	exit 0
fi
cdba=$(cc -print-file-name=libcdb.a 2>/dev/null)
case $cdba in
/*) ;;
*)
	say "no static libcdb.a (Debian: libcdb-dev)"
	exit 0
	;;
esac
cdbh=$(printf '#include <cdb.h>\n' | cc -M -E -x c - 2>/dev/null |
	tr ' \\' '\n\n' | grep '/cdb\.h$' | head -n 1)
if [ -z "$cdbh" ]; then
	say "no cdb.h"
	exit 0
fi
ln -sf "$cdbh" "$out/inc/cdb.h" || exit 0

printf '%s\n' '#include <cdb.h>' '#include <fcntl.h>' '#include <unistd.h>' \
	'int main(void) { struct cdb c; int fd = open("/dev/null", O_RDONLY);' \
	'return cdb_init(&c, fd) == 0 ? 0 : 0; }' >"$out/probe.c"
crtbegin=$("$cc" -print-file-name=crtbeginS.o)
crtend=$("$cc" -print-file-name=crtendS.o)
if "$cc" -std=c17 -O2 -fPIE -I"$out/inc" -static-pie -nostartfiles \
	-Wl,-Bstatic -Wl,--no-dynamic-linker -o "$out/probe-prog" \
	"$libdir/rcrt1.o" "$libdir/crti.o" "$crtbegin" "$out/probe.c" \
	"$cdba" "$crtend" "$libdir/crtn.o" 2>"$out/probe.err" &&
	"$out/probe-prog" && ! grep -q 'ld-musl-\|ld-linux' "$out/probe-prog"; then
	echo "$libdir $cdba" >"$cache"
	cat "$cache"
else
	say "the probe failed (see $out/probe.err)"
fi
rm -f "$out/probe-prog"
exit 0
