#!/bin/sh
# lint.sh: runs cppcheck and clang-tidy over every C file in src/ and
# tests/unit with the build's preprocessor flags, prints each finding
# and a one-line summary, and exits 1 when there is any finding. `make
# lint` runs it with the flags of the Makefile. It only reads the tree: it
# must never change a file, and never hides a finding except through the
# reasoned entries of scripts/lint/.
#
#   sh scripts/lint.sh -std=c17 -D... -Isrc -Ibuild/gen ...
#
# Configuration: .clang-tidy (the checks, and why some are off),
# scripts/lint/cppcheck.cfg (facts cppcheck cannot see, such as which of
# our functions never return), scripts/lint/cppcheck-suppressions.xml and
# scripts/lint/clang-tidy.supp (single false positives, with reasons).
# LINT_JOBS sets the parallelism (default 2).
set -eu

me=lint
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
	echo "usage: $me CFLAG... (run it as: make lint)" >&2
	exit 2
fi
for tool in cppcheck clang-tidy; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$me: $tool is not installed (make deps installs it)" >&2
		exit 2
	fi
done
jobs=${LINT_JOBS:-2}

# The build's flags: clang-tidy takes them all, cppcheck only what
# changes the preprocessing. No flag of the Makefile holds a space.
cflags="$* -Itests/unit"
cppflags=""
for f in "$@" -Itests/unit; do
	case $f in
	-D* | -U* | -I*) cppflags="$cppflags $f" ;;
	esac
done

# Checks that only make sense for production code, off for the tests:
# clang-analyzer-*: CHECK() records a failure and goes on, so every path
#   past a failed CHECK reads as a NULL or uninitialised use; the tests run
#   under ASan and UBSan instead (make SAN=1 check), and the analyzer would
#   double the time of this script.
# bugprone-not-null-terminated-result: test buffers carry explicit lengths.
# bugprone-suspicious-include: a test includes a .c file to reach its
#   static functions.
# bugprone-macro-parentheses: test macros take string literals only.
# bugprone-too-small-loop-variable: a char loop over 'A'..'Z' is exact.
# cert-msc30-c, cert-msc32-c (and their C++ names): a fixed-seed rand()
#   keeps a test repeatable.
# cert-err34-c: atoi on strings the test itself wrote.
test_checks='-clang-analyzer-*,-bugprone-not-null-terminated-result,-bugprone-suspicious-include,-bugprone-macro-parentheses,-bugprone-too-small-loop-variable,-cert-msc30-c,-cert-msc32-c,-cert-msc50-cpp,-cert-msc51-cpp,-cert-err34-c'

src_files=$(find src -name '*.c' | LC_ALL=C sort)
test_files=$(find tests/unit -name '*.c' | LC_ALL=C sort)
nfiles=$(printf '%s\n%s\n' "$src_files" "$test_files" | grep -c .)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
start=$(date +%s)

# shellcheck disable=SC2086 # one word per flag
cppcheck -q -j "$jobs" --std=c11 --max-configs=1 \
	--enable=warning,style,performance,portability,information \
	--library=posix --library=openssl \
	--library=scripts/lint/cppcheck.cfg \
	--suppress-xml=scripts/lint/cppcheck-suppressions.xml \
	--template='{file}:{line}: {severity}: {message} [{id}]' \
	$cppflags src tests/unit 2>"$tmp/cppcheck" >/dev/null ||
	echo "$me: cppcheck failed (exit $?)" >>"$tmp/cppcheck"
cpp_findings=$(grep -c . "$tmp/cppcheck" || true)

# Four files per clang-tidy run, $jobs runs at a time; $1 holds extra
# options. A file that does not compile makes clang-tidy fail.
tidy() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	LINT_CFLAGS=$cflags LINT_EXTRA=$1 xargs -r -P "$jobs" -n 4 sh -c \
		'set -f; exec clang-tidy --quiet $LINT_EXTRA "$@" -- $LINT_CFLAGS' \
		clang-tidy >>"$tmp/tidy" 2>>"$tmp/tidy.err"
}
tidy_rc=0
printf '%s\n' "$src_files" | tidy "" || tidy_rc=$?
printf '%s\n' "$test_files" | tidy "--checks=$test_checks" || tidy_rc=$?

# Keep the warnings (with their notes) once each, drop the accepted ones,
# and report suppressions that no longer match anything.
awk -v root="$PWD/" -v supp=scripts/lint/clang-tidy.supp \
	-v count="$tmp/tidy.count" '
function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
function rel(s) { return index(s, root) == 1 ? substr(s, length(root) + 1) : s }
function flush(  i) {
	if (head == "" || seen[head]++) { head = ""; return }
	for (i = 1; i <= nsupp; i++)
		if (file == sfile[i] && index("," checks ",", "," scheck[i] ",") &&
		    index(code, stext[i])) {
			used[i]++
			head = ""
			return
		}
	printf "%s", block
	found++
	head = ""
}
BEGIN {
	while ((getline line < supp) > 0) {
		lineno++
		if (line ~ /^[ \t]*(#|$)/)
			continue
		if (split(line, f, "|") != 4) {
			printf "%s:%d: malformed entry\n", supp, lineno
			found++
			continue
		}
		nsupp++
		scheck[nsupp] = trim(f[1]); sfile[nsupp] = trim(f[2])
		stext[nsupp] = trim(f[3]); sline[nsupp] = lineno
	}
}
/^[^ \t].*:[0-9]+:[0-9]+: (warning|error): .*\]$/ {
	flush()
	head = rel($0); block = head "\n"; want_code = 1
	file = head; sub(/:.*/, "", file)
	checks = head; sub(/.*\[/, "", checks); sub(/\]$/, "", checks)
	next
}
head != "" {
	if (want_code) { code = $0; want_code = 0 }
	block = block rel($0) "\n"
}
END {
	flush()
	for (i = 1; i <= nsupp; i++)
		if (!used[i]) {
			printf "%s:%d: suppression matches nothing: delete it\n", supp, sline[i]
			found++
		}
	print found + 0 > count
}' "$tmp/tidy" >"$tmp/tidy.out"
tidy_findings=$(cat "$tmp/tidy.count")
if [ "$tidy_rc" -ne 0 ]; then
	grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Error while processing' \
		"$tmp/tidy.err" >>"$tmp/tidy.out" || true
	echo "$me: clang-tidy failed (exit $tidy_rc)" >>"$tmp/tidy.out"
	tidy_findings=$((tidy_findings + 1))
fi

cat "$tmp/cppcheck" "$tmp/tidy.out"
secs=$(($(date +%s) - start))
echo "$me: $nfiles files; cppcheck: $cpp_findings findings;" \
	"clang-tidy: $tidy_findings findings; ${secs}s on $jobs jobs"
[ "$cpp_findings" -eq 0 ] && [ "$tidy_findings" -eq 0 ]
