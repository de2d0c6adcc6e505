#!/usr/bin/env bash
# Start a local PostgreSQL server (Debian's package, installed when missing) with a `wangge`
# role and a `wangge_test` database, and print the SQLAlchemy URL of that database.
# The storage tests also run on PostgreSQL when WANGGE_TEST_POSTGRES_URL holds that URL:
#   export WANGGE_TEST_POSTGRES_URL=$(bash scripts/postgres.sh) && bash scripts/test.sh
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$version main"; then
  pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >&2 || true  # already running is fine
for _ in $(seq 30); do pg_isready -q && break; sleep 1; done
as_postgres() { su postgres -c "$1" >&2; }
if [ -z "$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'wangge'\"")" ]; then
  as_postgres "psql -qc \"CREATE ROLE wangge LOGIN PASSWORD 'wangge' CREATEDB\""
fi
if [ -z "$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'wangge_test'\"")" ]; then
  as_postgres "createdb -O wangge wangge_test"
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
echo "postgresql+psycopg://wangge:wangge@127.0.0.1:${port}/wangge_test"
