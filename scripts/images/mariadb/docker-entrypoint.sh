#!/usr/bin/env bash
# Entrypoint of the offline `mariadb:10.11` stand-in (see Dockerfile).
#
# Behaves like the official image's entrypoint for what devtool's test
# fixtures rely on:
#   * MARIADB_ROOT_PASSWORD (or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1) is
#     required on a new data directory; root may log in from anywhere with
#     it (and through the socket as the system's root);
#   * MARIADB_DATABASE is created, MARIADB_USER / MARIADB_PASSWORD get every
#     privilege on it (from any host); each MYSQL_* name works as an alias;
#   * /docker-entrypoint-initdb.d/*.sql and *.sh run once, after the
#     initialisation;
#   * the server runs in the foreground as the mysql user, exec'd (PID 1).
#
# The temporary server used during initialisation listens on no TCP port,
# so `healthcheck.sh --connect` passes only once the real server is up.
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

if [ "${1:0:1}" = '-' ]; then
    set -- mariadbd "$@"
fi

# MARIADB_X, else MYSQL_X, else the default.
env_of() { local name="$1" default="${2:-}" m="MARIADB_$1" y="MYSQL_$1"; printf '%s' "${!m:-${!y:-$default}}"; }
# A string as an SQL literal's inside: backslashes and quotes escaped.
sql_escape() { sed -e "s/[\\\\']/\\\\&/g" <<<"$1"; }

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

if { [ "$1" = 'mariadbd' ] || [ "$1" = 'mysqld' ]; } && [ "$(id -u)" = '0' ]; then
    mkdir -p "$DATADIR" /run/mysqld
    chown mysql:mysql /run/mysqld
    find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +

    if [ ! -d "$DATADIR/mysql" ]; then
        root_password="$(env_of ROOT_PASSWORD)"
        allow_empty="$(env_of ALLOW_EMPTY_ROOT_PASSWORD)"
        database="$(env_of DATABASE)"
        user="$(env_of USER)"
        password="$(env_of PASSWORD)"
        if [ -z "$root_password" ] && [ -z "$allow_empty" ]; then
            log 'error: database is uninitialized and MARIADB_ROOT_PASSWORD is not set.'
            log '       Set MARIADB_ROOT_PASSWORD (or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1).'
            exit 1
        fi
        log "initialising $DATADIR (database ${database:-none}, user ${user:-none})"
        mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
            --auth-root-authentication-method=socket >&2

        # Temporary server: socket only.
        setpriv --reuid=mysql --regid=mysql --init-groups -- \
            mariadbd --skip-networking --socket="$SOCKET" --datadir="$DATADIR" >&2 &
        pid=$!
        for _ in $(seq 1 300); do
            mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1 && break
            kill -0 "$pid" 2>/dev/null || { log 'error: the temporary server died'; exit 1; }
            sleep 0.1
        done
        client=(mariadb --protocol=socket --socket="$SOCKET" -uroot)
        root_sql="$(sql_escape "$root_password")"
        {
            echo "SET @@SESSION.SQL_LOG_BIN=0;"
            echo "DELETE FROM mysql.global_priv WHERE user = '' OR (user = 'root' AND host NOT IN ('localhost'));"
            echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$root_sql');"
            echo "CREATE USER 'root'@'%' IDENTIFIED BY '$root_sql';"
            echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
            if [ -n "$database" ]; then
                echo "CREATE DATABASE IF NOT EXISTS \`${database//\`/\`\`}\`;"
            fi
            if [ -n "$user" ]; then
                echo "CREATE USER '$(sql_escape "$user")'@'%' IDENTIFIED BY '$(sql_escape "$password")';"
                if [ -n "$database" ]; then
                    echo "GRANT ALL ON \`${database//\`/\`\`}\`.* TO '$(sql_escape "$user")'@'%';"
                fi
            fi
            echo "FLUSH PRIVILEGES;"
        } | "${client[@]}"
        for f in /docker-entrypoint-initdb.d/*; do
            [ -e "$f" ] || continue
            case "$f" in
                *.sh)  log "running $f"; bash "$f" ;;
                *.sql) log "running $f"; "${client[@]}" ${database:+"$database"} < "$f" ;;
                *)     log "ignoring $f" ;;
            esac
        done
        mariadb-admin --socket="$SOCKET" -uroot shutdown
        wait "$pid" || true
        log 'initialisation complete; starting server'
    fi
    exec setpriv --reuid=mysql --regid=mysql --init-groups -- "$@"
fi

exec "$@"
