#!/bin/sh
# The application image's entry point: the first argument names the job.
#
#   monitor [OPTIONS]    the alert monitor (alerts/monitor.py), options as its --help
#   process [OPTIONS]    workers; one process per core the container may use unless
#                        RIEMANN_WORKERS or --workers says otherwise
#   anything else        the riemann command line: generate, cleanup, db upgrade, ...
#
# `exec` keeps the job the container's main process, so `docker stop` signals it.
set -eu

case "${1:-}" in
monitor)
    shift
    exec riemann-monitor "$@"
    ;;
process)
    # `riemann process` alone runs one worker; in a container the cores it may use
    # (its cpuset, as nproc reads them) are the natural default.
    if [ -z "${RIEMANN_WORKERS:-}" ]; then
        RIEMANN_WORKERS=$(nproc)
        export RIEMANN_WORKERS
    fi
    exec riemann "$@"
    ;;
*)
    exec riemann "$@"
    ;;
esac
