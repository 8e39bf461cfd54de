#!/usr/bin/env bash
# Runs one Criterion test binary and fails it when a sanitizer reported anything: Criterion
# runs tests in child processes and a LeakSanitizer report there does not fail the test.
set -u
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1
rc=$?
cat "$out"
if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$out"; then
    echo "sanitizer report above: failing $1"
    exit 1
fi
exit $rc
