#!/usr/bin/env bash
# Clean release builds of the sagebrush binary with and without the `aws` feature, one after the
# other in fresh target folders: wall and CPU time, binary size, and size stripped of its line tables.
# Usage: bench/build/run.sh [scratch-dir]   (default /tmp/sagebrush-build-bench; needs ~8 GB)
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch="${1:-/tmp/sagebrush-build-bench}"
rm -rf "$scratch"
mkdir -p "$scratch"
cargo fetch --locked >/dev/null
printf '%-10s %10s %10s %12s %14s %14s\n' build wall_s cpu_s peak_rss_GB binary_MB stripped_MB
for build in default aws; do
  features=()
  [[ $build == aws ]] && features=(--features sagebrush/aws)
  target="$scratch/$build"
  # %e wall seconds, %U+%S CPU seconds of the build and every rustc under it, %M the largest one's KB.
  /usr/bin/time -o "$scratch/$build.time" -f '%e %U %S %M' \
    env CARGO_TARGET_DIR="$target" cargo build --release --locked -p sagebrush "${features[@]}" >"$scratch/$build.log" 2>&1
  read -r wall user sys rss <"$scratch/$build.time"
  binary="$target/release/sagebrush"
  strip -o "$scratch/$build.stripped" "$binary"
  printf '%-10s %10.0f %10.0f %12.1f %14.1f %14.1f\n' "$build" "$wall" "$(echo "$user + $sys" | bc)" \
    "$(echo "$rss / 1000000" | bc -l)" \
    "$(echo "$(stat -c %s "$binary") / 1000000" | bc -l)" "$(echo "$(stat -c %s "$scratch/$build.stripped") / 1000000" | bc -l)"
done
rm -rf "$scratch"
