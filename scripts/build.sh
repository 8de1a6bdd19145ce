#!/usr/bin/env bash
# Build: eBPF objects (clang), codecs generated from their BTF, then TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C bpf
node tools/gen-codecs.mjs
npx tsc -p tsconfig.json
