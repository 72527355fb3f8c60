#!/usr/bin/env bash
# Real Apache Kafka 4.x (single KRaft node) and FerretDB v1.24.2 on its PostgreSQL backend (Debian's
# PostgreSQL 15) on 127.0.0.1, for local development and CI, without Docker.
#
#   deploy/local/infra.sh fetch        download/build/install once (idempotent)
#   deploy/local/infra.sh start        fetch, start all three if not running, wait until ready, print env
#   deploy/local/infra.sh stop         stop all three (Kafka and FerretDB: SIGTERM, SIGKILL after 30 s;
#                                      then PostgreSQL: pg_ctl stop -m fast)
#   deploy/local/infra.sh status       show what runs (exit 0 only if all three run)
#   deploy/local/infra.sh logs [kafka|postgres|ferretdb] [-f]
#   deploy/local/infra.sh env          print the export lines (eval "$(deploy/local/infra.sh env)")
#   deploy/local/infra.sh reset        stop and delete all data of the instance (.cache/run by default)
#   deploy/local/infra.sh kafka-stop   stop only Kafka, keeping its data (tests: simulate an outage)
#   deploy/local/infra.sh kafka-start  start only Kafka again and wait until it answers
#   deploy/local/infra.sh psql [ARGS]  psql on FerretDB's PostgreSQL database (one schema per store database)
#
# Settings (environment): INFRA_INSTANCE (run: data under .cache/<instance>; `make test` uses its own,
# `test`, on other ports, so tests never touch the data of the system `make run` runs),
# KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), MONGO_PORT (27017), PG_PORT (25432; not 5432, where a distribution cluster may listen),
# INFRA_START_TIMEOUT (90 s), KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), FERRETDB_LOG_LEVEL (warn),
# FERRETDB_DEBUG_ADDR (-: none; host:port serves FerretDB's metrics and Go profiles),
# FERRETDB_GOGC (400) and FERRETDB_GOMEMLIMIT (3GiB): FerretDB's Go garbage collector (see start_ferretdb),
# PG_SYNCHRONOUS_COMMIT (on; see pg_options).
# Needs: java >= 17, mvn, go >= 1.24 (only for the one-time build), python3, and PostgreSQL 15's server
# (Debian's postgresql-15 package; as root, `fetch` installs it with apt-get where it is missing).
# As root, PostgreSQL runs as the `postgres` system user (it refuses to run as root); where that user
# cannot reach .cache/<instance>, its data lives in a directory of its own (see pg_place).
# stdout carries only the export lines; progress and errors go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
CACHE="$ROOT/.cache"          # git-ignored
KAFKA_HOME="$CACHE/kafka"     # libs/ = broker jars from Maven Central
BIN="$CACHE/bin"              # ferretdb binary
RUN="$CACHE/${INFRA_INSTANCE:-run}"  # pid files, logs, data of this instance
REL=".cache/${INFRA_INSTANCE:-run}"  # the same, as messages name it

FERRETDB_MODULE="github.com/FerretDB/FerretDB"
FERRETDB_VERSION="v1.24.2"

HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
MONGO_PORT="${MONGO_PORT:-27017}"
PG_PORT="${PG_PORT:-25432}"
PG_SYNCHRONOUS_COMMIT="${PG_SYNCHRONOUS_COMMIT:-on}"
START_TIMEOUT="${INFRA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
FERRETDB_LOG_LEVEL="${FERRETDB_LOG_LEVEL:-warn}"
FERRETDB_DEBUG_ADDR="${FERRETDB_DEBUG_ADDR:--}"
FERRETDB_GOGC="${FERRETDB_GOGC:-400}"
FERRETDB_GOMEMLIMIT="${FERRETDB_GOMEMLIMIT:-3GiB}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

KAFKA_BOOTSTRAP_SERVERS="$HOST:$KAFKA_PORT"
MONGODB_URL="mongodb://$HOST:$MONGO_PORT/"
PG_ROLE=ferretdb   # the cluster's superuser, and the database FerretDB keeps everything in
# FerretDB 1.24 keeps the read of every statement of an update command open on a pooled connection
# until the command ends, and takes one more connection for each write. Once the pool is taken by
# commands that each wait for one more, the whole store stops answering for good (seen with 100
# concurrent updates against its default pool of 50, and with eight processes of bulk and single updates,
# as the fault suite's service processes send them after an outage, against a pool of 200). Each process
# needs at most common.store.ferretdb_connections_needed(MONGODB_MAX_POOL_SIZE) (85 with the defaults): 1000
# covers the largest local stack (two instances of each service, the front door, tools) with room to
# spare; tests/deploy/test_store_budget_unit.py holds the two together. max_connections follows.
FERRETDB_PG_POOL="${FERRETDB_PG_POOL:-1000}"
FERRETDB_POSTGRESQL_URL="postgres://$PG_ROLE@$HOST:$PG_PORT/$PG_ROLE?pool_max_conns=$FERRETDB_PG_POOL"

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

