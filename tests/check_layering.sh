#!/usr/bin/env bash
# Checks the dependency rule from ARCHITECTURE.md: only net/uring.c includes liburing.h, and
# no lower module includes a header of a module above it.
set -u
root=${1:-.}
cd "$root" || exit 1
fail=0
uring=$(grep -rl --include='*.c' --include='*.h' '#include *<liburing' net engine cache resilience include bench 2>/dev/null | grep -v '^net/uring.c$')
if [ -n "$uring" ]; then echo "liburing.h included outside net/uring.c: $uring"; fail=1; fi
for mod in net resilience; do
    [ -d "$mod" ] || continue
    for f in engine cache; do
        for h in $(ls "$f"/*.h 2>/dev/null); do
            b=$(basename "$h")
            if grep -rqs "#include \"$b\"" "$mod"; then echo "$mod includes $f header $b"; fail=1; fi
        done
    done
done
# cache may use net and resilience, never engine.
for h in $(ls engine/*.h 2>/dev/null); do
    b=$(basename "$h")
    if grep -rqs "#include \"$b\"" cache; then echo "cache includes engine header $b"; fail=1; fi
done
[ $fail -eq 0 ] && echo "layering: 1 passed, 0 failed" || echo "layering: 0 passed, 1 failed"
exit $fail
