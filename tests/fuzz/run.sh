#!/bin/sh
# run.sh: build the fuzz harnesses and run each one for a while.
#
#   sh tests/fuzz/run.sh [SECONDS]      (or FUZZ_SECONDS; default 60)
#
# FUZZ_ENGINE chooses how:
#   libfuzzer   (default) clang -fsanitize=fuzzer,address,undefined; each
#               harness fuzzes for SECONDS from a scratch copy of its seed
#               corpus, so the tree is never modified
#   afl         afl-clang-fast (FUZZ_CC) with ASan and UBSan and the
#               driver tests/fuzz/fuzz_main.c; each harness runs under
#               afl-fuzz -V SECONDS (without afl-fuzz: replay only)
#   standalone  plain clang (FUZZ_CC) with ASan and UBSan and the same
#               driver; replays every seed, no fuzzing: for machines
#               without libFuzzer
# The library sources are compiled here, not taken from build/libqm.a,
# which lacks the sanitizers and the fuzzer's instrumentation. Objects go
# to FUZZ_BUILD (default build-fuzz, build-fuzz/afl, build-fuzz/standalone).
# Inputs that fail are saved as FUZZ_BUILD/crashes/<harness>-*, the log of
# each harness as FUZZ_BUILD/logs/<harness>.log. FUZZ_TARGETS picks
# harnesses (default: all tests/fuzz/fuzz_*.c); FUZZ_JOBS runs that many
# compilers and harnesses at once (default: the number of CPUs). Exits 1
# if any harness fails to build or finds a crash, a leak, undefined
# behaviour or a timeout.
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
engine=${FUZZ_ENGINE:-libfuzzer}
jobs=${FUZZ_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
case $jobs in
'' | 0 | *[!0-9]*) jobs=1 ;;
esac
prefix=${PREFIX:-/var/qmail}
split=${SPLIT:-23}

# Sanitizer reports must stop the run, so that the input is kept.
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
driver=
case $engine in
libfuzzer)
	cc=${FUZZ_CC:-clang}
	san="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
	out=${FUZZ_BUILD:-build-fuzz}
	;;
afl)
	cc=${FUZZ_CC:-afl-clang-fast}
	driver=tests/fuzz/fuzz_main.c
	out=${FUZZ_BUILD:-build-fuzz/afl}
	if ! command -v "$cc" >/dev/null 2>&1; then
		echo "run.sh: $cc not found: install AFL++ (Debian: afl++)," \
			"or use FUZZ_ENGINE=standalone" >&2
		exit 2
	fi
	;;
standalone)
	cc=${FUZZ_CC:-clang}
	driver=tests/fuzz/fuzz_main.c
	out=${FUZZ_BUILD:-build-fuzz/standalone}
	;;
*)
	echo "run.sh: FUZZ_ENGINE must be libfuzzer, afl or standalone," \
		"not '$engine'" >&2
	exit 2
	;;
esac

if [ -z "${FUZZ_TARGETS:-}" ]; then
	FUZZ_TARGETS=
	for f in tests/fuzz/fuzz_*.c; do
		case $f in
		tests/fuzz/fuzz_main.c) continue ;;
		esac
		FUZZ_TARGETS="$FUZZ_TARGETS $(basename "$f" .c)"
	done
fi
# Words, trimmed.
# shellcheck disable=SC2086,SC2116
targets=$(echo $FUZZ_TARGETS)

cflags="-std=c17 -g -O1 $san -fno-omit-frame-pointer -Wall -Wextra
	-Wformat=2 -Wno-format-nonliteral -Wno-unused-parameter
	-D_DEFAULT_SOURCE -D_XOPEN_SOURCE=700 -Isrc -I$out/gen
	$(pkg-config --cflags libcdb 2>/dev/null || true)"
libs="$(pkg-config --libs libcdb 2>/dev/null || echo -lcdb)
	$(pkg-config --libs libxcrypt 2>/dev/null || echo -lcrypt) -lresolv"

# The same configuration header the Makefile writes.
mkdir -p "$out/gen" "$out/obj" "$out/crashes" "$out/logs"
printf '#define AUTO_PREFIX "%s"\n#define AUTO_SPLIT %s\n' \
	"$prefix" "$split" >"$out/gen/auto.h"

# A missing libFuzzer runtime should say so, not fail in the linker.
if [ "$engine" = libfuzzer ]; then
	echo 'int LLVMFuzzerTestOneInput(const char *p, long n) { return 0; }' \
		>"$out/probe.c"
	# shellcheck disable=SC2086
	if ! $cc $san -o "$out/probe" "$out/probe.c" >"$out/probe.log" 2>&1; then
		cat "$out/probe.log" >&2
		echo "run.sh: $cc cannot build a libFuzzer harness: install" \
			"clang and its runtime (Debian 12: clang" \
			"libclang-rt-14-dev), or use FUZZ_ENGINE=standalone" >&2
		exit 2
	fi
fi

