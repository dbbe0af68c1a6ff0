#!/bin/sh
# Runs every unit test program in the given directory and sums the results.
# Ends with one line "N passed, N failed"; exits 1 when anything failed.
dir=${1:?usage: run.sh dir}
passed=0
failed=0
for t in "$dir"/t_*; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1)
	status=$?
	line=$(printf '%s\n' "$out" | tail -n 1)
	p=$(printf '%s\n' "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
	f=$(printf '%s\n' "$line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
	if [ -z "$p" ]; then
		# The program died before reporting: count it as one failure.
		p=0
		f=1
	fi
	if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	if [ "$f" -ne 0 ]; then
		printf '%s\n' "$out" | sed "s|^|$(basename "$t"): |"
	fi
	printf '%-16s %s\n' "$(basename "$t")" "$line"
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
