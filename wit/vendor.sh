#!/usr/bin/env bash
# Re-vendors wit/deps/ from the WASI WIT of the pinned wasmtime-wasi-http crate
# (WASI 0.2.12 for 48.0.8). Never edit wit/deps/ by hand. The same test, run
# without HTTPS_STEP_VENDOR_WIT, checks the copy in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
HTTPS_STEP_VENDOR_WIT=1 cargo test --release -p https-step-host --test wit_deps
