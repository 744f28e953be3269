#!/usr/bin/env bash
# Real Kafka (single-node KRaft) and Elasticsearch on loopback, for development and the
# integration tests: `services.sh up | down | status`.
#
# Pinned versions from Maven Central, downloaded once into a cache outside the work tree
# ($SOC_SERVICES_CACHE, default ~/.cache/soc-services), so a second run and CI on the same machine
# start in seconds. Idempotent: `up` leaves running services alone and waits for readiness;
# `down` stops them and waits for them to exit. Elasticsearch refuses to run as root, so it runs
# as a dedicated unprivileged user (created when missing).
set -euo pipefail

KAFKA_VERSION=3.9.1          # keeps every old protocol version; aiokafka 0.14 speaks them
ES_VERSION=9.2.0             # the 9.x client (elasticsearch-py 9) needs a 9.x server
SLF4J_VERSION=1.7.36         # Kafka 3.x ships no logging backend in its pom

CACHE=${SOC_SERVICES_CACHE:-$HOME/.cache/soc-services}
RUN=${SOC_SERVICES_RUN:-/tmp/soc-services}
ES_USER=${SOC_ES_USER:-socsvc}
KAFKA_PORT=${SOC_KAFKA_PORT:-9092}
ES_PORT=${SOC_ES_PORT:-9200}
ES_HEAP=${SOC_ES_HEAP:-1g}
JAVA17=${SOC_JAVA17:-$(ls -d /usr/lib/jvm/java-17-openjdk-* 2>/dev/null | head -n1)}
JAVA_ES=${SOC_JAVA_ES:-$(ls -d /usr/lib/jvm/temurin-25-jdk-* /usr/lib/jvm/temurin-2[1-9]-jdk-* 2>/dev/null | head -n1)}

