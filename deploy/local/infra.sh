#!/usr/bin/env bash
# Real Apache Kafka 4.x (single KRaft node) and FerretDB v1.24.2 (SQLite backend) on 127.0.0.1,
# for local development and CI, without Docker.
#
#   deploy/local/infra.sh fetch        download/build once into .cache/ (idempotent)
#   deploy/local/infra.sh start        fetch, start both if not running, wait until ready, print env
#   deploy/local/infra.sh stop         stop both (SIGTERM, SIGKILL after 30 s)
#   deploy/local/infra.sh status       show what runs (exit 0 only if both run)
#   deploy/local/infra.sh logs [kafka|ferretdb] [-f]
#   deploy/local/infra.sh env          print the export lines (eval "$(deploy/local/infra.sh env)")
#   deploy/local/infra.sh reset        stop and delete all data under .cache/run
#   deploy/local/infra.sh kafka-stop   stop only Kafka, keeping its data (tests: simulate an outage)
#   deploy/local/infra.sh kafka-start  start only Kafka again and wait until it answers
#
# Settings (environment): INFRA_INSTANCE (run: data under .cache/<instance>; `make test` uses its own,
# `test`, on other ports, so tests never touch the data of the system `make run` runs),
# KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), MONGO_PORT (27017),
# INFRA_START_TIMEOUT (90 s), KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), FERRETDB_LOG_LEVEL (warn).
# Needs: java >= 17, mvn, go >= 1.24 (only for the one-time build), python3.
# stdout carries only the export lines; progress and errors go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
CACHE="$ROOT/.cache"          # git-ignored
KAFKA_HOME="$CACHE/kafka"     # libs/ = broker jars from Maven Central
BIN="$CACHE/bin"              # ferretdb binary
RUN="$CACHE/${INFRA_INSTANCE:-run}"  # pid files, logs, data of this instance

FERRETDB_MODULE="github.com/FerretDB/FerretDB"
FERRETDB_VERSION="v1.24.2"

HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
MONGO_PORT="${MONGO_PORT:-27017}"
START_TIMEOUT="${INFRA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
FERRETDB_LOG_LEVEL="${FERRETDB_LOG_LEVEL:-warn}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

KAFKA_BOOTSTRAP_SERVERS="$HOST:$KAFKA_PORT"
MONGODB_URL="mongodb://$HOST:$MONGO_PORT/"

log() { echo "infra: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"; }

# The project venv has aiokafka/pymongo for a real readiness probe; plain python3 falls back
# to wait_ready.py's standard-library probe.
python_bin() {
  if [[ -x "$ROOT/.venv/bin/python" ]]; then echo "$ROOT/.venv/bin/python"; else echo python3; fi
}

# ------------------------------------------------------------------------------------ fetch

fetch_kafka() {
  # The marker holds the pom's hash: a second fetch is instant, a version bump re-fetches.
  local stamp marker="$KAFKA_HOME/.complete"
  stamp="$(sha256sum "$HERE/kafka-pom.xml" | cut -d' ' -f1)"
  if [[ -f "$marker" && "$(cat "$marker")" == "$stamp" ]]; then return 0; fi
  need mvn "apt-get install maven"
  check_java
  log "fetching Kafka broker jars with Maven into .cache/kafka/libs (once) ..."
  rm -rf "$KAFKA_HOME/libs.tmp"
  mkdir -p "$KAFKA_HOME"
  # Output goes to stderr (our stdout carries only the env lines), minus Maven 3.8's stray
  # ANSI colour resets that -B does not suppress.
  mvn -q -B -f "$HERE/kafka-pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs.tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
  rm -rf "$KAFKA_HOME/libs"
  mv "$KAFKA_HOME/libs.tmp" "$KAFKA_HOME/libs"
  echo "$stamp" >"$marker"
}

check_java() {
  need "$JAVA" "Kafka 4 needs a Java 17+ runtime: apt-get install openjdk-17-jre-headless"
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ "${v%%.*}" -ge 17 ]] 2>/dev/null || die "Kafka 4 needs Java 17+, found '$v' ($JAVA)"
}

