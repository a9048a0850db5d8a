#!/usr/bin/env bash
# Make sure a Docker daemon answers on this Debian/Ubuntu machine, for what builds or runs
# containers here (scripts/docker/base-image.sh, the tests of tests/kiosk/systemd/).
#
# Silent when `docker info` already answers. As root it installs what is missing (Debian's
# docker.io: dockerd, containerd, runc and a client) and starts the daemon: with systemctl
# where systemd runs, else as a background process of its own that outlives this script
# (log in /var/log/lainaamo-dockerd.log). It says what it did. Not as root it prints the
# commands to run and fails. Safe to run any number of times, also by several at once.
#
# Nothing is pulled from an image registry: images are built locally (base-image.sh).
set -euo pipefail

LOG=/var/log/lainaamo-dockerd.log
WAIT_S=60

say() { echo "ensure-docker: $*"; }
die() { echo "ensure-docker: $*" >&2; exit 1; }

answers() { docker info >/dev/null 2>&1; }

command -v docker >/dev/null 2>&1 && answers && exit 0

if [ "$(id -u)" -ne 0 ]; then
    die "no Docker daemon answers here: install and start one as root, e.g.
    sudo apt-get install docker.io && sudo systemctl start docker
    (or run this script as root: it does that, and starts dockerd itself where systemd does not run)"
fi

# One at a time: two tests starting the daemon together would start it twice.
exec 9>/run/lock/lainaamo-ensure-docker.lock
flock 9
command -v docker >/dev/null 2>&1 && answers && exit 0

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "no apt-get here: install Docker yourself"
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    apt-get update -qq
    say "apt-get install -y docker.io"
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 docker.io >/dev/null
    command -v dockerd >/dev/null 2>&1 || die "dockerd is still missing after apt-get install docker.io"
fi

if [ -d /run/systemd/system ]; then
    say "systemctl start docker"
    systemctl start docker
elif [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd runs but does not answer yet; waiting"
else
    say "starting dockerd in the background (no systemd here); its log: $LOG"
    # Its own session, stdin and output away from ours: it outlives this script, and a caller
    # that reads our output (a test's subprocess) is not kept waiting for it to end.
    setsid dockerd </dev/null >>"$LOG" 2>&1 &
fi

for _ in $(seq $((WAIT_S * 2))); do
    if answers; then
        say "dockerd answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    sleep 0.5
done
die "dockerd does not answer after ${WAIT_S} s; see $LOG (or journalctl -u docker)"
