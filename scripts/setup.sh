#!/usr/bin/env bash
# scripts/setup.sh — make this machine ready to run, test and demo Isthmus.
#
# What it does, each step only when needed (idempotent; a no-op run takes well under 2 s):
#   1. Debian packages the tests need: postgresql (server binaries for the throw-away test
#      server), iproute2 and nftables (network namespaces), frr (routing daemons, used by
#      later work), curl; python3-venv only if `python3 -m venv` cannot work. `apt-get update`
#      runs only when something must be installed.
#   2. A virtualenv in .venv (python3 -m venv), pip upgraded, then `pip install -e '.[test]'`.
#      A stamp file in .venv records a hash of pyproject.toml (plus this script, the Python
#      version and the repo path); while it matches, nothing is reinstalled.
#
# Option --openstack: step 1 also installs the Debian packages of the real OpenStack test site
# (scripts/openstack-site/packages.txt: Keystone, Neutron, Nova, Cinder, Glance, Placement of
# bookworm's Zed, RabbitMQ, uwsgi; ~1.5 min the first time). `make test` passes it when root.
#
# Option --ansible: also a second virtualenv, .venv-ansible, with scripts/ansible-requirements.txt
# (PyPI's ansible and the openstacksdk its openstack.cloud collection can use) for
# tests/consumers/test_ansible.py; its own stamp (a hash of that file, the Python version and the
# repo path) works as .venv's. A fresh install takes 1.5 min on a quiet machine, 3 min on a busy
# one (measured 84 s and 184 s: ansible is ~50 MB of collections); `make test` passes it,
# `make demo` does not.
#
# Environment: PYTHON (default python3) picks the interpreter for the venv;
# ISTHMUS_SKIP_APT=1 skips step 1 (e.g. on a machine where you are not root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.isthmus-setup-stamp"
DEB_PACKAGES=(postgresql iproute2 nftables frr curl iputils-ping)
WITH_ANSIBLE=0

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
    case "$arg" in
        --openstack) mapfile -t -O "${#DEB_PACKAGES[@]}" DEB_PACKAGES \
            < <(grep -v '^#' "$ROOT/scripts/openstack-site/packages.txt" | grep .) ;;
        --ansible) WITH_ANSIBLE=1 ;;
        *) die "unknown option $arg (known: --openstack, --ansible)" ;;
    esac
done

# Serialise concurrent runs (e.g. `make -j demo test`) on the same checkout.
LOCK="${TMPDIR:-/tmp}/isthmus-setup-$(printf '%s' "$ROOT" | sha256sum | cut -c1-16).lock"
exec 9>"$LOCK"
flock 9

start_us=${EPOCHREALTIME/./}
elapsed() {
    local us=$((${EPOCHREALTIME/./} - start_us))
    printf '%d.%01d s' $((us / 1000000)) $((us % 1000000 / 100000))
}

# ---------------------------------------------------------------- 1. Debian packages
deb_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

venv_works() {
    # Debian's python3 has the venv module but not ensurepip until python3-venv is installed.
    "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1
}

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    deb_installed "$pkg" || missing+=("$pkg")
done
if ! venv_works && ! deb_installed python3-venv; then
    missing+=(python3-venv)
fi

if ((${#missing[@]})); then
    if [[ "${ISTHMUS_SKIP_APT:-0}" == 1 ]]; then
        log "ISTHMUS_SKIP_APT=1: not installing missing Debian packages: ${missing[*]}"
    else
        SUDO=()
        if [[ $(id -u) -ne 0 ]]; then
            command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install ${missing[*]}"
            SUDO=(sudo -n)
        fi
        export DEBIAN_FRONTEND=noninteractive
        log "installing Debian packages: ${missing[*]}"
        log "apt-get update"
        "${SUDO[@]}" apt-get update -qq </dev/null
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" </dev/null >/dev/null
        for pkg in "${missing[@]}"; do
            deb_installed "$pkg" || die "Debian package $pkg did not install"
        done
        log "Debian packages installed"
    fi
else
    log "Debian packages present: ${DEB_PACKAGES[*]}"
fi

# ---------------------------------------------------------------- 2. Ansible's virtualenv
# (before .venv's step, which ends the script when .venv is up to date)
if ((WITH_ANSIBLE)); then
    AVENV="$ROOT/.venv-ansible"
    AREQ="$ROOT/scripts/ansible-requirements.txt"
    ASTAMP="$AVENV/.isthmus-setup-stamp"
    ansible_key() {
        {
            sha256sum "$AREQ" | cut -d' ' -f1
            "$AVENV/bin/python" -c 'import sys; print(sys.version)'
            printf '%s\n' "$ROOT"
        } | sha256sum | cut -d' ' -f1
    }
    if [[ -x "$AVENV/bin/ansible-playbook" && -f "$ASTAMP" && "$(cat "$ASTAMP")" == "$(ansible_key)" ]]; then
        log "virtualenv .venv-ansible up to date"
    else
        rm -rf "$AVENV"
        venv_works || die "$PYTHON -m venv does not work (python3-venv missing?)"
        log "creating .venv-ansible: pip install -r scripts/ansible-requirements.txt (1.5 to 3 min)"
        "$PYTHON" -m venv "$AVENV"
        if ! "$AVENV/bin/python" -m pip install -r "$AREQ" --disable-pip-version-check \
            --progress-bar off </dev/null >"$AVENV/pip-install.log" 2>&1; then
            grep -v "^WARNING: Location 'file://" "$AVENV/pip-install.log" | tail -n 40 >&2
            die "pip install for .venv-ansible failed (full log: $AVENV/pip-install.log)"
        fi
        ansible_key >"$ASTAMP"
        log "virtualenv .venv-ansible ready ($(elapsed) since setup started)"
    fi
fi

# ---------------------------------------------------------------- 3. virtualenv
stamp_key() {
    {
        sha256sum pyproject.toml scripts/setup.sh | cut -d' ' -f1
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
        printf '%s\n' "$ROOT"
    } | sha256sum | cut -d' ' -f1
}

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_key)" ]]; then
        log "virtualenv .venv up to date (checked in $(elapsed))"
        exit 0
    fi
else
    [[ -e "$VENV" ]] && { log "removing broken .venv"; rm -rf "$VENV"; }
    venv_works || die "$PYTHON -m venv does not work (python3-venv missing?)"
    log "creating .venv with $("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))"
    "$PYTHON" -m venv "$VENV"
fi

rm -f "$STAMP"
PIP_LOG="$VENV/pip-install.log"
pip_quiet() {
    # pip's own output goes to a log (this machine's pip.conf makes it chatty); shown on failure.
    if ! "$VENV/bin/python" -m pip "$@" --disable-pip-version-check --progress-bar off \
        </dev/null >>"$PIP_LOG" 2>&1; then
        grep -v "^WARNING: Location 'file://" "$PIP_LOG" | tail -n 40 >&2
        die "pip $* failed (full log: $PIP_LOG)"
    fi
}
: >"$PIP_LOG"
log "upgrading pip"
pip_quiet install --upgrade pip
log "pip install -e '.[test]' (a fresh venv takes about half a minute)"
pip_quiet install -e '.[test]'
"$VENV/bin/python" -m pip check >/dev/null 2>&1 || log "warning: 'pip check' reports conflicts (run it to see)"
stamp_key >"$STAMP"

log "done in $(elapsed): .venv ready ($("$VENV/bin/python" --version 2>&1))"