# PostgreSQL 15's server programs: the `postgresql-15` package puts them outside PATH.
find_pg_bin() {
  local d
  for d in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/15/bin; do
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" && -x "$d/psql" ]]; then
      PG_BIN="$d"
      return 0
    fi
  done
  return 1
}

fetch_postgres() {
  find_pg_bin && return 0
  local install="apt-get install -y postgresql-15"
  ((EUID == 0)) || die "PostgreSQL 15 is not installed (no initdb under 'pg_config --bindir' or /usr/lib/postgresql/15/bin); run: sudo $install"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL 15 is not installed and there is no apt-get; install the PostgreSQL 15 server ($install on Debian)"
  log "installing PostgreSQL 15 with '$install' (once) ..."
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine (or container) may have no package lists yet: fetch them and try once more.
  if ! apt-get install -y postgresql-15 >&2; then
    log "'$install' failed; running 'apt-get update' and trying again ..."
    apt-get update >&2 || die "'apt-get update' failed; PostgreSQL 15 is needed: $install"
    apt-get install -y postgresql-15 >&2 || die "'$install' failed"
  fi
  find_pg_bin || die "'$install' finished, but PostgreSQL 15's initdb is still not found"
}

cmd_fetch() {
  fetch_kafka
  fetch_ferretdb
  fetch_postgres
}

# ------------------------------------------------------------------------------------ processes