# (No `| grep -q` here: with pipefail, grep's early exit would fail the pipeline via SIGPIPE.)
ferretdb_built() {
  [[ -x "$BIN/ferretdb" && "$("$BIN/ferretdb" --version 2>/dev/null)" == *"version: $FERRETDB_VERSION"* ]]
}

fetch_ferretdb() {
  ferretdb_built && return 0
  need go "FerretDB is built from its Go module"
  log "building FerretDB $FERRETDB_VERSION into .cache/bin (once, 1-2 min) ..."
  # Why not plain `go install .../cmd/ferretdb@v1.24.2`: that builds, but the binary panics at
  # start ("Invalid build/version/version.txt file content") because the module zip lacks the
  # generated build/version/version.txt. So: copy the module source, write that file, build it.
  export GOTOOLCHAIN=local GOWORK=off GO111MODULE=on
  local src="$CACHE/ferretdb-src" moddir
  mkdir -p "$CACHE" "$BIN"
  moddir="$(cd "$CACHE" && go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')"
  rm -rf "$src"
  cp -R "$moddir" "$src"
  chmod -R u+w "$src"   # the module cache is read-only
  echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  echo "local" >"$src/build/version/package.txt"
  # -buildvcs=false: .cache/ sits inside our git repo; its commit is not FerretDB's.
  (cd "$src" && go build -trimpath -buildvcs=false -o "$BIN/ferretdb.tmp" ./cmd/ferretdb)
  mv "$BIN/ferretdb.tmp" "$BIN/ferretdb"
  rm -rf "$src"
  ferretdb_built || die "the built ferretdb does not report version $FERRETDB_VERSION"
}

cmd_fetch() {
  fetch_kafka
  fetch_ferretdb
}

# ------------------------------------------------------------------------------------ processes

# is_ours NAME MARKER: the pid file names a live process whose command line has MARKER and our
# run dir (so a reused pid, or another checkout's instance, is never taken for ours).
is_ours() {
  local pidf="$RUN/$1.pid" pid args
  [[ -s "$pidf" ]] || return 1
  pid="$(cat "$pidf")"
  alive "$pid" || return 1
  args="$(ps -ww -p "$pid" -o args= 2>/dev/null)" || return 1
  [[ "$args" == *"$2"* && "$args" == *"$RUN"* ]]
}

