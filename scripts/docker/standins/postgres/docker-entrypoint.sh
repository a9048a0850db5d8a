#!/usr/bin/env bash
# Entrypoint of the postgres:15 stand-in (scripts/docker/standins/postgres/Dockerfile), with
# the conventions of the official image's docker-entrypoint.sh:
#
# - arguments that start with `-` are options of `postgres`;
# - `postgres ...` as root: PGDATA and the socket directory are made the postgres user's and
#   the script runs again as that user;
# - `postgres ...` with an empty PGDATA: initdb with POSTGRES_USER (default postgres) as the
#   superuser and POSTGRES_PASSWORD as its password (POSTGRES_INITDB_ARGS,
#   POSTGRES_INITDB_WALDIR), host connections from anywhere with POSTGRES_HOST_AUTH_METHOD
#   (default: password_encryption, i.e. scram-sha-256; the socket and localhost trust, as
#   initdb makes them), then, on a temporary server that listens on the socket only, the
#   database POSTGRES_DB (default: the user's name) and /docker-entrypoint-initdb.d/*;
# - then (or with an existing PGDATA at once) exec the server;
# - anything else is executed as it is.
#
# POSTGRES_PASSWORD_FILE and the other *_FILE variants are read as upstream's are.
set -Eeo pipefail

say() { echo "docker-entrypoint: $*"; }
die() { echo "docker-entrypoint: error: $*" >&2; exit 1; }

# VAR from VAR or from the file named by VAR_FILE (not both), else DEFAULT.
file_env() {
    local var="$1" fileVar="${1}_FILE" def="${2:-}" val
    if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
        die "both $var and $fileVar are set (but are exclusive)"
    fi
    val="$def"
    if [ -n "${!var:-}" ]; then
        val="${!var}"
    elif [ -n "${!fileVar:-}" ]; then
        val="$(<"${!fileVar}")"
    fi
    export "$var"="$val"
    unset "$fileVar"
}

setup_env() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    DATABASE_ALREADY_EXISTS=
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS=true
    fi
}

# As root: the directories the server needs, owned by postgres.
create_dirs() {
    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" || :
    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql || :
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        chown -R postgres:postgres "$POSTGRES_INITDB_WALDIR"
        chmod 700 "$POSTGRES_INITDB_WALDIR"
    fi
    # Only what is not the postgres user's already (a large data directory stays untouched).
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
}

verify_password() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        die "the database is uninitialized and the superuser password is not specified.
       Set POSTGRES_PASSWORD to a non-empty value (or POSTGRES_HOST_AUTH_METHOD=trust to
       allow every connection without a password, which is not recommended)."
    fi
}

init_database_dir() {
    local args=()
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        args+=(--waldir "$POSTGRES_INITDB_WALDIR")
    fi
    # POSTGRES_INITDB_ARGS is split into words on purpose, as upstream does.
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        $POSTGRES_INITDB_ARGS "${args[@]}"
}

setup_hba_conf() {
    local auth="$POSTGRES_HOST_AUTH_METHOD"
    if [ -z "$auth" ]; then
        auth="$(postgres -C password_encryption "$@")"
    fi
    {
        echo
        if [ "$auth" = trust ]; then
            echo '# warning: trust is enabled for all connections'
        fi
        echo "host all all all $auth"
    } >>"$PGDATA/pg_hba.conf"
}

temp_server_start() {
    # The user's own options (e.g. max_connections), but on the socket only.
    set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
    PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

psql_as_superuser() {  # [psql args...]
    PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password \
        --no-psqlrc "$@"
}

setup_db() {
    local exists
    exists="$(psql_as_superuser --dbname postgres --set db="$POSTGRES_DB" \
        --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db' ;")"
    if [ -z "${exists// /}" ]; then
        psql_as_superuser --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
        say "created database $POSTGRES_DB"
    fi
}

process_init_files() {
    local f
    for f in "$@"; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    say "running $f"
                    "$f"
                else
                    say "sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql) say "running $f"; psql_as_superuser --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) say "running $f"; gunzip -c "$f" | psql_as_superuser --dbname "$POSTGRES_DB" ;;
            *) say "ignoring $f" ;;
        esac
    done
}

main() {
    if [ "${1:0:1}" = '-' ]; then
        set -- postgres "$@"
    fi
    if [ "$1" != postgres ]; then
        exec "$@"
    fi

    setup_env
    if [ "$(id -u)" = 0 ]; then
        create_dirs
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
    fi

    if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
        verify_password
        ls /docker-entrypoint-initdb.d/ >/dev/null
        init_database_dir
        setup_hba_conf "${@:2}"
        export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
        temp_server_start "${@:2}"
        setup_db
        shopt -s nullglob
        process_init_files /docker-entrypoint-initdb.d/*
        shopt -u nullglob
        temp_server_stop
        unset PGPASSWORD
        say "PostgreSQL init process complete; ready for start up."
    else
        say "PostgreSQL database directory appears to contain a database; skipping initialization"
    fi
    exec "$@"
}

main "$@"