# is_ours NAME MARKER [PLACE]: the pid file names a live process whose command line has MARKER and
# PLACE, our run dir by default (so a reused pid, or another checkout's instance, is never taken for ours).
is_ours() {
  local pidf="$RUN/$1.pid" pid args
  [[ -s "$pidf" ]] || return 1
  pid="$(cat "$pidf")"
  alive "$pid" || return 1
  args="$(ps -ww -p "$pid" -o args= 2>/dev/null)" || return 1
  [[ "$args" == *"$2"* && "$args" == *"${3:-$RUN}"* ]]
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

# ------------------------------------------------------------------------------------ PostgreSQL

PG_MARKER="postgres"
PG_OS_USER=postgres     # as root, the server runs as this system user (the package creates it)
PG_HOME_RECORD="$RUN/postgres.home"  # where this instance's cluster lives: see pg_place

# This instance's PostgreSQL directory (the cluster in data/, its log beside it): the recorded one,
# else the default under the run dir.
PG_HOME="$RUN/postgres"
[[ -s "$PG_HOME_RECORD" ]] && PG_HOME="$(cat "$PG_HOME_RECORD")"
PGDATA_DIR="$PG_HOME/data"
PG_LOG="$PG_HOME/postgres.log"

set_pg_home() {
  PG_HOME="$1"
  PGDATA_DIR="$PG_HOME/data"
  PG_LOG="$PG_HOME/postgres.log"
}

# as_pg CMD...: run a server program as the user the cluster belongs to. PostgreSQL refuses to run as
# root, so as root that is the postgres system user; otherwise the current user. From / so that a
# working directory that user cannot read does not trouble it; without fd 9 (see launch).
as_pg() {
  if ((EUID != 0)); then
    (cd / && "$@") 9>&-
  elif command -v runuser >/dev/null 2>&1; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
  else
    local a cmd=""
    for a in "$@"; do cmd+="'${a//\'/\'\\\'\'}' "; done
    (cd / && su "$PG_OS_USER" -s /bin/sh -c "$cmd") 9>&-
  fi
}

# Unique per checkout and instance, so two clones on one machine never share a cluster.
pg_dir_name() {
  echo "relief-hotline-${INFRA_INSTANCE:-run}-$(printf '%s' "$RUN" | sha256sum | cut -c1-12)"
}

# pg_place: choose (once, before initdb) and record where the cluster lives. As root the server runs as
# the postgres user, who must reach the data directory: the run dir where it can (everything stays in
# the checkout), else, when a parent directory is closed to other users (a clone under /root, say), a
# directory of its own in that user's home (or /var/tmp) named for this checkout and instance.
pg_place() {
  local home="$RUN/postgres"
  if ((EUID == 0)); then
    id -u "$PG_OS_USER" >/dev/null 2>&1 ||
      die "no '$PG_OS_USER' system user to run PostgreSQL as (it refuses to run as root); the postgresql-15 package creates it"
    if ! as_pg test -x "$RUN"; then
      local base="" b
      for b in "$(getent passwd "$PG_OS_USER" | cut -d: -f6)" /var/tmp; do
        if [[ -n "$b" && -d "$b" ]] && as_pg test -x "$b"; then base="$b"; break; fi
      done
      [[ -n "$base" ]] || die "the $PG_OS_USER user cannot reach $REL, nor its home directory or /var/tmp: nowhere to put PostgreSQL's data"
      home="$base/$(pg_dir_name)"
      log "the $PG_OS_USER user cannot reach $REL; PostgreSQL's data goes to $home"
    fi
  fi
  set_pg_home "$home"
  mkdir -p "$PG_HOME"
  chmod 700 "$PG_HOME"
  touch "$PG_LOG"
  ((EUID != 0)) || chown -R "$PG_OS_USER:" "$PG_HOME"
  echo "$PG_HOME" >"$PG_HOME_RECORD"
}

pg_initdb() {
  [[ -s "$PGDATA_DIR/PG_VERSION" ]] && return 0
  log "creating the PostgreSQL cluster (once) in $PGDATA_DIR ..."
  # trust: the server listens on 127.0.0.1 only and holds local development or test data.
  # C locale: nothing to generate or install on a minimal machine; FerretDB sorts by its own rules.
  as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" --username="$PG_ROLE" --auth=trust --encoding=UTF8 \
    --locale=C --no-sync --no-instructions >>"$PG_LOG" 2>&1 ||
    { tail -n 40 "$PG_LOG" >&2; die "PostgreSQL initdb failed (log: $PG_LOG)"; }
}

# The server's settings, given on every start so that port changes apply. For a local or test instance
# on a small (2-core) machine: fsync and full-page writes off trade safety against a crash of the
# machine, which these throw-away clusters do not need, for writes that do not wait on the disk. Commits
# stay synchronous (PG_SYNCHRONOUS_COMMIT, on): with fsync off that costs a write into the kernel's page
# cache, not a disk flush, and a killed PostgreSQL then loses no write it acknowledged. (Off, a SIGKILL
# lost the last few hundred milliseconds of acknowledged inserts: a case stored and dispatched was gone,
# and its redelivered request dispatched it a second time.) A modest
# shared_buffers; no JIT (it pays off for long analytical queries; once a collection is large enough to
# cross its cost threshold, every one of FerretDB's short scans would pay its compile time).
# TCP on 127.0.0.1 only: no unix socket, so no socket directory that user must be able to write.
pg_options() {
  local o=(
    -c listen_addresses="$HOST" -c port="$PG_PORT" -c unix_socket_directories="''"
    -c cluster_name="relief-hotline-${INFRA_INSTANCE:-run}"
    -c fsync=off -c synchronous_commit="$PG_SYNCHRONOUS_COMMIT" -c full_page_writes=off
    -c shared_buffers=128MB -c max_connections=$((FERRETDB_PG_POOL + 20)) -c jit=off
    # FerretDB keeps each document in one jsonb value, and PostgreSQL tests its filter on every row of a
    # collection for each lookup and update, decompressing each document over 2 KB: lz4 does that several
    # times faster than the default pglz (1,500 documents of 8 KB: a lookup 15-19 ms against 39-53 ms).
    -c default_toast_compression=lz4
    # Plan each statement with its parameters known, so FerretDB's `_jsonb->$1 @> $2` filters find the GIN
    # indexes ferretdb-indexes.sql gives them (a generic plan, with the key unknown, cannot use one).
    -c plan_cache_mode=force_custom_plan
    # Take an index wherever one serves the filter. The planner costs a scan by the table's own pages, but
    # a document over 2 KB lives out of line (TOAST), so the table of a small working set of large
    # documents looks a few pages long, and for a few thousand rows a scan seemed cheaper than the GIN
    # index: each row's filter then fetches and decompresses its document. In the e2e surge that made
    # the hotline's lookups of its intake records 7.5 ms each (2,600 of them, 43% of PostgreSQL's time;
    # an index lookup 0.2 ms). A filter that no index serves is still answered by a scan.
    -c enable_seqscan=off
  )
  echo "${o[*]}"
}

# pg_ctl writes the server's pid into postmaster.pid; a copy in the run dir keeps the is_ours check.
pg_adopt() {
  local pid
  pid="$(head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  echo "$pid" >"$RUN/postgres.pid"
  is_ours postgres "$PG_MARKER" "$PGDATA_DIR"
}

pg_psql() {
  PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U "$PG_ROLE" "$@"
}

# start_postgres SECONDS: start the cluster (initialising it the first time) and wait, at most
# SECONDS, until it accepts connections; then make sure FerretDB's database exists.
start_postgres() {
  find_pg_bin || fetch_postgres
  if is_ours postgres "$PG_MARKER" "$PGDATA_DIR" || pg_adopt; then
    log "PostgreSQL already running (pid $(cat "$RUN/postgres.pid"))"
  else
    rm -f "$RUN/postgres.pid"
    port_open "$PG_PORT" && die "port $PG_PORT is used by another process (another PostgreSQL?); stop it or set PG_PORT"
    [[ -s "$PG_HOME_RECORD" && -d "$PG_HOME" ]] || pg_place
    pg_initdb
    log "starting PostgreSQL on $HOST:$PG_PORT ..."
    echo "=== $(date '+%F %T') infra.sh start postgres ===" >>"$PG_LOG"
    if ! as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$1" -s -o "$(pg_options)" >&2; then
      log "PostgreSQL did not become ready. Last 40 lines of $PG_LOG:"
      tail -n 40 "$PG_LOG" >&2 2>/dev/null || true
      die "start failed (see above); 'infra.sh stop' cleans up"
    fi
    pg_adopt || die "PostgreSQL started, but its postmaster.pid names no server of this instance"
  fi
  local exists
  exists="$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_ROLE'")" ||
    die "PostgreSQL on $HOST:$PG_PORT does not answer psql (log: $PG_LOG)"
  if [[ "$exists" != 1 ]]; then
    pg_psql -d postgres -c "CREATE DATABASE $PG_ROLE" >&2 || die "could not create FerretDB's database '$PG_ROLE'"
  fi
  # Indexes FerretDB's filters can use (see the file); idempotent, and quick once every index has its twin.
  pg_psql -d "$PG_ROLE" -f "$HERE/ferretdb-indexes.sql" >/dev/null ||
    die "could not install FerretDB's query indexes (deploy/local/ferretdb-indexes.sql; log: $PG_LOG)"
}

