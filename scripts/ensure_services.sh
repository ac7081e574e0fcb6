#!/usr/bin/env bash
# Make the machine ready for `make test` / `make bench`: install what is missing (PostgreSQL,
# Redis, Chromium for browser tests, gettext, make), start PostgreSQL and Redis when they are
# local and stopped, wait until they answer, and make sure the database exists.
#
# DATABASE_URL / REDIS_URL, when set, are honoured: a remote server that answers is used as is.
# Unset, they default to postgres://postgres@127.0.0.1:5432/b2p and redis://127.0.0.1:6379/0.
# If the local PostgreSQL wants a password for that URL, a role b2p (password b2p, CREATEDB)
# is made through the postgres OS account instead and its URL is used.
# The URLs decided here go to .local/services.env for test.sh and bench.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

db_url="${DATABASE_URL:-$DEFAULT_DATABASE_URL}"
redis_url="${REDIS_URL:-$DEFAULT_REDIS_URL}"
db_from_env="${DATABASE_URL:+1}"
redis_from_env="${REDIS_URL:+1}"

use_pg=0 pg_local=0
if parse_url "$db_url" && [[ "$URL_SCHEME" == postgres* || "$URL_SCHEME" == pgsql ]]; then
    use_pg=1
    pg_host="${URL_HOST:-127.0.0.1}" pg_port="${URL_PORT:-5432}" pg_user="${URL_USER:-postgres}"
    pg_pass="$URL_PASS" pg_db="${URL_PATH:-b2p}"
    if is_local_host "$pg_host"; then pg_local=1; fi
fi
use_redis=0 redis_local=0
if parse_url "$redis_url" && [[ "$URL_SCHEME" == redis || "$URL_SCHEME" == rediss ]]; then
    use_redis=1
    redis_host="${URL_HOST:-127.0.0.1}" redis_port="${URL_PORT:-6379}"
    if is_local_host "$redis_host"; then redis_local=1; fi
fi

# --- packages ---------------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }
pg_server_installed() { have pg_ctlcluster && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

missing=()
have make || missing+=(make)
have msgfmt || missing+=(gettext)
have chromium || have chromium-browser || missing+=(chromium)
if [ "$use_pg" = 1 ]; then
    if [ "$pg_local" = 1 ] && ! pg_server_installed; then
        missing+=(postgresql)
    elif ! have pg_isready || ! have psql; then
        missing+=(postgresql-client)
    fi
fi
if [ "$use_redis" = 1 ]; then
    if [ "$redis_local" = 1 ] && ! have redis-server; then
        missing+=(redis-server)
    elif ! have redis-cli; then
        missing+=(redis-tools)
    fi
fi
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

systemd_running() { [ -d /run/systemd/system ] && have systemctl; }

# --- PostgreSQL -------------------------------------------------------------------------------
pg_ready() { pg_isready -q -h "$pg_host" -p "$pg_port" -t 3; }

start_postgres() {
    log "Starting PostgreSQL on port $pg_port"
    if systemd_running; then
        as_root systemctl start postgresql || true
        wait_for PostgreSQL 15 pg_ready 2>/dev/null && return 0
    fi
    if have pg_lsclusters; then
        local clusters version
        clusters="$(pg_lsclusters -h 2>/dev/null | awk -v p="$pg_port" '$3 == p { print $1 " " $2 }')"
        if [ -z "$clusters" ] && [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
            # Installed with no cluster at all: make the usual one.
            version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n 1)"
            as_root pg_createcluster "$version" main --port "$pg_port" >/dev/null || true
            clusters="$version main"
        fi
        while read -r version name; do
            [ -n "${version:-}" ] || continue
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start 2>/dev/null || true
        done <<<"$clusters"
        wait_for PostgreSQL 30 pg_ready 2>/dev/null && return 0
    fi
    as_root service postgresql start || true
    wait_for PostgreSQL 30 pg_ready
}

# psql as the URL's user; extra arguments go to psql.
pg_psql() {
    PGPASSWORD="$pg_pass" PGCONNECT_TIMEOUT=5 psql -X -q -v ON_ERROR_STOP=1 \
        -h "$pg_host" -p "$pg_port" -U "$pg_user" "$@"
}
# psql as the postgres OS account over the local socket (peer authentication).
pg_psql_peer() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" "$@"
    elif have sudo; then
        sudo -n -u postgres psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" "$@"
    else
        return 1
    fi
}

