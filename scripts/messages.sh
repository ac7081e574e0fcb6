#!/usr/bin/env bash
# make messages: update locale/ru .po files from the code and templates, then compile them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v msgfmt >/dev/null 2>&1 || apt_install gettext
bash scripts/venv.sh prod
use_venv
export DEBUG="${DEBUG:-true}"

ignore=(--ignore=.venv --ignore=.local --ignore=node_modules --ignore=staticfiles --ignore=media)
python manage.py makemessages -l ru "${ignore[@]}"
python manage.py compilemessages "${ignore[@]}"
