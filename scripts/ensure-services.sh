#!/usr/bin/env bash
# Make sure the outside services of the test suite exist on this Debian/Ubuntu machine:
#   - a mosquitto binary: the tests start their own brokers on free ports, so the system
#     service does not need to run;
#   - a PostgreSQL server that lets in the test URL: LAINAAMO_TEST_PG_URL, by default
#     postgresql+psycopg://postgres@127.0.0.1:5432/postgres;
#   - Debian's Chromium for the browser tests (Playwright drives it; no browser download);
#   - coturn's turnserver, which the remote-support tests start on free loopback ports;
#   - Firefox ESR, in which remote support is tested too (over WebDriver BiDi);
#   - Xvfb, xdotool, the DejaVu fonts and PulseAudio for the kiosk tablet tests (a real X
#     session; the ring on a real sound server); NetworkManager's nmcli, run offline only (the
#     kiosk's Wi-Fi setting's command lines); the NetworkManager service is not needed and is
#     switched off when this script installed it;
#   - promtool (Debian's prometheus package), which checks monitoring/ and runs the alert
#     rules' unit tests; the system Prometheus service is not needed and is switched off;
#   - as root, Docker with a running daemon and debootstrap, for the install under a real
#     systemd in a container (scripts/docker/; the images are built by the test, once).
# Silent when everything is there. As root it installs and starts what is missing and says
# so; otherwise it prints the commands to run and fails. Safe to run any number of times.
set -euo pipefail

DEFAULT_PG_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL="${LAINAAMO_TEST_PG_URL:-$DEFAULT_PG_URL}"
# The trust rule we add to a PostgreSQL that we installed ourselves (see allow_test_login).
PG_TRUST_COMMENT="# Added by lainaamo scripts/ensure-services.sh: tests log in without a password."

MISSING=()      # instructions for a human, printed together at the end
APT_UPDATED=0

say() { echo "ensure-services: $*"; }
die() { echo "ensure-services: $*" >&2; exit 1; }
missing() { MISSING+=("$*"); }
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "no apt-get on this machine: install $* yourself"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    apt-get install -y -qq "$@"
}

# --- Mosquitto -----------------------------------------------------------------------------

