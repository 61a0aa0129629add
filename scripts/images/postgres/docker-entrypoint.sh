#!/usr/bin/env bash
# Entrypoint of the offline `postgres:15` stand-in (see Dockerfile).
#
# Behaves like the official image's entrypoint for what the devtool demo
# stack relies on:
#   * POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
#     POSTGRES_USER (default postgres), POSTGRES_DB (default $POSTGRES_USER),
#     POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256);
#   * a cluster is initialised only when $PGDATA is empty, UTF8 with the
#     C.UTF-8 locale;
#   * local (unix socket) connections are trusted, host connections from
#     anywhere need the password;
#   * /docker-entrypoint-initdb.d/*.sql and *.sh (run if executable, else
#     sourced) run once, after initdb;
#   * the server runs in the foreground as the postgres user, exec'd, so it
#     is PID 1 and `docker stop` (SIGINT, fast shutdown) stops it cleanly.
#
# Unlike the official image, the temporary server used during
# initialisation listens on no TCP port and puts its unix socket in a
# private directory, so neither `pg_isready` nor `pg_isready -h localhost`
# reports "accepting connections" before the real server is up.
set -Eeo pipefail  # no -u: initdb.d scripts are sourced, as upstream

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    # As root: fix ownership of the data and socket directories, then
    # re-exec this script as postgres (setpriv execs, no extra process).
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 00700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    POSTGRES_USER="${POSTGRES_USER:-postgres}"
    POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
    POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
        log 'error: database is uninitialized and POSTGRES_PASSWORD is not set.'
        log '       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust).'
        exit 1
    fi

    log "initialising cluster in $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is word-split on purpose
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >&2
    rm -f "$pwfile"

    # initdb's own pg_hba.conf trusts local and loopback connections, as
    # upstream; every other host connection needs the password.
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"

    # Temporary server: no TCP listener, socket in a private directory.
    initsock="$(mktemp -d)"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$initsock" start >&2
    psql_init=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc -h "$initsock"
               -U "$POSTGRES_USER")
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        "${psql_init[@]}" -d postgres --set db="$POSTGRES_DB" >&2 <<'SQL'
CREATE DATABASE :"db";
SQL
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    log "running $f"
                    PGHOST="$initsock" PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB" "$f"
                else
                    log "sourcing $f"
                    # shellcheck disable=SC1090
                    PGHOST="$initsock" PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB" . "$f"
                fi
                ;;
            *.sql) log "running $f"; "${psql_init[@]}" -d "$POSTGRES_DB" -f "$f" >&2 ;;
            *)     log "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >&2
    rmdir "$initsock" 2>/dev/null || true
    log 'initialisation complete; starting server'
fi

exec "$@"
