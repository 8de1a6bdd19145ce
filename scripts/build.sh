#!/usr/bin/env bash
# Build: eBPF objects (clang), codecs generated from their BTF, then TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C bpf
# The CNI plugin binary: a small native program (see native/tendril-cni.c for why).
mkdir -p build/bin
clang-19 -O2 -Wall -Wextra -Werror -o build/bin/tendril-cni native/tendril-cni.c
# libbpf's print function, usable from every thread (see native/libbpf-log.c).
mkdir -p build/lib
clang-19 -O2 -Wall -Wextra -Werror -shared -fPIC -o build/lib/libtendril-bpflog.so native/libbpf-log.c
node tools/gen-codecs.mjs
npx tsc -p tsconfig.json
