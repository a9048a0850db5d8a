#!/bin/sh
# Entrypoint of the mosquitto container (docker-compose.yml): runs the broker and reloads it
# when the Lainaamo scheduler rewrites its auth files.
#
# The scheduler writes `passwd` and `acl` atomically into the shared volume $SRC (read-only
# here). This script copies them to $DST owned by the mosquitto user, mode 0600, and sends
# the broker SIGHUP, on which Mosquitto 2 re-reads its password and ACL files; a login the
# files no longer contain is disconnected. Checked every second, so a revoked tablet is cut
# off within a couple of seconds of the scheduler's change.
#
# The defaults are the container's paths; tests/integration/test_deploy_broker.py runs this
# very script against a real Mosquitto with its own directories.
set -eu
SRC=${LAINAAMO_AUTH_SRC:-/lainaamo-auth}
DST=${MOSQUITTO_AUTH_DIR:-/mosquitto/auth}
CONF=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}
OWNER=${MOSQUITTO_AUTH_OWNER:-mosquitto:mosquitto}

install_files() {
    for name in passwd acl; do
        cp "$SRC/$name" "$DST/.$name.new"
        chown "$OWNER" "$DST/.$name.new"
        chmod 0600 "$DST/.$name.new"
        mv "$DST/.$name.new" "$DST/$name"
    done
}

checksum() {
    cat "$SRC/passwd" "$SRC/acl" | md5sum
}

mkdir -p "$DST"
until [ -f "$SRC/passwd" ] && [ -f "$SRC/acl" ]; do
    echo "waiting for the Lainaamo scheduler to write $SRC/passwd and $SRC/acl"
    sleep 2
done
install_files
seen=$(checksum)

mosquitto -c "$CONF" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT

while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    now=$(checksum)
    if [ "$now" != "$seen" ]; then
        install_files
        seen=$now
        kill -HUP "$pid"
    fi
done
wait "$pid"