ensure_database() {
    pg_psql -d "$pg_db" -tAc 'SELECT 1' >/dev/null 2>&1 && return 0
    if pg_psql -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
        log "Creating database $pg_db"
        pg_psql -d postgres -c "CREATE DATABASE \"$pg_db\"" >/dev/null
        return 0
    fi
    if [ -n "$db_from_env" ] || [ "$pg_local" = 0 ]; then
        die "cannot connect to $(mask_url "$db_url"): check DATABASE_URL (user, password, database)"
    fi
    # The default URL needs a password here: use a role of our own, made over the socket.
    log "postgres@$pg_host needs a password here; using role b2p (password b2p) instead"
    pg_psql_peer -d postgres >/dev/null <<'SQL' || die "cannot reach PostgreSQL as the postgres OS user; set DATABASE_URL"
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'b2p') THEN
    CREATE ROLE b2p LOGIN CREATEDB PASSWORD 'b2p';
  END IF;
END $$;
SQL
    if [ "$(pg_psql_peer -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'b2p'")" != 1 ]; then
        pg_psql_peer -d postgres -c 'CREATE DATABASE b2p OWNER b2p' >/dev/null
    fi
    db_url="postgres://b2p:b2p@127.0.0.1:$pg_port/b2p"
    pg_host=127.0.0.1 pg_user=b2p pg_pass=b2p pg_db=b2p
    pg_psql -d b2p -tAc 'SELECT 1' >/dev/null || die "cannot connect to $(mask_url "$db_url")"
}

if [ "$use_pg" = 1 ]; then
    if ! pg_ready; then
        [ "$pg_local" = 1 ] || die "DATABASE_URL points to $pg_host:$pg_port, which does not answer"
        start_postgres || die "could not start PostgreSQL on port $pg_port"
    fi
    ensure_database
fi

# --- Redis ------------------------------------------------------------------------------------
redis_ready() { [ "$(timeout 5 redis-cli -u "$redis_url" ping 2>/dev/null)" = PONG ]; }

start_redis() {
    log "Starting Redis on port $redis_port"
    if systemd_running; then
        as_root systemctl start redis-server || true
        wait_for Redis 10 redis_ready 2>/dev/null && return 0
    fi
    local data=/var/lib/redis logs=/var/log/redis run=(as_root)
    if ! as_root mkdir -p "$data" "$logs" 2>/dev/null; then
        # Neither root nor sudo: a private server with its files under .local/.
        data="$ROOT/.local/redis" logs="$ROOT/.local/redis" run=()
        mkdir -p "$data"
    fi
    "${run[@]}" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
        --appendonly no --dir "$data" --logfile "$logs/ci.log" || true
    wait_for Redis 15 redis_ready 2>/dev/null && return 0
    as_root service redis-server start || true
    wait_for Redis 15 redis_ready
}

if [ "$use_redis" = 1 ] && ! redis_ready; then
    [ "$redis_local" = 1 ] || die "REDIS_URL points to $redis_host:$redis_port, which does not answer"
    start_redis || die "could not start Redis on port $redis_port"
fi

# --- what test.sh and bench.sh use ------------------------------------------------------------
mkdir -p "$ROOT/.local"
{
    echo "# Written by scripts/ensure_services.sh; variables already set in the environment win."
    # shellcheck disable=SC2016
    [ -n "$db_from_env" ] || printf ': "${DATABASE_URL:=%s}"\n' "$db_url"
    # shellcheck disable=SC2016
    [ -n "$redis_from_env" ] || printf ': "${REDIS_URL:=%s}"\n' "$redis_url"
} >"$SERVICES_ENV"

log "Services ready: database $(mask_url "$db_url"), redis $(mask_url "$redis_url")"
