#!/usr/bin/env bash
# make run: the platform with a demo tenant on http://127.0.0.1:8000/ (PORT to change the port).
# Runtime virtualenv, migrations, seed_demo, a Celery worker and beat in the background (logs in
# .local/logs/), runserver in the foreground. Ctrl-C stops all three.
# With no DATABASE_URL/REDIS_URL it runs embedded (SQLite and a filesystem broker under .local/);
# set them to use PostgreSQL/Redis. DEBUG defaults to true.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

bash scripts/venv.sh prod
use_venv
export DEBUG="${DEBUG:-true}"
export PYTHONUNBUFFERED=1
addr="127.0.0.1:${PORT:-8000}"
logs="$ROOT/.local/logs"
mkdir -p "$logs"

if [ -n "${DATABASE_URL:-}" ]; then
    log "Database: $(mask_url "$DATABASE_URL")"
else
    log "Database: embedded SQLite (.local/db.sqlite3); set DATABASE_URL to use PostgreSQL"
fi
if [ -n "${REDIS_URL:-}" ]; then
    log "Broker: $(mask_url "$REDIS_URL")"
else
    log "Broker: embedded (.local/broker/); set REDIS_URL to use Redis"
fi

log "Applying migrations"
python manage.py migrate --noinput
log "Seeding the demo tenant"
python manage.py seed_demo 2>&1 | tee "$logs/seed_demo.log"

pids=()
stop_background() {
    # Runs on every exit; must finish even if the terminal or a pipe (make run | tee) is gone.
    trap - EXIT INT TERM
    trap '' PIPE
    set +e
    [ "${#pids[@]}" -gt 0 ] || return 0
    log "Stopping worker and beat"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local i p alive
    for ((i = 0; i < 50; i++)); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 1 ] || break
        sleep 0.2
    done
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            pkill -KILL -P "$p" 2>/dev/null || true
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
}
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "Starting Celery worker (log: .local/logs/worker.log)"
celery -A b2p_platform worker --loglevel=info --concurrency=1 >"$logs/worker.log" 2>&1 &
worker_pid=$!
pids+=("$worker_pid")
log "Starting Celery beat (log: .local/logs/beat.log)"
celery -A b2p_platform beat --loglevel=info --schedule "$ROOT/.local/celerybeat-schedule" \
    >"$logs/beat.log" 2>&1 &
beat_pid=$!
pids+=("$beat_pid")

sleep 3
for name in worker beat; do
    pid_var="${name}_pid"
    if ! kill -0 "${!pid_var}" 2>/dev/null; then
        warn "Celery $name exited at start; last lines of .local/logs/$name.log:"
        tail -n 20 "$logs/$name.log" >&2
        exit 1
    fi
done

credentials="$(grep -iE 'tenant|e-?mail|user|login|password|token' "$logs/seed_demo.log" || true)"
cat <<EOF

  B2P Engage is starting on  http://$addr/
  Demo sign-in (from seed_demo, also in .local/logs/seed_demo.log):
${credentials:-  (see the seed_demo output above)}
  Worker and beat logs: .local/logs/worker.log, .local/logs/beat.log
  Press Ctrl-C to stop everything.

EOF
python manage.py runserver "$addr"