# Debian puts the broker in /usr/sbin, which is not on an ordinary user's PATH.
have_mosquitto() { [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1; }

ensure_mosquitto() {
    have_mosquitto && return 0
    if ! is_root; then
        missing "mosquitto is not installed: sudo apt-get install mosquitto"
        return 0
    fi
    apt_install mosquitto
    have_mosquitto || die "mosquitto is still missing after apt-get install mosquitto"
}

# --- PostgreSQL ----------------------------------------------------------------------------

# Host, port and user of the test URL; libpq tools want it without SQLAlchemy's "+driver".
[[ "$PG_URL" =~ ^[A-Za-z0-9+]+://(([^:@/]*)(:[^@/]*)?@)?([^:/?]*)(:([0-9]+))? ]] \
    || die "cannot read host and port from LAINAAMO_TEST_PG_URL=$PG_URL"
PG_USER="${BASH_REMATCH[2]:-postgres}"
PG_HOST="${BASH_REMATCH[4]:-127.0.0.1}"
PG_PORT="${BASH_REMATCH[6]:-5432}"
LIBPQ_URL="$(printf '%s' "$PG_URL" | sed -E 's#^postgres(ql)?\+[A-Za-z0-9_]+://#postgresql://#')"
PG_URL_SHOWN="$(printf '%s' "$PG_URL" | sed -E 's#://([^:@/]*):[^@/]*@#://\1:***@#')"

pg_is_local() { [[ "$PG_HOST" == 127.0.0.1 || "$PG_HOST" == localhost ]]; }

pg_answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 3
    else
        # No postgresql-client: at least see whether anything listens there.
        timeout 3 bash -c "exec 3<>/dev/tcp/$PG_HOST/$PG_PORT" 2>/dev/null
    fi
}

wait_for_pg() {
    local i
    for i in $(seq 60); do
        pg_answers && return 0
        sleep 0.5
    done
    return 1
}

# Prints psql's complaint and fails if the test URL cannot log in. Without psql we cannot
# tell, and let the tests say it.
pg_login_error() {
    command -v psql >/dev/null 2>&1 || return 0
    local err
    if ! err="$(PGCONNECT_TIMEOUT=5 psql "$LIBPQ_URL" -X -w -Atq -c 'SELECT 1' 2>&1 >/dev/null)"
    then
        printf '%s' "$err"
        return 1
    fi
}

# Debian's clusters (pg_lsclusters comes with postgresql-common), one per line:
# VERSION NAME PORT STATUS ...
pg_clusters() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null
}

# "VERSION NAME" of the cluster configured for our port, or nothing.
pg_cluster() { pg_clusters | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }'; }

pg_cluster_online() {
    pg_clusters | awk -v port="$PG_PORT" '$3 == port && $4 == "online" { found = 1 }
                                         END { exit !found }'
}

pg_cluster_ctl() {  # ACTION VERSION NAME
    # Under systemd let it own the server, so that `systemctl status` stays truthful; in a
    # container without systemd, pg_ctlcluster must not try to redirect to systemctl.
    if [ "$(ps -o comm= -p 1 2>/dev/null)" = systemd ]; then
        pg_ctlcluster "$2" "$3" "$1"
    else
        pg_ctlcluster --skip-systemctl-redirect "$2" "$3" "$1"
    fi
}

# Only for a server this script installed: a fresh Debian install asks for a password
# (scram) on TCP, and the test user has none. A server that was already here belongs to
# someone, so there we only explain (see ensure_postgres).
allow_test_login() {  # VERSION NAME
    local hba="/etc/postgresql/$1/$2/pg_hba.conf"
    local rule="host all $PG_USER 127.0.0.1/32 trust"
    grep -qxF "$rule" "$hba" && return 0
    say "adding '$rule' at the top of $hba"
    sed -i "1i $PG_TRUST_COMMENT\n$rule" "$hba"
    if pg_cluster_online; then
        pg_cluster_ctl reload "$1" "$2"
    fi
}

ensure_postgres() {
    local cluster installed=0 err i
    if ! pg_answers; then
        if ! pg_is_local; then
            missing "nothing answers at $PG_HOST:$PG_PORT (LAINAAMO_TEST_PG_URL):" \
                "start that server, or unset LAINAAMO_TEST_PG_URL to use a local one"
            return 0
        fi
        cluster="$(pg_cluster)"
        if [ -z "$cluster" ]; then
            if [ -n "$(pg_clusters)" ]; then
                missing "no PostgreSQL cluster uses port $PG_PORT (see pg_lsclusters):" \
                    "set LAINAAMO_TEST_PG_URL to the port of yours"
                return 0
            fi
            if ! is_root; then
                missing "PostgreSQL is not installed: sudo apt-get install postgresql"
                return 0
            fi
            apt_install postgresql
            installed=1
            cluster="$(pg_cluster)"
            [ -n "$cluster" ] || die "apt-get installed postgresql, but no cluster uses" \
                "port $PG_PORT (see pg_lsclusters)"
            # shellcheck disable=SC2086  # "VERSION NAME" is meant to split
            allow_test_login $cluster
        fi
        if ! pg_cluster_online; then
            if ! is_root; then
                missing "PostgreSQL is not running: sudo pg_ctlcluster $cluster start"
                return 0
            fi
            say "starting PostgreSQL cluster ${cluster/ //}"
            # shellcheck disable=SC2086
            pg_cluster_ctl start $cluster
        fi
        wait_for_pg || die "PostgreSQL ${cluster/ //} does not answer on $PG_HOST:$PG_PORT;" \
            "see /var/log/postgresql/"
    fi
    if [ "$installed" -eq 1 ]; then
        # The reload that admitted us takes effect asynchronously.
        for i in $(seq 20); do
            pg_login_error >/dev/null && return 0
            sleep 0.5
        done
        die "PostgreSQL refuses the test login even after the trust rule: $(pg_login_error)"
    fi
    if ! err="$(pg_login_error)"; then
        case "$err" in
            *password*|*authentication*|*pg_hba.conf*) ;;
            *)
                missing "PostgreSQL at $PG_HOST:$PG_PORT refuses the test login: $err
    Check LAINAAMO_TEST_PG_URL (now $PG_URL_SHOWN)."
                return 0
                ;;
        esac
        cluster="$(pg_cluster)"
        local where="pg_hba.conf" reload="reload PostgreSQL"
        if [ -n "$cluster" ]; then
            where="/etc/postgresql/${cluster/ //}/pg_hba.conf"
            reload="sudo pg_ctlcluster $cluster reload"
        fi
        missing "PostgreSQL at $PG_HOST:$PG_PORT wants a password from the tests: $err
    Either let $PG_USER in without a password from this machine (fine on a test machine):
    add 'host all $PG_USER 127.0.0.1/32 trust' at the top of $where, then $reload;
    or export LAINAAMO_TEST_PG_URL with a password, e.g.
    postgresql+psycopg://$PG_USER:SECRET@$PG_HOST:$PG_PORT/postgres"
    fi
}

# --- Chromium ------------------------------------------------------------------------------

# LAINAAMO_TEST_CHROMIUM may point at another Chromium or Chrome binary.
CHROMIUM="${LAINAAMO_TEST_CHROMIUM:-/usr/bin/chromium}"

