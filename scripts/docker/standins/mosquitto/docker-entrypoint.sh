#!/bin/sh
# Entrypoint of the eclipse-mosquitto:2 stand-in, as upstream's: as root, everything under
# /mosquitto becomes the mosquitto user's (the broker drops to it); then run the command.
# (docker-compose.yml replaces this entrypoint with deploy/mosquitto-run.sh.)
set -e
if [ "$(id -u)" = 0 ] && [ -d /mosquitto ]; then
    chown -R mosquitto:mosquitto /mosquitto 2>/dev/null || true
fi
exec "$@"
