#!/usr/bin/env bash
# Runs the fuzz targets with libFuzzer through cargo fuzz and records each
# run in tests/fuzz/RESULTS.md.
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET ...]
#
# SECONDS per target defaults to 600 (the project's bar: ten minutes each
# without a crash). TARGETs default to all of them. Installs cargo-fuzz if
# missing. The toolchain here is stable: RUSTC_BOOTSTRAP=1 lets cargo fuzz
# pass its -Z flags, and `-s none` turns off the sanitizer (the fuzzed crates
# forbid unsafe code, so AddressSanitizer would find nothing and slow the
# run); debug assertions are on, so integer overflow panics count as crashes.
# New inputs go to .fuzz-corpus/<target> (git-ignored); the committed seeds
# in tests/fuzz/seeds/<target> are read, never written. A crash leaves its
# input in tests/fuzz/artifacts/<target>/ and makes this script fail.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
secs="${1:-600}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(envelope_decode event_fields journal_import proof_verify sealed_open)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/tests/fuzz/target}"
cargo fuzz build --fuzz-dir tests/fuzz -s none --debug-assertions
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates tests/fuzz || echo '+dirty')"
status=0
for t in "${targets[@]}"; do
    mkdir -p ".fuzz-corpus/$t"
    log="$(mktemp)"
    echo "fuzz: $t for ${secs}s"
    if cargo fuzz run --fuzz-dir tests/fuzz -s none --debug-assertions "$t" ".fuzz-corpus/$t" "tests/fuzz/seeds/$t" -- \
        -max_total_time="$secs" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
        result="no crash"
    else
        result="CRASH: see tests/fuzz/artifacts/$t/"
        status=1
    fi
    runs="$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')"
    line="$(grep -E 'DONE|pulse|NEW' "$log" | tail -1)"
    cov="$(grep -oE 'cov: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')"
    eps="$(grep -oE 'exec/s: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo '?')"
    printf '| %s | %s | %s | %s s | %s | %s | %s | %s |\n' \
        "$(date -u +%Y-%m-%dT%H:%MZ)" "$commit" "$t" "$secs" "$runs" "$eps" "$cov" "$result" \
        >>tests/fuzz/RESULTS.md
    tail -3 "$log"
    rm -f "$log"
done
exit "$status"
