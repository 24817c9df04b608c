#!/bin/sh
# Entry point of the postgres stand-in image, shaped like the official one: on first
# start it makes a cluster in PGDATA owned by POSTGRES_USER with POSTGRES_PASSWORD,
# creates POSTGRES_DB, and accepts password (scram) connections from any address.
set -eu

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "Database is uninitialized and POSTGRES_PASSWORD is not set." >&2
        exit 1
    fi
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
    initdb -D "$PGDATA" -U "$user" --pwfile="$password_file" --encoding=UTF8 \
        --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        # A private socket folder: nothing outside sees the server until it is set up.
        init_socket=$(mktemp -d)
        pg_ctl -D "$PGDATA" -w start \
            -o "-c listen_addresses='' -c unix_socket_directories=$init_socket" >/dev/null
        createdb -h "$init_socket" -U "$user" "$database"
        pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        rmdir "$init_socket"
    fi
    echo "PostgreSQL init process complete; ready for start up."
fi

shift
exec postgres -c listen_addresses='*' "$@"
