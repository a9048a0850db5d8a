#!/usr/bin/env bash
# Make sure a Docker daemon answers on this Debian/Ubuntu machine, and that the Compose plugin
# (`docker compose`, v2) is there, for what builds or runs containers here
# (scripts/docker/base-image.sh, scripts/docker/stack-images.sh, tests/kiosk/systemd/,
# tests/stack/).
#
# Silent when `docker info` and `docker compose version` already answer. As root it installs
# what is missing (Debian's docker.io: dockerd, containerd, runc and a client) and starts the
# daemon: with systemctl where systemd runs, else as a background process of its own that
# outlives this script (log in /var/log/lainaamo-dockerd.log). It says what it did. Not as root
# it prints the commands to run and fails. Safe to run any number of times, also by several at
# once.
#
# Compose: Debian 12 packages only Compose v1 (docker-compose 1.29, Python), which
# docker-compose.yml is not written for; Debian 13 (trixie) packages v2 as `docker-compose`,
# a Go program that needs nothing but libc. Where the machine's own sources offer no v2, the
# package is taken from trixie with apt itself (a private package list, signature checked
# against the Debian archive keyring; the machine's sources are not changed) and installed with
# dpkg. LAINAAMO_DEBIAN_MIRROR names the mirror (default http://deb.debian.org/debian).
#
# Nothing is pulled from an image registry: images are built locally (base-image.sh).
set -euo pipefail

LOG=/var/log/lainaamo-dockerd.log
WAIT_S=60

say() { echo "ensure-docker: $*"; }
die() { echo "ensure-docker: $*" >&2; exit 1; }

answers() { docker info >/dev/null 2>&1; }
has_compose() { docker compose version >/dev/null 2>&1; }

command -v docker >/dev/null 2>&1 && answers && has_compose && exit 0

if [ "$(id -u)" -ne 0 ]; then
    die "no Docker daemon answers here: install and start one as root, e.g.
    sudo apt-get install docker.io && sudo systemctl start docker
    (or run this script as root: it does that, and starts dockerd itself where systemd does not run)"
fi

# One at a time: two tests starting the daemon together would start it twice.
exec 9>/run/lock/lainaamo-ensure-docker.lock
flock 9
command -v docker >/dev/null 2>&1 && answers && has_compose && exit 0

# The Compose plugin, v2: from the machine's sources where they have it, else from trixie.
install_compose() {
    local candidate work opts
    candidate="$(apt-cache policy docker-compose 2>/dev/null | awk '/Candidate:/ { print $2 }')"
    if [ -n "$candidate" ] && [ "${candidate%%.*}" != "(none)" ] && [ "${candidate%%.*}" -ge 2 ] 2>/dev/null; then
        say "apt-get install -y docker-compose ($candidate)"
        apt-get install -y -qq -o DPkg::Lock::Timeout=600 docker-compose >/dev/null
        return
    fi
    work="$(mktemp -d)"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    echo "deb ${LAINAAMO_DEBIAN_MIRROR:-http://deb.debian.org/debian} trixie main" >"$work/sources.list"
    opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
          -o APT::Sandbox::User=root)
    say "Compose v2 is not in this machine's sources: taking Debian trixie's docker-compose"
    apt-get "${opts[@]}" update -qq || { rm -rf "$work"; die "apt-get update of trixie's list failed"; }
    (cd "$work" && apt-get "${opts[@]}" download docker-compose >/dev/null) \
        || { rm -rf "$work"; die "apt-get download docker-compose (trixie) failed"; }
    dpkg -i "$work"/docker-compose_*.deb >/dev/null || { rm -rf "$work"; die "dpkg -i docker-compose failed"; }
    rm -rf "$work"
}

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "no apt-get here: install Docker yourself"
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    apt-get update -qq
    say "apt-get install -y docker.io"
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 docker.io >/dev/null
    command -v dockerd >/dev/null 2>&1 || die "dockerd is still missing after apt-get install docker.io"
fi

if ! has_compose; then
    install_compose
    has_compose || die "docker compose version fails after installing docker-compose"
    say "$(docker compose version)"
fi
answers && exit 0

if [ -d /run/systemd/system ]; then
    say "systemctl start docker"
    systemctl start docker
elif [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd runs but does not answer yet; waiting"
else
    say "starting dockerd in the background (no systemd here); its log: $LOG"
    # Its own session, stdin and output away from ours: it outlives this script, and a caller
    # that reads our output (a test's subprocess) is not kept waiting for it to end.
    # Not fd 9: the daemon would hold our lock for as long as it runs.
    setsid dockerd </dev/null >>"$LOG" 2>&1 9>&- &
fi

for _ in $(seq $((WAIT_S * 2))); do
    if answers; then
        say "dockerd answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    sleep 0.5
done
die "dockerd does not answer after ${WAIT_S} s; see $LOG (or journalctl -u docker)"
