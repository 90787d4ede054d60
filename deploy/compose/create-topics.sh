#!/bin/sh
# Creates every topic the platform uses (libs/common/topics.py: MAIN_TOPICS, and each one's .dlq)
# with its partition count. Run by the kafka-topics service of deploy/compose.yaml; against another
# cluster, run it from any host with Kafka's CLI:
#   BOOTSTRAP=kafka-1:9092 REPLICATION_FACTOR=3 MIN_INSYNC_REPLICAS=2 sh create-topics.sh
# Retention is explicit, 7 days (RETENTION_HOURS), whatever the cluster's default: how long a
# customer's events stay readable on the broker after an erasure (README, "What the broker keeps"),
# and as long as each service's outbox keeps published events to re-publish.
# An existing topic is left as it is; raising a partition count is deploy/README.md, "Topics".
# tests/unit/test_deploy_manifests.py checks these lines against libs/common/topics.py.
set -eu
: "${BOOTSTRAP:?set BOOTSTRAP, e.g. kafka-1:9092}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-3}"
MIN_INSYNC_REPLICAS="${MIN_INSYNC_REPLICAS:-2}"
RETENTION_HOURS="${RETENTION_HOURS:-168}"
TOPICS_CLI="${TOPICS_CLI:-/opt/kafka/bin/kafka-topics.sh}"
# For SSL/SASL listeners: a client properties file (security.protocol, sasl.*, ssl.truststore.*).
CONFIG_ARGS=""
if [ -n "${COMMAND_CONFIG:-}" ]; then CONFIG_ARGS="--command-config ${COMMAND_CONFIG}"; fi

create() {
    # shellcheck disable=SC2086
    "$TOPICS_CLI" --bootstrap-server "$BOOTSTRAP" $CONFIG_ARGS --create --if-not-exists \
        --topic "$1" --partitions "$2" --replication-factor "$REPLICATION_FACTOR" \
        --config "min.insync.replicas=$MIN_INSYNC_REPLICAS" \
        --config "retention.ms=$((RETENTION_HOURS * 3600000))"
}

create nps.purchases 6
create nps.tickets 6
create nps.customers 6
create nps.survey-requests 6
create nps.survey-events 6
create nps.scores 3
create nps.followups 3
create nps.purchases-recorded 6
create nps.erasures 3
# One partition: tenant and API key changes stay in the order they were made.
create nps.tenants 1

create nps.purchases.dlq 1
create nps.tickets.dlq 1
create nps.customers.dlq 1
create nps.survey-requests.dlq 1
create nps.survey-events.dlq 1
create nps.scores.dlq 1
create nps.followups.dlq 1
create nps.purchases-recorded.dlq 1
create nps.erasures.dlq 1
create nps.tenants.dlq 1

echo "topics ready"
