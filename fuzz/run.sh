#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, starting from the committed seeds, and prints
# the executions. New inputs go to a scratch corpus under fuzz/target, not into the repository.
#
#   FUZZ_SECONDS=20 fuzz/run.sh            # each target for 20 s (the default)
#   fuzz/run.sh sync_push                  # one target
#
# cargo-fuzz passes -Z flags to rustc, which needs nightly. Only stable is installed here, so
# RUSTC_BOOTSTRAP=1 unlocks them on the stable compiler (for this build only).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# Where the (long) sanitizer build goes; CI points it outside the clone so runs reuse it.
target_dir=${FUZZ_TARGET_DIR:-target}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi


total=0
for target in "${targets[@]}"; do
  scratch="target/corpus/$target"
  mkdir -p "$scratch"
  log="target/$target.log"
  if ! cargo fuzz run --target-dir "$target_dir" "$target" "$scratch" "seeds/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target FAILED (log: fuzz/$log; reproducer under fuzz/artifacts/$target)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
  echo "fuzz target $target: ${runs:-0} executions in ${seconds} s, no crash"
  total=$((total + ${runs:-0}))
done
echo "fuzzing: $total executions over ${#targets[@]} targets"
