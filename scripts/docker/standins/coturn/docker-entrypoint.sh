#!/bin/bash
# Entrypoint of the coturn/coturn:4.6 stand-in: arguments that start with `-` are options of
# turnserver (`docker run coturn/coturn:4.6 -n --log-file=stdout ...`); any other command is
# run as it is. Unlike upstream's, the arguments are not evaluated by the shell again.
if [ "${1:0:1}" = - ]; then
    set -- turnserver "$@"
fi
exec "$@"