alive() { kill -0 "$1" 2>/dev/null && [[ "$(ps -p "$1" -o stat= 2>/dev/null)" != Z* ]]; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# launch NAME LOGFILE CMD...: detached from this shell (own session, so Ctrl-C or the caller's
# exit does not kill it); the child writes its own pid before exec'ing the server.
launch() {
  local name="$1" out="$2"; shift 2
  local pidf="$RUN/$name.pid"
  rm -f "$pidf"
  echo "=== $(date '+%F %T') infra.sh start $name ===" >>"$out"
  local detach=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
  "${detach[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >>"$out" 2>&1 </dev/null 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do [[ -s "$pidf" ]] && return 0; sleep 0.1; done
  die "$name did not write its pid file"
}

# stop_one NAME MARKER: SIGTERM, wait up to STOP_TIMEOUT s, then SIGKILL. Harmless if not running.
stop_one() {
  local name="$1" pidf="$RUN/$1.pid" pid i
  if ! is_ours "$1" "$2"; then
    rm -f "$pidf"
    log "$name is not running"
    return 0
  fi
  pid="$(cat "$pidf")"
  log "stopping $name (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$pidf"
  log "$name stopped"
}

# ------------------------------------------------------------------------------------ Kafka

KAFKA_MARKER="kafka.Kafka"

write_kafka_config() {
  # Regenerated on every start so port changes apply; the data dir keeps the cluster state.
  # Static single-voter quorum (controller.quorum.voters) instead of `format --standalone`:
  # nothing about the controller endpoint is stored in the log, so changing ports stays safe.
  cat >"$RUN/kafka-server.properties" <<EOF
# Generated by deploy/local/infra.sh - edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$RUN/kafka-data

# One node: every internal topic must accept replication factor 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: the first consumer group starts faster.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10

num.partitions=3
auto.create.topics.enable=true
# No 3 s wait before the first rebalance: tests get their assignment at once.
group.initial.rebalance.delay.ms=0

# Small machine (2 cores): fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# The JVM command line shared by the storage tool and the broker. Heap is capped at 512 MB.
kafka_java() {
  local heap
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  KAFKA_JAVA=("$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    -Dkafka.logs.dir="$RUN" -Dlog4j2.configurationFile="$HERE/log4j2.properties"
    -cp "$KAFKA_HOME/libs/*")
}

start_kafka() {
  if is_ours kafka "$KAFKA_MARKER"; then
    log "Kafka already running (pid $(cat "$RUN/kafka.pid"))"
    return 0
  fi
  rm -f "$RUN/kafka.pid"
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is used by another process (not this checkout's Kafka); stop it or set KAFKA_PORT"
  port_open "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is used by another process; stop it or set KAFKA_CONTROLLER_PORT"
  mkdir -p "$RUN/kafka-data"
  write_kafka_config
  kafka_java
  if [[ ! -f "$RUN/kafka-data/meta.properties" ]]; then
    local cluster_id
    cluster_id="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid)"
    log "formatting Kafka storage (cluster id $cluster_id) ..."
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$RUN/kafka-server.properties" \
      >>"$RUN/kafka.out" 2>&1 || { tail -n 40 "$RUN/kafka.out" >&2; die "Kafka storage format failed"; }
  fi
  log "starting Kafka on $HOST:$KAFKA_PORT ..."
  # Mark the restart in the broker log too, so a failure tail never shows an older run's lines.
  echo "=== $(date '+%F %T') infra.sh start kafka ===" >>"$RUN/kafka.log"
  launch kafka "$RUN/kafka.out" "${KAFKA_JAVA[@]}" kafka.Kafka "$RUN/kafka-server.properties"
}

# ------------------------------------------------------------------------------------ FerretDB

FERRETDB_MARKER="ferretdb"

start_ferretdb() {
  if is_ours ferretdb "$FERRETDB_MARKER"; then
    log "FerretDB already running (pid $(cat "$RUN/ferretdb.pid"))"
    return 0
  fi
  rm -f "$RUN/ferretdb.pid"
  port_open "$MONGO_PORT" && die "port $MONGO_PORT is used by another process (a mongod?); stop it or set MONGO_PORT"
  mkdir -p "$RUN/ferretdb-data" "$RUN/ferretdb-state"
  log "starting FerretDB on $HOST:$MONGO_PORT ..."
  # --debug-addr=- : no metrics/pprof HTTP listener (it would want port 8088).
  launch ferretdb "$RUN/ferretdb.log" "$BIN/ferretdb" \
    --handler=sqlite --sqlite-url="file:$RUN/ferretdb-data/" --state-dir="$RUN/ferretdb-state" \
    --listen-addr="$HOST:$MONGO_PORT" --debug-addr=- --telemetry=disable \
    --log-level="$FERRETDB_LOG_LEVEL"
}

# ------------------------------------------------------------------------------------ readiness

# wait_ready [kafka] [ferretdb]: bounded wait; on failure name the service and show its log.
wait_ready() {
  local args=() rc=0 s
  for s in "$@"; do
    case "$s" in
      kafka) args+=(--kafka "$KAFKA_BOOTSTRAP_SERVERS" --kafka-pid "$(cat "$RUN/kafka.pid")") ;;
      ferretdb) args+=(--mongo "$MONGODB_URL" --mongo-pid "$(cat "$RUN/ferretdb.pid")") ;;
    esac
  done
  "$(python_bin)" "$HERE/wait_ready.py" --timeout "$START_TIMEOUT" "${args[@]}" || rc=$?
  if ((rc & 1)); then
    # kafka.out first: JVM start-up failures (bad flags, no heap) only appear there.
    log "Kafka did not become ready. Last 40 lines of .cache/run/kafka.out (JVM stdout/stderr):"
    tail -n 40 "$RUN/kafka.out" >&2 2>/dev/null || true
    log "Last 40 lines of .cache/run/kafka.log (broker log):"
    tail -n 40 "$RUN/kafka.log" >&2 2>/dev/null || true
  fi
  if ((rc & 2)); then
    log "FerretDB did not become ready. Last 40 lines of .cache/run/ferretdb.log:"
    tail -n 40 "$RUN/ferretdb.log" >&2 2>/dev/null || true
  fi
  ((rc == 0)) || die "start failed (see above); the services stay as they are, 'infra.sh stop' cleans up"
}

print_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
  echo "export MONGODB_URL=$MONGODB_URL"
}

