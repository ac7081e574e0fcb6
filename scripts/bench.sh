#!/usr/bin/env bash
# make bench: services, dev virtualenv, migrations, then `python -m bench` if bench/__main__.py
# exists, else every bench/bench_*.py in turn. Extra arguments: BENCH_ARGS="..." or arguments
# to this script. Same database defaults as make test; settings default to the test settings.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

bash scripts/ensure_services.sh
bash scripts/venv.sh dev
use_venv
load_services_env
export DATABASE_URL="${DATABASE_URL:-$DEFAULT_DATABASE_URL}"
export REDIS_URL="${REDIS_URL:-$DEFAULT_REDIS_URL}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-b2p_platform.settings.test}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

eval "set -- ${BENCH_ARGS:-} \"\$@\""

log "Migrating $(mask_url "$DATABASE_URL")"
python manage.py migrate --noinput >/dev/null

if [ -f bench/__main__.py ]; then
    log "python -m bench $*"
    exec python -m bench "$@"
fi

shopt -s nullglob
files=(bench/bench_*.py)
[ "${#files[@]}" -gt 0 ] || die "no benchmarks: neither bench/__main__.py nor bench/bench_*.py exists"
for f in "${files[@]}"; do
    log "python $f $*"
    python "$f" "$@"
done