stop_postgres() {
  local pid
  if ! is_ours postgres "$PG_MARKER" "$PGDATA_DIR" && ! pg_adopt; then
    rm -f "$RUN/postgres.pid"
    log "PostgreSQL is not running"
    return 0
  fi
  find_pg_bin || die "PostgreSQL runs (pid $(cat "$RUN/postgres.pid")) but pg_ctl is not found to stop it"
  pid="$(cat "$RUN/postgres.pid")"
  log "stopping PostgreSQL (pid $pid) ..."
  # fast: roll back open transactions and disconnect clients, then a clean shutdown checkpoint.
  if ! as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t "$STOP_TIMEOUT" -s >&2; then
    log "PostgreSQL did not stop within ${STOP_TIMEOUT}s; stopping it with -m immediate (recovery at the next start)"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m immediate -w -t 10 -s >&2 || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/postgres.pid"
  log "PostgreSQL stopped"
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
  mkdir -p "$RUN/ferretdb-state"
  log "starting FerretDB on $HOST:$MONGO_PORT ..."
  # FERRETDB_DEBUG_ADDR=- (the default): no metrics/pprof HTTP listener (it would want port 8088); set it
  # (127.0.0.1:PORT) to profile FerretDB (/debug/pprof/profile).
  # FerretDB decodes every document it reads from PostgreSQL's JSON into short-lived Go objects: with Go's
  # default GOGC=100, a CPU profile of the e2e surge showed about a third of its CPU in the collector.
  # GOGC=400 collects a quarter as often; GOMEMLIMIT makes it collect sooner again if the heap nears it.
  launch ferretdb "$RUN/ferretdb.log" env GOGC="$FERRETDB_GOGC" GOMEMLIMIT="$FERRETDB_GOMEMLIMIT" "$BIN/ferretdb" \
    --handler=postgresql --postgresql-url="$FERRETDB_POSTGRESQL_URL" --state-dir="$RUN/ferretdb-state" \
    --listen-addr="$HOST:$MONGO_PORT" --debug-addr="$FERRETDB_DEBUG_ADDR" --telemetry=disable \
    --log-level="$FERRETDB_LOG_LEVEL"
}

# ------------------------------------------------------------------------------------ readiness

