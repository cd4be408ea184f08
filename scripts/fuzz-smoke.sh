#!/usr/bin/env bash
# A short, bounded run of every fuzz target (CI): builds the targets with cargo-fuzz on the
# nightly toolchain and runs each for FUZZ_SECONDS (default 10) from its committed seeds. A
# crash fails the run and leaves the input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-smoke.sh                 every target
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh sdp_offer    one target, longer
#
# The long runs behind the figures in docs/robustness.md ("Fuzzing") use the same command with
# a larger FUZZ_SECONDS and a kept corpus directory (FUZZ_CORPUS).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-10}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(client_message sdp_offer sdp_answer candidate datagram_new_path datagram_connected relay_frame)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-smoke: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== cargo fuzz build"
(cd fuzz && cargo +nightly fuzz build)

mkdir -p artifacts
for t in "${targets[@]}"; do
    corpus="${FUZZ_CORPUS:-fuzz/corpus}/$t"
    log="artifacts/fuzz-$t.log"
    mkdir -p "$corpus"
    corpus="$(realpath "$corpus")"
    echo "== fuzz $t for ${seconds}s"
    # -rss_limit_mb: an input that makes the server allocate without bound is a finding.
    status=0
    (cd fuzz && cargo +nightly fuzz run "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1) >"$log" 2>&1 || status=$?
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz-smoke: $t failed (exit $status); input in fuzz/artifacts/$t/, log $log" >&2
        exit 1
    fi
done
echo "fuzz-smoke: ${#targets[@]} target(s), no crash"
