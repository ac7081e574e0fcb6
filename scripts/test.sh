#!/usr/bin/env bash
# make test: services, dev virtualenv, then lint, Django checks, migrations check, OpenAPI
# validation, translations check (if scripts/check_translations.sh exists) and pytest.
# Stops at the first failure. Extra pytest arguments: PYTEST_ARGS="-k foo" or arguments to this script.
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
export DJANGO_SETTINGS_MODULE=b2p_platform.settings.test
export PYTHONUNBUFFERED=1

step() {
    local name="$1"
    shift
    printf '\n==> %s\n' "$name"
    "$@" || {
        local rc=$?
        printf '\nmake test: FAILED at "%s" (exit %s)\n' "$name" "$rc" >&2
        exit "$rc"
    }
}

step "ruff check" ruff check .
step "django check" python manage.py check
step "migrations are up to date" python manage.py makemigrations --check --dry-run
step "OpenAPI schema is valid" \
    python manage.py spectacular --validate --fail-on-warn --file "$ROOT/.local/openapi.yaml"
if [ -f scripts/check_translations.sh ]; then
    step "translations" bash scripts/check_translations.sh
fi

# PYTEST_ARGS is split like a shell command line, so quotes work: PYTEST_ARGS='-k "a and b"'.
eval "set -- ${PYTEST_ARGS:-} \"\$@\""
printf '\n==> pytest %s\n' "$*"
rc=0
python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "make test: FAILED: pytest collected no tests (exit 5)" >&2
    exit 1
elif [ "$rc" -ne 0 ]; then
    echo "make test: FAILED at \"pytest\" (exit $rc)" >&2
    exit "$rc"
fi
