#!/bin/sh
# run.sh: build the libFuzzer harnesses and run each one for a while.
#
#   sh tests/fuzz/run.sh [SECONDS]      (or FUZZ_SECONDS; default 60)
#
# Everything is built into build-fuzz/ (FUZZ_BUILD) with clang (FUZZ_CC)
# and -fsanitize=fuzzer,address,undefined: the library sources are
# compiled here, not taken from build/libqm.a, which lacks the fuzzer's
# coverage instrumentation. Each harness runs on a scratch copy of its
# seed corpus, so the tree is never modified; crash inputs are saved as
# build-fuzz/crashes/<harness>-*. FUZZ_TARGETS picks harnesses (default:
# all tests/fuzz/fuzz_*.c). Exits 1 if any harness fails to build or
# finds a crash, a leak, undefined behaviour or a timeout.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

seconds=${1:-${FUZZ_SECONDS:-60}}
case $seconds in
'' | *[!0-9]*)
	echo "run.sh: seconds must be a number, not '$seconds'" >&2
	exit 2
	;;
esac
out=${FUZZ_BUILD:-build-fuzz}
cc=${FUZZ_CC:-clang}
prefix=${PREFIX:-/var/qmail}
split=${SPLIT:-23}
if [ -z "${FUZZ_TARGETS:-}" ]; then
	FUZZ_TARGETS=
	for f in tests/fuzz/fuzz_*.c; do
		FUZZ_TARGETS="$FUZZ_TARGETS $(basename "$f" .c)"
	done
fi
targets=$FUZZ_TARGETS

# Sanitizer reports must stop the run: libFuzzer then saves the input.
san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
cflags="-std=c17 -g -O1 $san -fno-omit-frame-pointer -Wall -Wextra
	-Wformat=2 -Wno-unused-parameter -D_DEFAULT_SOURCE
	-D_XOPEN_SOURCE=700 -Isrc -I$out/gen
	$(pkg-config --cflags libcdb 2>/dev/null || true)"
libs="$(pkg-config --libs libcdb 2>/dev/null || echo -lcdb)
	$(pkg-config --libs libxcrypt 2>/dev/null || echo -lcrypt)"

# The same configuration header the Makefile writes.
mkdir -p "$out/gen" "$out/obj" "$out/crashes"
printf '#define AUTO_PREFIX "%s"\n#define AUTO_SPLIT %s\n' \
	"$prefix" "$split" >"$out/gen/auto.h"

# The library: every non-main source the harnesses may need. Only the
# members a harness uses are linked, as with libqm.a.
lib="$out/libqm-fuzz.a"
rm -f "$lib"
for src in src/lib/*.c src/mail/*.c src/smtp/*.c src/qmqp/netstring.c; do
	if grep -q '^int main(' "$src"; then
		continue
	fi
	obj="$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
	# shellcheck disable=SC2086
	$cc $cflags -c -o "$obj" "$src"
	ar rc "$lib" "$obj"
done
ranlib "$lib"

for t in $targets; do
	# shellcheck disable=SC2086
	$cc $cflags -Itests/fuzz -o "$out/$t" "tests/fuzz/$t.c" "$lib" $libs
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/qm-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM

failed=
for t in $targets; do
	mkdir "$scratch/$t"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp tests/fuzz/corpus/"$t"/* "$scratch/$t/" 2>/dev/null || true
	fi
	echo "=== $t: $seconds s"
	if "$out/$t" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$out/crashes/$t-" "$scratch/$t"; then
		echo "=== $t: ok"
	else
		echo "=== $t: FAILED (inputs in $out/crashes/)" >&2
		failed="$failed $t"
	fi
done

if [ -n "$failed" ]; then
	echo "run.sh: failed:$failed" >&2
	exit 1
fi
echo "run.sh: all harnesses ran clean"
