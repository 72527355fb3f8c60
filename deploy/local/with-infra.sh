#!/usr/bin/env bash
# Run a command with the real Kafka and FerretDB up and their addresses in the environment.
# Starts them if they are not running and stops them afterwards if it started them (or always,
# with --stop-after), so a developer's already-running infrastructure is left alone. With --fresh,
# infrastructure it starts begins with empty data (what a test run wants).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
INFRA="$ROOT/deploy/local/infra.sh"

stop_after=0
fresh=0
while [ $# -gt 0 ]; do
  case "$1" in
    --stop-after) stop_after=1; shift ;;
    --fresh) fresh=1; shift ;;
    *) break ;;
  esac
done

started=0
if ! bash "$INFRA" status >/dev/null 2>&1; then started=1; fi
cleanup() {
  if [ "$started" = 1 ] || [ "$stop_after" = 1 ]; then bash "$INFRA" stop; fi
}
trap cleanup EXIT
if [ "$started" = 1 ] && [ "$fresh" = 1 ]; then bash "$INFRA" reset; fi
bash "$INFRA" start

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${KAFKA_PORT:-9092}"
export MONGODB_URL="mongodb://127.0.0.1:${MONGO_PORT:-27017}/"
for svc in HOTLINE ROUTER RELIEF NOTIFY FRONTDOOR; do
  export "${svc}_KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS}"
  export "${svc}_MONGODB_URL=${MONGODB_URL}"
done
"$@"
