#!/usr/bin/env bash
# Builds the user guide (docs/, an mdBook) into docs/book/ and fails on any warning or broken
# link. scripts/test.sh runs it; to read the book locally, open docs/book/index.html after it.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
mdbook build docs 2>&1 | tee "$log"
if grep -Eq '(WARN|ERROR)' "$log"; then
  echo "error: mdbook build printed warnings or errors (above)" >&2
  exit 1
fi
python3 scripts/check-book-links.py docs/book
