#!/usr/bin/env bash
# Run a throwaway single-node Apache Kafka broker (KRaft, broker+controller) on
# 127.0.0.1 for tests -- no tarball, no Docker: the jars come from Maven Central.
#
#   scripts/kafka.sh start    # fetch jars (first time), format fresh storage, start, wait until ready
#   scripts/kafka.sh stop     # TERM (up to 20 s) then KILL; ok if not running
#   scripts/kafka.sh resume   # start again on the storage of the last start: topics and records kept
#   scripts/kafka.sh status   # exit 0 if running, 3 if not
#
# Environment:
#   LOOPLINE_KAFKA_PORT             broker listener port (default 9092)
#   LOOPLINE_KAFKA_CONTROLLER_PORT  controller listener port (default PORT+1)
#   LOOPLINE_KAFKA_HOME             jar cache (default ~/.cache/loopline/kafka-4.3.1; jars in libs/)
#   LOOPLINE_KAFKA_STATE            data dir, logs, pid file (default ${TMPDIR:-/tmp}/loopline-kafka-PORT)
#   LOOPLINE_KAFKA_READY_TIMEOUT    seconds to wait for readiness (default 90)
#   LOOPLINE_PYTHON                 python used for the readiness check (default python3)
#   JAVA_HOME                       java to use (default: java on PATH)
set -euo pipefail

KAFKA_VERSION=4.3.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/kafka-pom.xml"

PORT=${LOOPLINE_KAFKA_PORT:-9092}
if ! [[ $PORT =~ ^[0-9]{1,5}$ ]]; then
    echo "kafka.sh: error: LOOPLINE_KAFKA_PORT must be a TCP port number (got '$PORT')" >&2
    exit 1