log() { printf '%s services: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fetch_kafka() {
  local dir="$CACHE/kafka-$KAFKA_VERSION"
  [ -f "$dir/.complete" ] && return
  log "fetching Kafka $KAFKA_VERSION from Maven Central into $dir"
  mkdir -p "$dir/pom"
  cat > "$dir/pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>soc.local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
<dependencies>
<dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>$SLF4J_VERSION</version></dependency>
</dependencies></project>
POM
  (cd "$dir/pom" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dir/libs") || die "Maven could not fetch Kafka"
  touch "$dir/.complete"
}

fetch_es() {
  local dir="$CACHE/elasticsearch-$ES_VERSION"
  [ -f "$dir/.complete" ] && return
  log "fetching Elasticsearch $ES_VERSION (integ-test-zip) from Maven Central into $dir"
  local artifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"
  mvn -q -B dependency:copy -Dartifact="$artifact" -DoutputDirectory="$CACHE/zips" \
    || die "Maven could not fetch $artifact"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  unzip -q "$CACHE/zips/elasticsearch-$ES_VERSION.zip" -d "$dir.tmp"
  rm -rf "$dir" && mv "$dir.tmp/elasticsearch-$ES_VERSION" "$dir" && rm -rf "$dir.tmp"
  touch "$dir/.complete"
}

kafka_up() {
  if port_open "$KAFKA_PORT"; then log "Kafka already listening on $KAFKA_PORT"; return; fi
  fetch_kafka
  [ -n "$JAVA17" ] || die "no Java 17 found under /usr/lib/jvm (set SOC_JAVA17)"
  local home="$RUN/kafka"
  mkdir -p "$home/data"
  cat > "$home/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((KAFKA_PORT + 1))
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$((KAFKA_PORT + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$home/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# As in deploy/compose: the platform creates its topics with their partitions, and a client
# still running must not bring back a topic a test or benchmark deleted.
auto.create.topics.enable=false
log.retention.hours=24
PROPS
  printf 'log4j.rootLogger=WARN, file\nlog4j.appender.file=org.apache.log4j.FileAppender\nlog4j.appender.file.File=%s/kafka.log\nlog4j.appender.file.layout=org.apache.log4j.PatternLayout\nlog4j.appender.file.layout.ConversionPattern=%%d %%p %%c: %%m%%n\n' "$home" > "$home/log4j.properties"
  local cp="$CACHE/kafka-$KAFKA_VERSION/libs/*"
  if [ ! -f "$home/data/meta.properties" ]; then
    local id
    id=$("$JAVA17/bin/java" -cp "$cp" kafka.tools.StorageTool random-uuid)
    "$JAVA17/bin/java" -cp "$cp" kafka.tools.StorageTool format -t "$id" \
      -c "$home/server.properties" > "$home/format.log" 2>&1 || die "formatting Kafka storage failed"
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  nohup "$JAVA17/bin/java" -Xms256m -Xmx512m -Dlog4j.configuration="file:$home/log4j.properties" \
    -cp "$cp" kafka.Kafka "$home/server.properties" > "$home/stdout.log" 2>&1 &
  echo $! > "$home/pid"
}

es_user() {
  id "$ES_USER" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ]; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
  else
    die "user $ES_USER does not exist (create it, or run as root once)"
  fi
}

es_up() {
  if port_open "$ES_PORT"; then log "Elasticsearch already listening on $ES_PORT"; return; fi
  fetch_es
  [ -n "$JAVA_ES" ] || die "no Java 21+ found under /usr/lib/jvm (set SOC_JAVA_ES)"
  local home="$RUN/elasticsearch" dist="$CACHE/elasticsearch-$ES_VERSION"
  # The keystore is made once here, not by the node as it starts: a node without one writes it
  # beside its config through a temporary file, and that write failed in CI on a restart
  # (NoSuchFileException on elasticsearch.keystore.tmp), leaving Elasticsearch down.
  if [ ! -f "$dist/config/elasticsearch.keystore" ]; then
    ES_JAVA_HOME="$JAVA_ES" "$dist/bin/elasticsearch-keystore" create >/dev/null \
      || die "could not create the Elasticsearch keystore in $dist/config"
  fi
  rm -rf "$home/dist" && mkdir -p "$home/data" "$home/logs"
  cp -r "$dist" "$home/dist"
  cat > "$home/dist/config/elasticsearch.yml" <<YML
cluster.name: soc-local
node.name: soc-local-1
path.data: $home/data
path.logs: $home/logs
network.host: 127.0.0.1
http.port: $ES_PORT
transport.port: $((ES_PORT + 100))
discovery.type: single-node
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
YML
  local runner=()
  if [ "$(id -u)" = 0 ]; then
    es_user
    chown -R "$ES_USER" "$home"
    chmod 755 "$RUN"
    runner=(runuser -u "$ES_USER" --)
  fi
  log "starting Elasticsearch $ES_VERSION on 127.0.0.1:$ES_PORT (as ${ES_USER})"
  "${runner[@]}" env ES_JAVA_HOME="$JAVA_ES" ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
    "$home/dist/bin/elasticsearch" -d -p "$home/pid" > "$home/stdout.log" 2>&1 \
    || { cat "$home/stdout.log" >&2; die "Elasticsearch did not start"; }
}

wait_ready() {
  local deadline=$((SECONDS + ${SOC_SERVICES_TIMEOUT:-180}))
  until [ "$which" = es ] || port_open "$KAFKA_PORT"; do
    [ $SECONDS -lt $deadline ] || die "Kafka not listening after ${SOC_SERVICES_TIMEOUT:-180}s; see $RUN/kafka/stdout.log"
    sleep 0.5
  done
  until [ "$which" = kafka ] || curl -fsS "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "Elasticsearch not ready; see $RUN/elasticsearch/logs"
    sleep 1
  done
  log "ready: kafka://127.0.0.1:$KAFKA_PORT http://127.0.0.1:$ES_PORT"
}

stop_pidfile() {
  local file=$1 name=$2
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# `up` / `down` act on both services, or on the one named after them (kafka | es).
which=${2:-all}
case "${1:-}" in
  up)
    mkdir -p "$CACHE" "$RUN"
    [ "$which" = es ] || kafka_up
    [ "$which" = kafka ] || es_up
    wait_ready ;;
  down)
    [ "$which" = es ] || stop_pidfile "$RUN/kafka/pid" Kafka
    [ "$which" = kafka ] || stop_pidfile "$RUN/elasticsearch/pid" Elasticsearch ;;
  status)
    port_open "$KAFKA_PORT" && echo "kafka: up (127.0.0.1:$KAFKA_PORT)" || echo "kafka: down"
    port_open "$ES_PORT" && echo "elasticsearch: up (127.0.0.1:$ES_PORT)" || echo "elasticsearch: down" ;;
  *) echo "usage: $0 up|down|status [kafka|es]" >&2; exit 2 ;;
esac