ensure_chromium() {
    [ -x "$CHROMIUM" ] && return 0
    if ! is_root; then
        missing "Chromium is not installed (browser tests): sudo apt-get install chromium"
        return 0
    fi
    apt_install chromium
    [ -x "$CHROMIUM" ] || die "$CHROMIUM is still missing after apt-get install chromium"
}

# --- coturn (TURN relay for remote support) -------------------------------------------------

have_turnserver() { [ -x /usr/bin/turnserver ] || command -v turnserver >/dev/null 2>&1; }

ensure_coturn() {
    have_turnserver && return 0
    if ! is_root; then
        missing "coturn is not installed (remote-support TURN tests): sudo apt-get install coturn"
        return 0
    fi
    apt_install coturn
    have_turnserver || die "turnserver is still missing after apt-get install coturn"
    # Debian starts a system coturn on 3478; the tests run their own on free ports.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now coturn >/dev/null 2>&1 || true; fi
}

# --- Firefox ESR (remote support in a second browser) -------------------------------------

ensure_firefox() {
    command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1 && return 0
    if ! is_root; then
        missing "Firefox is not installed (remote-support browser test): sudo apt-get install firefox-esr"
        return 0
    fi
    apt_install firefox-esr
}

# --- promtool (alert rules and their unit tests) ---------------------------------------------

ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    if ! is_root; then
        missing "promtool is not installed (monitoring tests): sudo apt-get install prometheus"
        return 0
    fi
    apt_install prometheus
    command -v promtool >/dev/null 2>&1 || die "promtool is still missing after apt-get install prometheus"
    # Debian starts a system Prometheus on 9090 (and the recommended node exporter on 9100);
    # the tests only need promtool.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
    fi
    if command -v service >/dev/null 2>&1; then
        service prometheus stop >/dev/null 2>&1 || true
        service prometheus-node-exporter stop >/dev/null 2>&1 || true
    fi
}

# --- deployment checks: caddy (validates deploy/Caddyfile), mosquitto-clients (the broker's
# compose health check) ---------------------------------------------------------------------

ensure_deploy_tools() {
    local need=()
    command -v caddy >/dev/null 2>&1 || need+=(caddy)
    command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
    [ "${#need[@]}" -eq 0 ] && return 0
    if ! is_root; then
        missing "${need[*]} not installed (deployment tests): sudo apt-get install ${need[*]}"
        return 0
    fi
    apt_install "${need[@]}"
    # Debian's caddy package starts a web server on port 80; the tests only run `caddy validate`.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now caddy >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then service caddy stop >/dev/null 2>&1 || true; fi
}

# --- the kiosk tablet (tests/kiosk): an X server, xdotool to tap and type, fonts, a sound server

ensure_kiosk_tools() {
    local need=()
    command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
    command -v xdotool >/dev/null 2>&1 || need+=(xdotool)
    [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
    command -v unshare >/dev/null 2>&1 || need+=(util-linux)
    command -v pulseaudio >/dev/null 2>&1 || need+=(pulseaudio)
    command -v pactl >/dev/null 2>&1 || need+=(pulseaudio-utils)
    command -v xauth >/dev/null 2>&1 || need+=(xauth)
    command -v setxkbmap >/dev/null 2>&1 || need+=(x11-xkb-utils)
    command -v nmcli >/dev/null 2>&1 || need+=(network-manager)
    [ "${#need[@]}" -eq 0 ] && return 0
    if ! is_root; then
        missing "${need[*]} not installed (kiosk tablet tests): sudo apt-get install ${need[*]}"
        return 0
    fi
    apt_install "${need[@]}"
    # The tests run nmcli --offline only; a NetworkManager this script brought must not start
    # managing the machine's network.
    if [[ " ${need[*]} " == *" network-manager "* ]]; then
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now NetworkManager >/dev/null 2>&1 || true
        fi
        if command -v service >/dev/null 2>&1; then service network-manager stop >/dev/null 2>&1 || true; fi
    fi
}

# --- Docker (tests/kiosk/test_install_systemd.py: the install under a real systemd, in a
# container) and debootstrap (scripts/docker/base-image.sh: the local Debian base image) ------

ensure_docker() {
    # Those tests run as root only (they skip otherwise), so only root needs Docker.
    is_root || return 0
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    # Installs docker.io if missing and starts dockerd if none answers (silent otherwise).
    bash "$(dirname "${BASH_SOURCE[0]}")/docker/ensure-docker.sh"
}

ensure_mosquitto
ensure_postgres
ensure_chromium
ensure_kiosk_tools
ensure_coturn
ensure_firefox
ensure_promtool
ensure_deploy_tools
ensure_docker

if [ "${#MISSING[@]}" -gt 0 ]; then
    echo "ensure-services: the tests need real services that are not ready:" >&2
    for line in "${MISSING[@]}"; do
        echo "  - $line" >&2
    done
    exit 1
fi
