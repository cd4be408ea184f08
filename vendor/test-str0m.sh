#!/usr/bin/env bash
# Runs the vendored str0m's own unit tests (`cargo test --lib`) with our patches applied.
#
# They cannot run in place: str0m's dev-dependencies and its optional crypto back ends
# (str0m-netem, str0m-openssl, str0m-rust-crypto, systemstat, ...) are not all in the registry
# this project's CI reaches. So this copies the crate to a scratch directory, keeps only the
# dependencies the library tests need (aws-lc-rs is the crypto, as in Switchboard), adds the two
# dev-dependencies the tests do use (serde_json, tracing-subscriber), takes `Duration` from std
# where one test imported it through systemstat, and runs the tests offline against this
# workspace's Cargo.lock, so the versions are the ones Switchboard builds with.
#
# Usage: vendor/test-str0m.sh [cargo test arguments, e.g. a test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

scratch="${STR0M_SCRATCH:-${TMPDIR:-/tmp}/switchboard-str0m-tests}"
rm -rf "$scratch/crate"
mkdir -p "$scratch"
cp -r vendor/str0m "$scratch/crate"
cp Cargo.lock "$scratch/crate/Cargo.lock"

python3 - "$scratch/crate/Cargo.toml" <<'EOF'
import re, sys

path = sys.argv[1]
text = open(path).read()

# Tables that pull crates the tests do not need and the registry may not have.
drop_tables = re.compile(
    r"^\[(dev-dependencies\..*|dependencies\.(drv|str0m-openssl|str0m-rust-crypto)|target\..*)\]$"
)
# Features that name the dropped dependencies.
drop_features = {
    "openssl", "openssl-dimpl", "rust-crypto", "vendored", "drv", "_internal_test_exports",
    "apple-crypto", "wincrypto", "wincrypto-dimpl",
}

out, keep, in_features, skipping_feature = [], True, False, False
for line in text.splitlines():
    if line.startswith("["):
        keep = not drop_tables.match(line)
        in_features = line == "[features]"
        skipping_feature = False
    if not keep:
        continue
    if in_features:
        name = line.split("=")[0].strip()
        if "=" in line and name in drop_features:
            # A feature's value may continue over several lines, up to the closing bracket.
            skipping_feature = not line.rstrip().endswith("]")
            continue
        if skipping_feature:
            skipping_feature = not line.strip().startswith("]")
            continue
    out.append(line)

out += [
    "",
    "[dev-dependencies]",
    'serde_json = "1"',
    'tracing-subscriber = { version = "0.3", features = ["env-filter", "std"] }',
    "",
    "[workspace]",
    "",
]
open(path, "w").write("\n".join(out))
EOF

sed -i 's/use systemstat::Duration;/use std::time::Duration;/' \
  "$scratch/crate/src/bwe/loss_controller.rs"

cd "$scratch/crate"
CARGO_TARGET_DIR="$scratch/target" cargo test --offline --lib "$@"