# wait_ready SECONDS [kafka] [ferretdb]: bounded wait; on failure name the service and show its log.
wait_ready() {
  local timeout="$1" args=() rc=0 s
  shift
  for s in "$@"; do
    case "$s" in
      kafka) args+=(--kafka "$KAFKA_BOOTSTRAP_SERVERS" --kafka-pid "$(cat "$RUN/kafka.pid")") ;;
      ferretdb) args+=(--mongo "$MONGODB_URL" --mongo-pid "$(cat "$RUN/ferretdb.pid")") ;;
    esac
  done
  "$(python_bin)" "$HERE/wait_ready.py" --timeout "$timeout" "${args[@]}" || rc=$?
  if ((rc & 1)); then
    # kafka.out first: JVM start-up failures (bad flags, no heap) only appear there.
    log "Kafka did not become ready. Last 40 lines of $REL/kafka.out (JVM stdout/stderr):"
    tail -n 40 "$RUN/kafka.out" >&2 2>/dev/null || true
    log "Last 40 lines of $REL/kafka.log (broker log):"
    tail -n 40 "$RUN/kafka.log" >&2 2>/dev/null || true
  fi
  if ((rc & 2)); then
    log "FerretDB did not become ready. Last 40 lines of $REL/ferretdb.log:"
    tail -n 40 "$RUN/ferretdb.log" >&2 2>/dev/null || true
  fi
  ((rc == 0)) || die "start failed (see above); the services stay as they are, 'infra.sh stop' cleans up"
}

print_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
  echo "export MONGODB_URL=$MONGODB_URL"
  echo "export FERRETDB_POSTGRESQL_URL=$FERRETDB_POSTGRESQL_URL"
}

# ------------------------------------------------------------------------------------ commands

# What is left of INFRA_START_TIMEOUT (at least 1 s), so the whole start fails within it.
remaining() {
  local left=$((START_TIMEOUT - (SECONDS - $1)))
  echo $((left > 0 ? left : 1))
}

cmd_start() {
  cmd_fetch
  local t0=$SECONDS
  mkdir -p "$RUN"
  start_kafka
  start_postgres "$(remaining "$t0")"
  start_ferretdb
  wait_ready "$(remaining "$t0")" kafka ferretdb
  log "ready in $((SECONDS - t0))s: Kafka $KAFKA_BOOTSTRAP_SERVERS, FerretDB $MONGODB_URL (PostgreSQL $HOST:$PG_PORT)"
  print_env
}

# FerretDB before PostgreSQL, so that it never runs without its backend.
cmd_stop() {
  stop_one kafka "$KAFKA_MARKER"
  stop_one ferretdb "$FERRETDB_MARKER"
  stop_postgres
}

cmd_status() {
  local rc=0 pair name marker port place
  for pair in "kafka:$KAFKA_MARKER:$KAFKA_PORT:$RUN" "postgres:$PG_MARKER:$PG_PORT:$PGDATA_DIR" \
    "ferretdb:$FERRETDB_MARKER:$MONGO_PORT:$RUN"; do
    IFS=: read -r name marker port place <<<"$pair"
    if is_ours "$name" "$marker" "$place"; then
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
      kafka | postgres | ferretdb | all) which="$a" ;;
      *) die "usage: infra.sh logs [kafka|postgres|ferretdb] [-f]" ;;
    esac
  done
  local files=()
  [[ "$which" != all && "$which" != kafka ]] || files+=("$RUN/kafka.out" "$RUN/kafka.log")
  [[ "$which" != all && "$which" != postgres ]] || files+=("$PG_LOG")
  [[ "$which" != all && "$which" != ferretdb ]] || files+=("$RUN/ferretdb.log")
  tail -n 100 "${follow[@]}" "${files[@]}"
}

cmd_reset() {
  cmd_stop
  # A cluster placed outside the run dir (pg_place) goes too; only a directory of the name pg_place
  # gives, so a damaged record can never point rm at anything else.
  if [[ "$PG_HOME" != "$RUN"/* && "$(basename "$PG_HOME")" == "$(pg_dir_name)" && -d "$PG_HOME" ]]; then
    log "deleting $PG_HOME (PostgreSQL data, log)"
    rm -rf "$PG_HOME"
  fi
  log "deleting $REL (Kafka, PostgreSQL and FerretDB data, logs)"
  rm -rf "$RUN"
}

cmd_kafka_start() {
  local t0=$SECONDS
  fetch_kafka
  mkdir -p "$RUN"
  start_kafka
  wait_ready "$(remaining "$t0")" kafka
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
  psql) shift; find_pg_bin || die "PostgreSQL 15 is not installed (infra.sh fetch)"; pg_psql -d "$PG_ROLE" "$@" ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