# ------------------------------------------------------------------------------------ commands

cmd_start() {
  local t0=$SECONDS
  cmd_fetch
  mkdir -p "$RUN"
  start_kafka
  start_ferretdb
  wait_ready kafka ferretdb
  log "ready in $((SECONDS - t0))s: Kafka $KAFKA_BOOTSTRAP_SERVERS, FerretDB $MONGODB_URL"
  print_env
}

cmd_stop() {
  stop_one kafka "$KAFKA_MARKER"
  stop_one ferretdb "$FERRETDB_MARKER"
}

cmd_status() {
  local rc=0 pair name marker port
  for pair in "kafka:$KAFKA_MARKER:$KAFKA_PORT" "ferretdb:$FERRETDB_MARKER:$MONGO_PORT"; do
    IFS=: read -r name marker port <<<"$pair"
    if is_ours "$name" "$marker"; then
      local state="starting"
      port_open "$port" && state="listening on $HOST:$port"
      echo "$name: running (pid $(cat "$RUN/$name.pid")), $state"
    else
      echo "$name: stopped"
      rc=1
    fi
  done
  return $rc
}

cmd_logs() {
  local which="all" follow=()
  for a in "$@"; do
    case "$a" in
      -f) follow=(-F) ;;
      kafka | ferretdb | all) which="$a" ;;
      *) die "usage: infra.sh logs [kafka|ferretdb] [-f]" ;;
    esac
  done
  local files=()
  [[ "$which" == ferretdb ]] || files+=("$RUN/kafka.out" "$RUN/kafka.log")
  [[ "$which" == kafka ]] || files+=("$RUN/ferretdb.log")
  tail -n 100 "${follow[@]}" "${files[@]}"
}

cmd_reset() {
  cmd_stop
  log "deleting .cache/${INFRA_INSTANCE:-run} (Kafka and FerretDB data, logs)"
  rm -rf "$RUN"
}

cmd_kafka_start() {
  local t0=$SECONDS
  fetch_kafka
  mkdir -p "$RUN"
  start_kafka
  wait_ready kafka
  log "Kafka ready in $((SECONDS - t0))s on $KAFKA_BOOTSTRAP_SERVERS"
}

# One infra.sh at a time per checkout: two concurrent `start`s (say, a developer and a test run)
# would otherwise build into the same directory or launch a second broker. Read-only commands
# (status, logs, env) skip the lock. The daemons must not inherit fd 9 (see launch).
lock() {
  mkdir -p "$CACHE"
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$CACHE/.infra.lock"
  if ! flock -n 9; then
    log "another infra.sh is running in this checkout; waiting for it ..."
    flock -w 900 9 || die "timed out waiting for the other infra.sh"
  fi
}

case "${1:-}" in
  fetch | start | stop | reset | kafka-start | kafka-stop) lock ;;
esac

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  env) print_env ;;
  reset) cmd_reset ;;
  kafka-start) cmd_kafka_start ;;
  kafka-stop) stop_one kafka "$KAFKA_MARKER" ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