# The library: every non-main source a harness may need. Only the
# members a harness uses are linked, as with libqm.a. src/tls is left
# out but for tlsblock.c, the one module there without OpenSSL.
list="$out/sources"
: >"$list"
for src in src/lib/*.c src/mail/*.c src/smtp/*.c src/auth/*.c \
	src/pop3/*.c src/remote/*.c src/qmqp/*.c src/tls/tlsblock.c; do
	if grep -q '^int main(' "$src"; then
		continue
	fi
	echo "$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/') $src" >>"$list"
done
export QM_FUZZ_CC="$cc" QM_FUZZ_CFLAGS="$cflags"
echo "run.sh: $engine: compiling $(wc -l <"$list") sources with $cc"
# shellcheck disable=SC2016
xargs -n 2 -P "$jobs" sh -c '$QM_FUZZ_CC $QM_FUZZ_CFLAGS -c -o "$0" "$1"' \
	<"$list"
lib="$out/libqm-fuzz.a"
rm -f "$lib"
# shellcheck disable=SC2046
ar rc "$lib" $(cut -d' ' -f1 "$list")
ranlib "$lib"

export QM_FUZZ_LINK="$driver $lib $libs"
# shellcheck disable=SC2016,SC2086
printf '%s\n' $targets | xargs -P "$jobs" -I{} sh -c \
	'$QM_FUZZ_CC $QM_FUZZ_CFLAGS -Itests/fuzz -o "$0/{}" "tests/fuzz/{}.c" \
		$QM_FUZZ_LINK' "$out"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/qm-fuzz.XXXXXX")
# Files the harnesses make (Maildirs, cdbs) go to memory when possible.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	files=$(mktemp -d /dev/shm/qm-fuzz.XXXXXX)
else
	files=$scratch/files
	mkdir "$files"
fi
trap 'rm -rf "$scratch" "$files"' EXIT
trap 'exit 130' INT TERM
export FUZZ_TMPDIR="$files"

# One harness; its output goes to its log. Returns non-zero on a finding.
run_libfuzzer() {
	"$out/$1" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/crashes/$1-" \
		"$scratch/$1"
}

run_afl() {
	if ! command -v afl-fuzz >/dev/null 2>&1; then
		echo "afl-fuzz not found: replaying the seeds only"
		"$out/$1" "$scratch/$1"
		return
	fi
	AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_QUIET=1 \
		AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
		afl-fuzz -V "$seconds" -m none -t 10000 -i "$scratch/$1" \
		-o "$scratch/$1.afl" -- "$out/$1" || return
	found=0
	for f in "$scratch/$1.afl"/default/crashes/id* \
		"$scratch/$1.afl"/default/hangs/id*; do
		[ -f "$f" ] || continue
		cp "$f" "$out/crashes/$1-$(basename "$(dirname "$f")")-$(
			sha1sum <"$f" | cut -c1-40)"
		found=1
	done
	return $found
}

run_one() {
	case $engine in
	libfuzzer) run_libfuzzer "$1" ;;
	afl) run_afl "$1" ;;
	standalone) "$out/$1" "$scratch/$1" ;;
	esac
}

# "runs seconds" from a finished harness's log.
tally() {
	case $engine in
	libfuzzer)
		sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' \
			"$out/logs/$1.log" | tail -n 1
		;;
	afl)
		f="$scratch/$1.afl/default/fuzzer_stats"
		if [ -f "$f" ]; then
			echo "$(sed -n 's/^execs_done *: *//p' "$f")" \
				"$(sed -n 's/^run_time *: *//p' "$f")"
		fi
		;;
	standalone)
		sed -n 's/^fuzz_main: \([0-9]*\) inputs ran clean/\1 -/p' \
			"$out/logs/$1.log"
		;;
	esac
}

for t in $targets; do
	mkdir "$scratch/$t"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp tests/fuzz/corpus/"$t"/* "$scratch/$t/" 2>/dev/null || true
	fi
	# afl-fuzz and the driver want at least one input, not empty.
	[ -n "$(ls "$scratch/$t")" ] || echo >"$scratch/$t/newline"
done

echo "run.sh: running $targets: $seconds s each, $jobs at a time"
failed=
summary=
batch=
pids=
running=0
# Wait for the harnesses started, in order, and note how each did.
finish_batch() {
	rest=$pids
	for t in $batch; do
		pid=${rest%% *}
		rest=${rest#* }
		if wait "$pid"; then
			status=ok
		else
			status=FAILED
			failed="$failed $t"
			echo "=== $t: FAILED; the end of $out/logs/$t.log:" >&2
			tail -n 40 "$out/logs/$t.log" >&2
		fi
		counts=$(tally "$t")
		runs=${counts%% *}
		secs=${counts#* }
		summary="$summary$(printf '%-20s %12s %6s  %s' "$t" \
			"${runs:--}" "${secs:--}" "$status")
"
		echo "=== $t: $status"
	done
	batch=
	pids=
	running=0
}
for t in $targets; do
	run_one "$t" >"$out/logs/$t.log" 2>&1 &
	batch="$batch $t"
	pids="$pids$! "
	running=$((running + 1))
	[ "$running" -lt "$jobs" ] || finish_batch
done
[ -z "$batch" ] || finish_batch

printf '%-20s %12s %6s  %s\n%s' harness runs secs result "$summary"
if [ -n "$failed" ]; then
	echo "run.sh: failed:$failed (inputs in $out/crashes/)" >&2
	exit 1
fi
echo "run.sh: all harnesses ran clean"
