#!/usr/bin/env bash
# Runs once, on an empty data directory (in deploy/postgres or the official postgres image):
# the three roles golive uses and its database. The owner runs `golive db upgrade`, which grants
# the runtime role exactly what `golive serve` needs (INSERT/SELECT only on the audit log) and
# the door role the inbox's INSERT, which the runtime role does not have.
# No `set -u` or `exit`: the official image sources this file.
: "${GOLIVE_OWNER_PASSWORD:?GOLIVE_OWNER_PASSWORD is not set}"
: "${GOLIVE_RUNTIME_PASSWORD:?GOLIVE_RUNTIME_PASSWORD is not set}"
: "${GOLIVE_DOOR_PASSWORD:?GOLIVE_DOOR_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  --set owner="${GOLIVE_OWNER_ROLE:-golive_owner}" \
  --set runtime="${GOLIVE_RUNTIME_ROLE:-golive_runtime}" \
  --set door="${GOLIVE_DOOR_ROLE:-golive_door}" \
  --set db="${GOLIVE_DB:-golive}" \
  --set owner_pw="$GOLIVE_OWNER_PASSWORD" --set runtime_pw="$GOLIVE_RUNTIME_PASSWORD" \
  --set door_pw="$GOLIVE_DOOR_PASSWORD" \
  >/dev/null <<'SQL'
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_pw';
CREATE ROLE :"runtime" LOGIN PASSWORD :'runtime_pw';
CREATE ROLE :"door" LOGIN PASSWORD :'door_pw';
CREATE DATABASE :"db" OWNER :"owner";
SQL
echo "golive: roles ${GOLIVE_OWNER_ROLE:-golive_owner}, ${GOLIVE_RUNTIME_ROLE:-golive_runtime}, ${GOLIVE_DOOR_ROLE:-golive_door} and database ${GOLIVE_DB:-golive} created"
