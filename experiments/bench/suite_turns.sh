#!/bin/bash
# The test suite of several trees in turns, each in its own checkout, one torch thread, CPU time beside wall time:
#
#     bash experiments/bench/suite_turns.sh OUT.txt TREE [TREE ...]
#
# Each TREE (e.g. `git worktree add --detach DIR COMMIT`) runs once, in the order given (list a tree twice to run it
# twice: new, old, old, new), with `PYTHONPATH=TREE OMP_NUM_THREADS=1 /usr/bin/time python -m pytest -q -p
# no:cacheprovider` from inside it. Appends one line per run to OUT.txt: the tree, its commit, pytest's summary line,
# then user and system CPU seconds and wall seconds (/usr/bin/time), then the load average after the run.
set -u
out=$(realpath -m "$1"); shift
log=$(mktemp)
for tree in "$@"; do
  cd "$tree" || exit 1
  s=$( { PYTHONPATH=$tree OMP_NUM_THREADS=1 /usr/bin/time -f "%U %S %e" python -m pytest -q -p no:cacheprovider \
        2>&1 >"$log"; } 2>&1 | tail -1)
  echo "$tree $(git rev-parse --short HEAD) $(grep -E 'passed' "$log" | tail -1) | $s | load $(cut -d' ' -f1-3 /proc/loadavg)" \
    >> "$out"
done
rm -f "$log"
