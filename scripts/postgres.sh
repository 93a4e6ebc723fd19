#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres) if they are missing, so the
# test suite can start its own throw-away server (tests/postgres.py). Nothing is configured or started:
# the Debian package's default cluster is not used by the tests.
set -euo pipefail

have_postgres() {
  command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if have_postgres; then
  echo "postgresql: server binaries present"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "postgresql: not installed and apt-get is unavailable; install PostgreSQL 15+ server binaries" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "postgresql: installing Debian's postgresql package"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_postgres && echo "postgresql: installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
