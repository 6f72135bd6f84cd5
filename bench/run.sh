#!/bin/bash
# The `make bench` entry: runs every other bench/*.sh in turn, shows its
# output and fails if any of them failed.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

failed=()
ran=0
for b in bench/*.sh; do
    [ -f "$b" ] || continue
    [ "$(basename "$b")" = run.sh ] && continue
    ran=$((ran + 1))
    echo "== $b"
    if bash "$b"; then
        echo "== $b: done"
    else
        rc=$?
        echo "== $b: FAILED (exit status $rc)" >&2
        failed+=("$b")
    fi
done

if [ "$ran" -eq 0 ]; then
    echo "bench: no benchmarks found in bench/" >&2
    exit 1
fi
if [ ${#failed[@]} -ne 0 ]; then
    echo "bench: ${#failed[@]} of $ran failed: ${failed[*]}" >&2
    exit 1
fi
echo "bench: $ran benchmark(s) done"
