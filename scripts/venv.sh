#!/usr/bin/env bash
# Create or update the virtualenv .venv: `venv.sh prod` (requirements.txt) or `venv.sh dev`
# (requirements-dev.txt). Does nothing when a stamp file is newer than the requirements files.
# PYTHON=/path/to/python3.11 picks the interpreter (default: python3).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

mode="${1:-dev}"
case "$mode" in
    prod) req=requirements.txt ;;
    dev) req=requirements-dev.txt ;;
    *) die "usage: $0 prod|dev" ;;
esac
stamp="$VENV/.installed-$mode"
python="${PYTHON:-python3}"

# True when stamp $1 exists and no other argument is newer than it.
fresh() {
    local stamp="$1" f
    shift
    [ -f "$stamp" ] || return 1
    for f in "$@"; do
        [ "$f" -nt "$stamp" ] && return 1
    done
    return 0
}

venv_works() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }

if venv_works; then
    # The dev set includes the runtime set.
    if fresh "$VENV/.installed-dev" requirements.txt requirements-dev.txt; then exit 0; fi
    if [ "$mode" = prod ] && fresh "$stamp" requirements.txt; then exit 0; fi
else
    command -v "$python" >/dev/null 2>&1 || apt_install python3 python3-venv
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$python is $("$python" -V 2>&1); Python 3.11 or newer is needed (set PYTHON=...)"
    log "Creating virtualenv .venv with $("$python" -V 2>&1)"
    rm -rf "$VENV"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        # Debian's python3 has no ensurepip without python3-venv.
        apt_install python3-venv
        "$python" -m venv "$VENV" || die "could not create .venv"
    fi
fi

pip_install() {
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q -r "$req"
}

has_build_tools() {
    command -v gcc >/dev/null 2>&1 && "$VENV/bin/python" -c '
import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}

log "Installing $req into .venv"
if ! pip_install; then
    # Only when a package had to be built from source and the compiler or headers are missing.
    has_build_tools && die "pip install -r $req failed"
    apt_install python3-dev gcc
    pip_install || die "pip install -r $req failed"
fi
touch "$stamp"
