#!/bin/sh
# Entrypoint of the mosquitto container (docker-compose.yml): runs the broker and reloads it
# when the Lainaamo server rewrites its auth files.
#
# The server writes `passwd` and `acl` atomically into the shared volume $SRC (read-only
# here). This script copies them to $DST owned by the mosquitto user, mode 0600, and sends
# the broker SIGHUP, on which Mosquitto 2 re-reads its password and ACL files; a login the
# files no longer contain is disconnected. Checked every second, so a revoked tablet is cut
# off within a couple of seconds of the server's change.
set -eu
SRC=${LAINAAMO_AUTH_SRC:-/lainaamo-auth}
DST=/mosquitto/auth
CONF=/mosquitto/config/mosquitto.conf

install_files() {
    for name in passwd acl; do
        cp "$SRC/$name" "$DST/.$name.new"
        chown mosquitto:mosquitto "$DST/.$name.new"
        chmod 0600 "$DST/.$name.new"
        mv "$DST/.$name.new" "$DST/$name"
    done
}

checksum() {
    cat "$SRC/passwd" "$SRC/acl" | md5sum
}

mkdir -p "$DST"
until [ -f "$SRC/passwd" ] && [ -f "$SRC/acl" ]; do
    echo "waiting for the Lainaamo server to write $SRC/passwd and $SRC/acl"
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
