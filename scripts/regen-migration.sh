#!/usr/bin/env bash
# Regenerate the initial alembic migration from the tables (only while no release
# exists; after one, add new revisions with `alembic revision --autogenerate`).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[alembic]\nscript_location = %s/src/isthmus/store/migrations\n' "$PWD" > "$tmp/alembic.ini"
rm -f src/isthmus/store/migrations/versions/0001_initial_schema.py
ISTHMUS_DB_URL="sqlite:///$tmp/gen.db" .venv/bin/alembic -c "$tmp/alembic.ini" \
  revision --autogenerate -m "initial schema" --rev-id 0001 >/dev/null
.venv/bin/ruff format -q src/isthmus/store/migrations/versions/
.venv/bin/ruff check -q --fix src/isthmus/store/migrations/versions/ || true
