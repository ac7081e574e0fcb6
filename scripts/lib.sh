# shellcheck shell=bash disable=SC2034
# Helpers shared by the scripts in this folder. Source it; it changes nothing by itself.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/b2p"
DEFAULT_REDIS_URL="redis://127.0.0.1:6379/0"
SERVICES_ENV="$ROOT/.local/services.env"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly, or through sudo (non-interactively when there is no terminal).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        warn "need root for: $* (not root and no sudo)"
        return 1
    fi
}

_APT_UPDATED=0
# Install Debian packages (one apt-get call; 'apt-get update' once per script run).
apt_install() {
    [ "$#" -gt 0 ] || return 0
    command -v apt-get >/dev/null 2>&1 || die "missing $*; install them (no apt-get on this machine)"
    log "Installing with apt-get: $*"
    if [ "$_APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
        _APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" </dev/null ||
        die "apt-get install $* failed"
}

# Poll a command until it succeeds, for at most $2 seconds.
wait_for() {
    local what="$1" seconds="$2"
    shift 2
    local i
    for ((i = 0; i < seconds * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    warn "$what is not ready after ${seconds}s"
    return 1
}

# parse_url URL: sets URL_SCHEME URL_USER URL_PASS URL_HOST URL_PORT URL_PATH (percent-decoded user/pass/path).
parse_url() {
    local re='^([A-Za-z0-9+.-]+)://(([^:@/]*)(:([^@/]*))?@)?([^:/?#]*)(:([0-9]+))?(/([^?#]*))?'
    URL_SCHEME="" URL_USER="" URL_PASS="" URL_HOST="" URL_PORT="" URL_PATH=""
    [[ "$1" =~ $re ]] || return 1
    URL_SCHEME="${BASH_REMATCH[1]}"
    URL_USER="$(_urldecode "${BASH_REMATCH[3]}")"
    URL_PASS="$(_urldecode "${BASH_REMATCH[5]}")"
    URL_HOST="${BASH_REMATCH[6]}"
    URL_PORT="${BASH_REMATCH[8]}"
    URL_PATH="$(_urldecode "${BASH_REMATCH[10]}")"
}
_urldecode() { printf '%b' "${1//%/\\x}"; }

is_local_host() {
    case "$1" in "" | localhost | 127.* | ::1 | "[::1]") return 0 ;; *) return 1 ;; esac
}

# A URL for display: the password replaced by ***.
mask_url() { printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'; }

# Defaults decided by ensure_services.sh; variables already set in the environment win.
load_services_env() {
    # shellcheck disable=SC1090
    if [ -f "$SERVICES_ENV" ]; then . "$SERVICES_ENV"; fi
}

# Put the virtualenv first on PATH (after venv.sh made it).
use_venv() {
    export VIRTUAL_ENV="$VENV"
    export PATH="$VENV/bin:$PATH"
}
