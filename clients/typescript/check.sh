#!/usr/bin/env bash
# Installs the TypeScript client's pinned tools, fails when src/schema.d.ts is not what
# ../openapi.json generates, and compiles the client and its example into dist/ (the end-to-end
# test runs the example from there).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
npx --no-install openapi-typescript ../openapi.json -o "$generated/schema.d.ts" >/dev/null
if ! diff -u src/schema.d.ts "$generated/schema.d.ts" >"$generated/diff"; then
  head -40 "$generated/diff" >&2
  echo "src/schema.d.ts is not generated from ../openapi.json: run 'npm run generate' here" >&2
  exit 1
fi
rm -rf dist
npx --no-install tsc -p tsconfig.json