fi
CPORT=${LOOPLINE_KAFKA_CONTROLLER_PORT:-$((10#$PORT + 1))}
KAFKA_HOME=${LOOPLINE_KAFKA_HOME:-$HOME/.cache/loopline/kafka-$KAFKA_VERSION}
LIBS="$KAFKA_HOME/libs"
STATE=${LOOPLINE_KAFKA_STATE:-${TMPDIR:-/tmp}/loopline-kafka-$PORT}
READY_TIMEOUT=${LOOPLINE_KAFKA_READY_TIMEOUT:-90}
PYTHON=${LOOPLINE_PYTHON:-python3}
BOOTSTRAP="127.0.0.1:$PORT"

PID_FILE="$STATE/kafka.pid"
PROPS="$STATE/server.properties"
LOG4J_CONF="$STATE/log4j2.properties"
TOOLS_LOG4J_CONF="$STATE/tools-log4j2.properties"
LOG_DIR="$STATE/logs"
DATA_DIR="$STATE/data"
SERVER_LOG="$LOG_DIR/server.log"
CONSOLE_LOG="$LOG_DIR/kafka.out"

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA=java
fi

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $0 start|stop|resume|status" >&2
    exit 2
}

check_java() {
    if ! command -v "$JAVA" >/dev/null 2>&1; then
        die "Java 17+ is required (java not found on PATH): install openjdk-17-jre-headless"
    fi
    local ver major
    ver=$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    major=${ver%%.*}
    [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$ver") # 1.8.0_x -> 8
    if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 17)); then
        die "Java 17+ is required (found ${ver:-unknown} at $(command -v "$JAVA")): install openjdk-17-jre-headless"
    fi
}

check_port_number() {
    local name=$1 value=$2
    if ! [[ $value =~ ^[0-9]{1,5}$ ]] || ((10#$value < 1 || 10#$value > 65535)); then
        die "$name must be a TCP port number (got '$value')"
    fi
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

# Download the jars into $LIBS unless a completion marker for the current pom is there.
fetch_jars() {
    local marker="$LIBS/.complete" want
    want=$(pom_hash)
    if [[ -f $marker && $(cat "$marker") == "$want" ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "Maven is required to fetch the Kafka $KAFKA_VERSION jars (not cached in $LIBS yet): install maven"
    mkdir -p "$KAFKA_HOME"
    # Serialise concurrent first starts (e.g. two ports at once) on the same cache.
    # fd 8 holds the lock; it is closed below so the broker does not inherit it.
    exec 8>"$KAFKA_HOME/.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 8
    fi
    if [[ -f $marker && $(cat "$marker") == "$want" ]]; then
        exec 8>&-
        return 0
    fi
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (one time) ..."
    local tmp
    tmp=$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")
    # (Maven 3.8 prints stray ANSI resets even with -q -B; strip them)
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 |
        sed -e $'s/\e\\[[0-9;]*m//g' -e '/^$/d' >&2; then
        rm -rf "$tmp"
        die "mvn failed to fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see output above)"
    fi
    compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null || {
        rm -rf "$tmp"
        die "mvn finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
    }
    echo "$want" >"$tmp/.complete"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    exec 8>&-
}

# Prints the broker pid if our broker is running; returns 1 otherwise.
running_pid() {
    [[ -f $PID_FILE ]] || return 1
    local pid
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # guard against pid reuse: must be a java running kafka.Kafka on our properties file
    local args
    if [[ -r /proc/$pid/cmdline ]]; then
        args=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    else
        args=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
    fi
    [[ $args == *kafka.Kafka*"$PROPS"* ]] || return 1
    echo "$pid"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
    cat >"$PROPS" <<EOF
# generated by scripts/kafka.sh -- single-node test broker, do not use in production
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# tests check compaction/retention: let them happen within seconds (with a small segment.ms)
log.cleaner.backoff.ms=500
log.retention.check.interval.ms=1000
EOF
    cat >"$LOG4J_CONF" <<EOF
status = warn
name = loopline-kafka
appender.server.type = File
appender.server.name = server
appender.server.fileName = $SERVER_LOG
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server
# as in Kafka's default config: request logging is very chatty
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
    # for StorageTool / TopicCommand: warnings only, on stderr
    cat >"$TOOLS_LOG4J_CONF" <<EOF
status = warn
name = loopline-kafka-tools
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
EOF
}

show_log_tail() {
    local f
    for f in "$SERVER_LOG" "$CONSOLE_LOG"; do
        if [[ -s $f ]]; then
            log "last 50 lines of $f:"
            tail -n 50 "$f" >&2
        fi
    done
}

have_confluent_kafka() {
    command -v "$PYTHON" >/dev/null 2>&1 && "$PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1
}

# One readiness probe: can an admin client list topics?
probe_ready() {
    if [[ $1 == python ]]; then
        "$PYTHON" - "$BOOTSTRAP" >/dev/null 2>&1 <<'EOF'
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=2)
EOF
    else
        timeout 30 "$JAVA" -Xmx128m -cp "$LIBS/*" -Dlog4j2.configurationFile="$TOOLS_LOG4J_CONF" \
            org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list \
            >/dev/null 2>&1
    fi
}

cmd_start() {
    local fresh=${1:-fresh}
    check_port_number LOOPLINE_KAFKA_PORT "$PORT"
    check_port_number LOOPLINE_KAFKA_CONTROLLER_PORT "$CPORT"
    [[ $PORT != "$CPORT" ]] || die "broker and controller ports must differ (both $PORT)"
    local pid
    if pid=$(running_pid); then
        log "already running (pid $pid)"
        echo "$BOOTSTRAP"
        return 0
    fi
    check_java
    fetch_jars
    local p
    for p in "$PORT" "$CPORT"; do
        if port_in_use "$p"; then
            die "port $p on 127.0.0.1 is already in use; set LOOPLINE_KAFKA_PORT / LOOPLINE_KAFKA_CONTROLLER_PORT"
        fi
    done

    if [[ $fresh == resume ]]; then
        [[ -f "$DATA_DIR/meta.properties" ]] ||
            die "nothing to resume in $DATA_DIR: use 'start' for a fresh broker"
        rm -f "$PID_FILE"
        launch
        return
    fi
    # fresh broker every time
    mkdir -p "$STATE"
    rm -rf "$DATA_DIR" "$LOG_DIR" "$PID_FILE"
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    write_config

    local cluster_id
    # URL-safe base64 of 16 random bytes; about 1 in 64 starts with '-', which is why it
    # is passed as --cluster-id=ID (as "-t ID" the parser would take it for an option).
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    if ! "$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$TOOLS_LOG4J_CONF" \
        kafka.tools.StorageTool format --standalone --cluster-id="$cluster_id" -c "$PROPS" \
        >"$LOG_DIR/format.log" 2>&1; then
        cat "$LOG_DIR/format.log" >&2
        die "formatting storage in $DATA_DIR failed"
    fi
    launch
}

launch() {
    local pid
    log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (controller 127.0.0.1:$CPORT, state in $STATE)"
    # setsid: own session, so the broker survives the caller's terminal/process group.
    # (setsid and nohup both exec, so $! is the java pid.)
    setsid nohup "$JAVA" -Xmx512m -Xms512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -cp "$LIBS/*" kafka.Kafka "$PROPS" \
        </dev/null >"$CONSOLE_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"

    local method=java
    have_confluent_kafka && method=python
    local deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log_tail
            rm -f "$PID_FILE"
            die "the broker process (pid $pid) died during startup"
        fi
        if probe_ready "$method"; then
            break
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail
            cmd_stop >/dev/null 2>&1 || true
            die "broker not ready on $BOOTSTRAP within ${READY_TIMEOUT}s (checked with $method admin client)"
        fi
        sleep 0.5
    done
    log "ready (pid $pid, logs in $LOG_DIR)"
    echo "$BOOTSTRAP"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        log "not running ($BOOTSTRAP)"
        return 0
    fi
    log "stopping broker (pid $pid) ..."
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still running after 20s, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "running (pid $pid) on $BOOTSTRAP"
        return 0
    fi
    echo "not running ($BOOTSTRAP)"
    return 3
}

[[ $# -eq 1 ]] || usage
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
resume) cmd_start resume ;;
status) cmd_status ;;
*) usage ;;
esac
