#!/usr/bin/env bash
# `npm test` after set-up: type-check, lint (layering included), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
node dist/tools/lint.js
mapfile -t files < <(find dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
