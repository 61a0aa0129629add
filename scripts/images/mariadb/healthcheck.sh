#!/usr/bin/env bash
# healthcheck.sh of the offline `mariadb:10.11` stand-in (see Dockerfile).
#
# Accepts the official image's usual flags: --connect (the server answers
# on TCP, so only the real server, never the socket-only initialisation
# one, passes) and --innodb_initialized (InnoDB is up: a server that
# answers has it). Other flags are ignored.
set -eo pipefail
for arg in "$@"; do
    case "$arg" in
        --connect|--innodb_initialized|--su-mysql|--su=*) ;;
        *) ;;
    esac
done
exec mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P 3306 --connect-timeout=2 ping >/dev/null 2>&1
