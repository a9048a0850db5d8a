#!/bin/sh
# /usr/local/sbin/mosquitto of the eclipse-mosquitto:2 stand-in: Debian's Mosquitto 2.0.11
# block-buffers `log_dest stdout` when stdout is no terminal (docker logs then shows nothing
# until 4 KB have piled up or the broker exits); upstream line-buffers it since 2.0.16
# (issues #2354, #2749). stdbuf makes 2.0.11 do the same; it execs the broker, so the broker
# keeps this process's id (deploy/mosquitto-run.sh sends its SIGHUP to that) and its name.
exec stdbuf -oL /usr/sbin/mosquitto "$@"
