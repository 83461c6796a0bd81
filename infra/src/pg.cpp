#include "shop/infra/pg.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <pqxx/pqxx>
#include <thread>

#include "shop/events/json.h"
#include "shop/infra/log.h"

namespace shop::infra {

ConnectionPool::ConnectionPool(std::string url, std::size_t size, Setup on_connect)
    : url_(std::move(url)), on_connect_(std::move(on_connect)), size_(size == 0 ? 1 : size) {
  // A database host that stops answering must fail a request, not hang it (unless the URL or
  // the environment says otherwise).
  ::setenv("PGCONNECT_TIMEOUT", "5", 0);
}

ConnectionPool::~ConnectionPool() = default;

std::unique_ptr<pqxx::connection> ConnectionPool::connect() {
  auto c = std::make_unique<pqxx::connection>(url_);
  {
    pqxx::nontransaction tx(*c);
    tx.exec("SET TIME ZONE 'UTC'");
  }
  if (on_connect_) on_connect_(*c);
  return c;
}

ConnectionPool::Lease ConnectionPool::acquire() {
  std::unique_ptr<pqxx::connection> c;
  {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || outstanding_ < size_; });
    if (!idle_.empty()) {
      c = std::move(idle_.back());
      idle_.pop_back();
    }
    ++outstanding_;
  }
  try {
    if (!c || !c->is_open()) c = connect();
  } catch (...) {
    std::lock_guard lock(mutex_);
    --outstanding_;
    available_.notify_one();
    throw;
  }
  return Lease(*this, std::move(c));
}

void ConnectionPool::give_back(std::unique_ptr<pqxx::connection> c) {
  std::lock_guard lock(mutex_);
  --outstanding_;
  if (c && c->is_open()) idle_.push_back(std::move(c));
  available_.notify_one();
}

ConnectionPool::Lease::Lease(ConnectionPool& pool, std::unique_ptr<pqxx::connection> c)
    : pool_(&pool), conn_(std::move(c)) {}
ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), conn_(std::move(other.conn_)) {
  other.pool_ = nullptr;
}
ConnectionPool::Lease::~Lease() {
  if (pool_) pool_->give_back(std::move(conn_));
}

void wait_for_database(const std::string& database_url, int timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  for (;;) {
    try {
      pqxx::connection c(database_url);
      return;
    } catch (const std::exception& e) {
      if (std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
}

namespace {
struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Each migration runs once, in its own transaction, in order. Never edit one that has shipped:
// add the next.
const Migration kMigrations[] = {
    {1, "event store", R"SQL(
CREATE TABLE events (
  position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The appending transaction's id: readers only see events of transactions older than every
  -- transaction still running, so no reader ever passes an event that commits later.
  tx_id           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  event_id        uuid NOT NULL UNIQUE,
  stream_id       text NOT NULL,
  stream_version  bigint NOT NULL,
  type            text NOT NULL,
  schema_version  int NOT NULL,
  occurred_at     timestamptz NOT NULL,
  correlation_id  uuid NOT NULL,
  causation_id    uuid NOT NULL,
  actor           uuid,
  data            jsonb NOT NULL,
  UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_global_order ON events (tx_id, position);
CREATE INDEX events_occurred_at ON events (occurred_at);

-- One row per stream with its current version: the expected-version check and the row lock that
-- serialises writers of one stream.
CREATE TABLE streams (
  stream_id text PRIMARY KEY,
  version   bigint NOT NULL
);

-- Values that must be unique across streams (e-mail addresses, SKUs), claimed in the same
-- transaction as the events that introduce them.
CREATE TABLE unique_claims (
  scope text NOT NULL,
  value text NOT NULL,
  owner text NOT NULL,
  PRIMARY KEY (scope, value)
);

-- Secrets are not events: password hashes live beside the log, written in the same transaction.
CREATE TABLE user_credentials (
  user_id       uuid PRIMARY KEY,
  password_hash text NOT NULL
);

-- Idempotency keys, kept with the events they produced: a repeated request gets the first answer.
CREATE TABLE idempotency_keys (
  scope        text NOT NULL,
  key          text NOT NULL,
  request_hash text NOT NULL,
  status       int NOT NULL,
  response     text NOT NULL,
  position     bigint NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);

CREATE SEQUENCE order_numbers START 100001;
)SQL"},
    {2, "read models", R"SQL(
CREATE TABLE rm_checkpoints (
  name          text PRIMARY KEY,
  last_tx       xid8 NOT NULL,
  last_position bigint NOT NULL,
  max_position  bigint NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rm_categories (
  id         uuid PRIMARY KEY,
  name       text NOT NULL,
  parent_id  uuid,
  created_at timestamptz NOT NULL
);

CREATE TABLE rm_products (
  id           uuid PRIMARY KEY,
  name         text NOT NULL,
  description  text NOT NULL,
  sku          text NOT NULL,
  category_id  uuid NOT NULL,
  price        bigint NOT NULL,
  stock        bigint NOT NULL,
  discontinued boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL,
  search       tsvector GENERATED ALWAYS AS
                 (to_tsvector('simple', name || ' ' || sku || ' ' || description)) STORED
);
CREATE INDEX rm_products_price ON rm_products (price, id) WHERE NOT discontinued;
CREATE INDEX rm_products_name ON rm_products (name, id) WHERE NOT discontinued;
CREATE INDEX rm_products_created ON rm_products (created_at, id) WHERE NOT discontinued;
CREATE INDEX rm_products_category ON rm_products (category_id) WHERE NOT discontinued;
CREATE INDEX rm_products_search ON rm_products USING gin (search);

CREATE TABLE rm_users (
  id         uuid PRIMARY KEY,
  email      text NOT NULL,
  name       text NOT NULL,
  roles      text[] NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE rm_cart_items (
  user_id    uuid NOT NULL,
  product_id uuid NOT NULL,
  name       text NOT NULL,
  unit_price bigint NOT NULL,
  quantity   bigint NOT NULL,
  added_at   timestamptz NOT NULL,
  PRIMARY KEY (user_id, product_id)
);

CREATE TABLE rm_orders (
  id             uuid PRIMARY KEY,
  order_number   text NOT NULL,
  user_id        uuid NOT NULL,
  status         text NOT NULL,
  total          bigint NOT NULL,
  currency       text NOT NULL,
  items          jsonb NOT NULL,
  status_history jsonb NOT NULL,
  payment        jsonb,
  shipment       jsonb,
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL
);
CREATE INDEX rm_orders_user ON rm_orders (user_id, created_at DESC, id DESC);
CREATE INDEX rm_orders_all ON rm_orders (created_at DESC, id DESC);
)SQL"},
    {3, "one-statement append", R"SQL(
-- An append in one statement, so a command needs one round trip to the database. In order:
--  1. locks every stream written (advisory locks, in stream id order, before anything is written:
--     the transaction id is assigned at the first write, after every earlier writer of these
--     streams has committed, so each stream's events are in stream order in the global order);
--  2. checks that every stream written, and every stream the decision read without writing it,
--     is still at the version the decision was made on (a stream's version is its last event's,
--     found through the (stream_id, stream_version) index; 0 when it has none);
--  3. inserts the events and, when given, the idempotency key with the answer it stands for.
-- A version that is not the expected one raises SQLSTATE SH001; an idempotency key that is
-- already stored raises SH002. Either way nothing is written. Two writers of one stream cannot
-- both pass step 2 (the lock), and the unique index would refuse the second anyway.
CREATE FUNCTION es_append(p_streams jsonb, p_events jsonb, p_occurred_at timestamptz,
                          p_correlation_id uuid, p_causation_id uuid, p_actor uuid,
                          p_checks jsonb, p_idempotency jsonb)
RETURNS TABLE (out_position bigint, out_stream_id text)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_stream text;
  v_positions bigint[];
  v_streams text[];
BEGIN
  FOR v_stream IN SELECT x.stream_id FROM jsonb_to_recordset(p_streams) AS x(stream_id text)
                   ORDER BY x.stream_id
  LOOP
    PERFORM pg_advisory_xact_lock(1, hashtext(v_stream));
  END LOOP;

  IF EXISTS (
       SELECT 1
         FROM (SELECT x.stream_id, x.expected
                 FROM jsonb_to_recordset(p_streams) AS x(stream_id text, expected bigint)
               UNION ALL
               SELECT c.stream_id, c.expected
                 FROM jsonb_to_recordset(coalesce(p_checks, '[]')) AS c(stream_id text,
                                                                        expected bigint)) w
        WHERE coalesce((SELECT max(e.stream_version) FROM events e
                         WHERE e.stream_id = w.stream_id), 0) <> w.expected) THEN
    RAISE EXCEPTION 'stream version changed' USING ERRCODE = 'SH001';
  END IF;

  WITH ins AS (
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, occurred_at,
                        correlation_id, causation_id, actor, data)
    SELECT (e.doc->>'event_id')::uuid, e.doc->>'stream_id', (e.doc->>'stream_version')::bigint,
           e.doc->>'type', (e.doc->>'schema_version')::int, p_occurred_at, p_correlation_id,
           p_causation_id, p_actor, e.doc->'data'
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(doc, ord)
     ORDER BY e.ord
    RETURNING events.position, events.stream_id)
  SELECT array_agg(ins.position ORDER BY ins.position), array_agg(ins.stream_id ORDER BY ins.position)
    INTO v_positions, v_streams
    FROM ins;

  IF p_idempotency IS NOT NULL THEN
    INSERT INTO idempotency_keys (scope, key, request_hash, status, response, position)
    VALUES (p_idempotency->>'scope', p_idempotency->>'key', p_idempotency->>'request',
            (p_idempotency->>'status')::int, p_idempotency->>'response',
            v_positions[array_upper(v_positions, 1)])
    ON CONFLICT (scope, key) DO NOTHING;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'idempotency key already used' USING ERRCODE = 'SH002';
    END IF;
  END IF;

  RETURN QUERY SELECT * FROM unnest(v_positions, v_streams);
END
$fn$;

-- Stream versions are read from the events themselves (see es_append): the table that kept a
-- copy of them, updated by every append, is gone.
DROP TABLE streams;
)SQL"},
    {4, "relay status", R"SQL(
-- How far the outbox relay has published, per topic prefix: for status pages and lag metrics
-- only. The relay resumes from the checkpoint it commits to Kafka with every batch, not from here.
CREATE TABLE relay_status (
  name               text PRIMARY KEY,
  last_tx            xid8 NOT NULL,
  last_position      bigint NOT NULL,
  published_position bigint NOT NULL,
  updated_at         timestamptz NOT NULL
);
)SQL"},
    {5, "read models in any order across streams; Kafka offsets", R"SQL(
-- Read models that come out the same whatever the order in which the events of different
-- streams arrive (a projector reading Kafka gets each partition in order, but partitions in any
-- interleaving). A value that events of two streams can set keeps the position of the event that
-- set it, and only a later position replaces it.
--
-- The read models are rebuilt from the events: the new position columns cannot be filled from
-- what the tables hold now. The projector starts again from the first event.
TRUNCATE rm_users, rm_categories, rm_products, rm_cart_items, rm_orders;
DELETE FROM rm_checkpoints WHERE name = 'read_models';

-- A product's name and price, and the positions of the events that set them: a cart line added
-- later than the product changed takes the product's values if they are newer than its own.
ALTER TABLE rm_products ADD COLUMN name_position bigint NOT NULL DEFAULT 0,
                        ADD COLUMN price_position bigint NOT NULL DEFAULT 0;
-- A cart line's name and price come from CartItemAdded (a snapshot) or from later
-- ProductUpdated events: the one with the greater position wins.
ALTER TABLE rm_cart_items ADD COLUMN name_position bigint NOT NULL DEFAULT 0,
                          ADD COLUMN price_position bigint NOT NULL DEFAULT 0;
-- updated_at is the time of the order's or its payments' event with the greatest position.
ALTER TABLE rm_orders ADD COLUMN updated_position bigint NOT NULL DEFAULT 0;

-- Every payment attempt. A payment's events may arrive before its order's: rm_orders.payment is
-- the order's latest attempt (greatest initiated_position), copied from here both when the
-- payment changes and when the order is placed.
CREATE TABLE rm_payments (
  payment_id         uuid PRIMARY KEY,
  order_id           uuid NOT NULL,
  user_id            uuid NOT NULL,
  status             text NOT NULL,
  amount             bigint NOT NULL,
  currency           text NOT NULL,
  provider           text NOT NULL,
  initiated_position bigint NOT NULL,
  updated_position   bigint NOT NULL,
  created_at         timestamptz NOT NULL,
  updated_at         timestamptz NOT NULL
);
CREATE INDEX rm_payments_order ON rm_payments (order_id, initiated_position DESC);

-- The projector reading Kafka: per consumer group and partition, the offset of the next message
-- to apply, written in the same transaction as the read-model changes of the messages before it.
-- NULL: the partition is known, nothing of it applied yet. covered_*: a place in the event
-- store's global order (the relay's checkpoint) up to which every event of this partition is
-- applied, with the greatest position up to there; the least of them over all partitions is the
-- read models' checkpoint.
CREATE TABLE rm_kafka_offsets (
  consumer_group       text NOT NULL,
  topic                text NOT NULL,
  partition            int NOT NULL,
  next_offset          bigint,
  covered_tx           xid8 NOT NULL DEFAULT '0',
  covered_position     bigint NOT NULL DEFAULT 0,
  covered_max_position bigint NOT NULL DEFAULT 0,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);
)SQL"},
    {6, "leaner one-statement append", R"SQL(
-- es_append as in migration 3, with the version checks as one indexed lookup per stream, in the
-- loop that takes the locks (streams written) and in a loop of their own (streams only read),
-- instead of one query over both lists: the same checks, a fraction of the work per append.
CREATE OR REPLACE FUNCTION es_append(p_streams jsonb, p_events jsonb, p_occurred_at timestamptz,
                                     p_correlation_id uuid, p_causation_id uuid, p_actor uuid,
                                     p_checks jsonb, p_idempotency jsonb)
RETURNS TABLE (out_position bigint, out_stream_id text)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_stream text;
  v_expected bigint;
  v_positions bigint[];
  v_streams text[];
BEGIN
  FOR v_stream, v_expected IN
    SELECT x.stream_id, x.expected
      FROM jsonb_to_recordset(p_streams) AS x(stream_id text, expected bigint)
     ORDER BY x.stream_id
  LOOP
    PERFORM pg_advisory_xact_lock(1, hashtext(v_stream));
    IF coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = v_stream), 0)
       <> v_expected THEN
      RAISE EXCEPTION 'stream version changed' USING ERRCODE = 'SH001';
    END IF;
  END LOOP;

  IF p_checks IS NOT NULL THEN
    FOR v_stream, v_expected IN
      SELECT c.stream_id, c.expected
        FROM jsonb_to_recordset(p_checks) AS c(stream_id text, expected bigint)
    LOOP
      IF coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = v_stream), 0)
         <> v_expected THEN
        RAISE EXCEPTION 'stream version changed' USING ERRCODE = 'SH001';
      END IF;
    END LOOP;
  END IF;

  WITH ins AS (
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, occurred_at,
                        correlation_id, causation_id, actor, data)
    SELECT (e.doc->>'event_id')::uuid, e.doc->>'stream_id', (e.doc->>'stream_version')::bigint,
           e.doc->>'type', (e.doc->>'schema_version')::int, p_occurred_at, p_correlation_id,
           p_causation_id, p_actor, e.doc->'data'
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(doc, ord)
     ORDER BY e.ord
    RETURNING events.position, events.stream_id)
  SELECT array_agg(ins.position ORDER BY ins.position), array_agg(ins.stream_id ORDER BY ins.position)
    INTO v_positions, v_streams
    FROM ins;

  IF p_idempotency IS NOT NULL THEN
    INSERT INTO idempotency_keys (scope, key, request_hash, status, response, position)
    VALUES (p_idempotency->>'scope', p_idempotency->>'key', p_idempotency->>'request',
            (p_idempotency->>'status')::int, p_idempotency->>'response',
            v_positions[array_upper(v_positions, 1)])
    ON CONFLICT (scope, key) DO NOTHING;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'idempotency key already used' USING ERRCODE = 'SH002';
    END IF;
  END IF;

  RETURN QUERY SELECT * FROM unnest(v_positions, v_streams);
END
$fn$;
)SQL"},
    {7, "versioned read models", R"SQL(
-- Each version of the read models lives in a schema of its own, so that a new version can be
-- built beside the live one (which keeps serving and projecting) and replace it in one
-- transaction. The tables as they are become version 1; public keeps one view per table onto the
-- live version, so every reader that says rm_products keeps working.
CREATE SCHEMA rm_v1;
ALTER TABLE rm_users SET SCHEMA rm_v1;
ALTER TABLE rm_categories SET SCHEMA rm_v1;
ALTER TABLE rm_products SET SCHEMA rm_v1;
ALTER TABLE rm_cart_items SET SCHEMA rm_v1;
ALTER TABLE rm_orders SET SCHEMA rm_v1;
ALTER TABLE rm_payments SET SCHEMA rm_v1;
ALTER TABLE rm_checkpoints SET SCHEMA rm_v1;
ALTER TABLE rm_kafka_offsets SET SCHEMA rm_v1;

CREATE VIEW public.rm_users AS SELECT * FROM rm_v1.rm_users;
CREATE VIEW public.rm_categories AS SELECT * FROM rm_v1.rm_categories;
CREATE VIEW public.rm_products AS SELECT * FROM rm_v1.rm_products;
CREATE VIEW public.rm_cart_items AS SELECT * FROM rm_v1.rm_cart_items;
CREATE VIEW public.rm_orders AS SELECT * FROM rm_v1.rm_orders;
CREATE VIEW public.rm_payments AS SELECT * FROM rm_v1.rm_payments;
CREATE VIEW public.rm_checkpoints AS SELECT * FROM rm_v1.rm_checkpoints;
CREATE VIEW public.rm_kafka_offsets AS SELECT * FROM rm_v1.rm_kafka_offsets;

-- The projections and their versions: the live one (schema <schema_prefix><live_version>, which
-- the views show) and the one being built, if any, with the rebuild's progress for status pages.
-- state: live; requested (a rebuild was asked for over the API, no process has taken it up yet);
-- rebuilding (a new version exists beside the live one: being built, or interrupted).
CREATE TABLE projections (
  name              text PRIMARY KEY,
  schema_prefix     text NOT NULL UNIQUE,
  live_version      int NOT NULL,
  building_version  int,
  state             text NOT NULL DEFAULT 'live'
                      CHECK (state IN ('live', 'requested', 'rebuilding')),
  requested_at      timestamptz,
  -- The options of the rebuild asked for ({"verify": bool, "force": bool}) and who runs it:
  -- 'service' (a projector process, on a request over the API) or 'shopctl'.
  request           jsonb,
  runner            text,
  started_at        timestamptz,
  rebuild_position  bigint NOT NULL DEFAULT 0,
  rebuild_head      bigint NOT NULL DEFAULT 0,
  events_per_second double precision NOT NULL DEFAULT 0,
  eta_seconds       double precision,
  last_rebuild_at   timestamptz,
  last_error        text,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK ((state = 'rebuilding') = (building_version IS NOT NULL))
);
INSERT INTO projections (name, schema_prefix, live_version) VALUES ('read_models', 'rm_v', 1);

-- Empties every table of a projection's live version (its checkpoint included): the projector
-- then starts again from the first event. TRUNCATE does not take views; this replaces it (stop
-- the projectors first, as for any rebuild from scratch).
CREATE FUNCTION projection_reset(p_name text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  v_schema text;
  v_tables text;
BEGIN
  SELECT schema_prefix || live_version INTO v_schema FROM projections WHERE name = p_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no projection named %', p_name USING ERRCODE = 'SH003';
  END IF;
  SELECT string_agg(format('%I.%I', schemaname, tablename), ', ' ORDER BY tablename)
    INTO v_tables FROM pg_tables WHERE schemaname = v_schema;
  IF v_tables IS NOT NULL THEN
    EXECUTE 'TRUNCATE ' || v_tables;
  END IF;
END
$fn$;
)SQL"},
    {8, "relay status: last offset of each partition", R"SQL(
-- The offset of the last message of each partition as of the relay's checkpoint
-- ([{"topic", "partition", "offset"}, ...]): a projector reading Kafka has applied every event
-- of a partition up to the checkpoint once it has applied that offset.
ALTER TABLE relay_status ADD COLUMN last_offsets jsonb;
)SQL"},
    {9, "as-of views: payments by order, product names and prices", R"SQL(
-- The query API's as-of views fold streams from the events. An order's payments are found by the
-- order id that every payment event carries; a product's name and price changes without reading
-- its stock movements (the bulk of its stream). Both indexes hold only the events they serve.
CREATE INDEX events_payment_order ON events ((data->>'order_id'), position)
  WHERE stream_id LIKE 'payment-%';
CREATE INDEX events_product_catalog ON events (stream_id, position)
  WHERE type IN ('ProductCreated', 'ProductUpdated');
)SQL"},
    {10, "sessions: rm_sessions, the sessions of a user", R"SQL(
-- The sessions (refresh-token families) for the revocation checks of both APIs: a table of the
-- read models, made in the live version's schema (and in a version being built, if any: it is
-- built by the new code, which writes it) with its view in public, as
-- infra::create_read_model_tables makes it for later versions. The projector fills it from the
-- session events, which exist only from this version on, so it needs no replay.
DO $mig$
DECLARE
  v_schema text;
BEGIN
  FOR v_schema IN
    SELECT schema_prefix || live_version FROM projections WHERE name = 'read_models'
    UNION
    SELECT schema_prefix || building_version FROM projections
     WHERE name = 'read_models' AND building_version IS NOT NULL
  LOOP
    EXECUTE format($ddl$
CREATE TABLE IF NOT EXISTS %1$I.rm_sessions (
  id            uuid PRIMARY KEY,
  user_id       uuid NOT NULL,
  started_at    timestamptz NOT NULL,
  refreshed_at  timestamptz,
  refresh_count bigint NOT NULL DEFAULT 0,
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  revoke_reason text
);
CREATE INDEX IF NOT EXISTS rm_sessions_user ON %1$I.rm_sessions (user_id);
CREATE INDEX IF NOT EXISTS rm_sessions_revoked ON %1$I.rm_sessions (expires_at)
  WHERE revoked_at IS NOT NULL;
$ddl$, v_schema);
  END LOOP;
  EXECUTE format('CREATE VIEW public.rm_sessions AS SELECT * FROM %I.rm_sessions',
                 (SELECT schema_prefix || live_version FROM projections
                   WHERE name = 'read_models'));
END
$mig$;

-- logout-all finds a user's sessions in the event store (the write side never reads the read
-- models): the SessionStarted events by user.
CREATE INDEX events_session_user ON events ((data->>'user_id'), position)
  WHERE type = 'SessionStarted';
)SQL"},
    {11, "users: phone numbers, accounts without an e-mail", R"SQL(
-- A user may have a mobile number (a profile field, and the way in for one-time-code sign-in),
-- and an account made by one-time-code sign-in has no e-mail address. In the live version's
-- schema and in a version being built, with the view in public made again to show the column,
-- as infra::create_read_model_tables makes it for later versions (the column last).
DO $mig$
DECLARE
  v_schema text;
BEGIN
  FOR v_schema IN
    SELECT schema_prefix || live_version FROM projections WHERE name = 'read_models'
    UNION
    SELECT schema_prefix || building_version FROM projections
     WHERE name = 'read_models' AND building_version IS NOT NULL
  LOOP
    EXECUTE format($ddl$
ALTER TABLE %1$I.rm_users ALTER COLUMN email DROP NOT NULL;
ALTER TABLE %1$I.rm_users ADD COLUMN IF NOT EXISTS phone text;
$ddl$, v_schema);
  END LOOP;
  EXECUTE format('CREATE OR REPLACE VIEW public.rm_users AS SELECT * FROM %I.rm_users',
                 (SELECT schema_prefix || live_version FROM projections
                   WHERE name = 'read_models'));
END
$mig$;
)SQL"},
    {12, "users: the accounts list of admins", R"SQL(
-- GET /api/admin/users pages through the accounts in the order they were made, (created_at, id),
-- and finds one by e-mail address in any case. In the live version's schema and in a version
-- being built, as infra::create_read_model_tables makes them for later versions.
DO $mig$
DECLARE
  v_schema text;
BEGIN
  FOR v_schema IN
    SELECT schema_prefix || live_version FROM projections WHERE name = 'read_models'
    UNION
    SELECT schema_prefix || building_version FROM projections
     WHERE name = 'read_models' AND building_version IS NOT NULL
  LOOP
    EXECUTE format($ddl$
CREATE INDEX IF NOT EXISTS rm_users_created ON %1$I.rm_users (created_at, id);
CREATE INDEX IF NOT EXISTS rm_users_email ON %1$I.rm_users (lower(email));
$ddl$, v_schema);
  END LOOP;
END
$mig$;
)SQL"},
};
}  // namespace

void migrate(const std::string& database_url) {
  pqxx::connection c(database_url);
  {
    pqxx::work tx(c);
    tx.exec("SELECT pg_advisory_lock(7340912)");
    tx.commit();
  }
  try {
    {
      pqxx::work tx(c);
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT "
          "NULL, applied_at timestamptz NOT NULL DEFAULT now())");
      tx.commit();
    }
    for (const auto& m : kMigrations) {
      pqxx::work tx(c);
      auto r = tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", m.version);
      if (!r.empty()) continue;
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     m.name);
      tx.commit();
      log::info("applied migration {} ({})", m.version, m.name);
    }
  } catch (...) {
    pqxx::nontransaction tx(c);
    tx.exec("SELECT pg_advisory_unlock(7340912)");
    throw;
  }
  pqxx::nontransaction tx(c);
  tx.exec("SELECT pg_advisory_unlock(7340912)");
}

namespace {

// The read models' tables as the migrations above leave them, in the schema written @S@.
constexpr const char* kReadModelTables = R"SQL(
CREATE TABLE @S@.rm_checkpoints (
  name          text PRIMARY KEY,
  last_tx       xid8 NOT NULL,
  last_position bigint NOT NULL,
  max_position  bigint NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE @S@.rm_categories (
  id         uuid PRIMARY KEY,
  name       text NOT NULL,
  parent_id  uuid,
  created_at timestamptz NOT NULL
);

CREATE TABLE @S@.rm_products (
  id             uuid PRIMARY KEY,
  name           text NOT NULL,
  description    text NOT NULL,
  sku            text NOT NULL,
  category_id    uuid NOT NULL,
  price          bigint NOT NULL,
  stock          bigint NOT NULL,
  discontinued   boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL,
  search         tsvector GENERATED ALWAYS AS
                   (to_tsvector('simple', name || ' ' || sku || ' ' || description)) STORED,
  name_position  bigint NOT NULL DEFAULT 0,
  price_position bigint NOT NULL DEFAULT 0
);
CREATE INDEX rm_products_price ON @S@.rm_products (price, id) WHERE NOT discontinued;
CREATE INDEX rm_products_name ON @S@.rm_products (name, id) WHERE NOT discontinued;
CREATE INDEX rm_products_created ON @S@.rm_products (created_at, id) WHERE NOT discontinued;
CREATE INDEX rm_products_category ON @S@.rm_products (category_id) WHERE NOT discontinued;
CREATE INDEX rm_products_search ON @S@.rm_products USING gin (search);

CREATE TABLE @S@.rm_users (
  id         uuid PRIMARY KEY,
  email      text,
  name       text NOT NULL,
  roles      text[] NOT NULL,
  created_at timestamptz NOT NULL,
  phone      text
);
CREATE INDEX rm_users_created ON @S@.rm_users (created_at, id);
CREATE INDEX rm_users_email ON @S@.rm_users (lower(email));

CREATE TABLE @S@.rm_cart_items (
  user_id        uuid NOT NULL,
  product_id     uuid NOT NULL,
  name           text NOT NULL,
  unit_price     bigint NOT NULL,
  quantity       bigint NOT NULL,
  added_at       timestamptz NOT NULL,
  name_position  bigint NOT NULL DEFAULT 0,
  price_position bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, product_id)
);

CREATE TABLE @S@.rm_orders (
  id               uuid PRIMARY KEY,
  order_number     text NOT NULL,
  user_id          uuid NOT NULL,
  status           text NOT NULL,
  total            bigint NOT NULL,
  currency         text NOT NULL,
  items            jsonb NOT NULL,
  status_history   jsonb NOT NULL,
  payment          jsonb,
  shipment         jsonb,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  updated_position bigint NOT NULL DEFAULT 0
);
CREATE INDEX rm_orders_user ON @S@.rm_orders (user_id, created_at DESC, id DESC);
CREATE INDEX rm_orders_all ON @S@.rm_orders (created_at DESC, id DESC);

CREATE TABLE @S@.rm_payments (
  payment_id         uuid PRIMARY KEY,
  order_id           uuid NOT NULL,
  user_id            uuid NOT NULL,
  status             text NOT NULL,
  amount             bigint NOT NULL,
  currency           text NOT NULL,
  provider           text NOT NULL,
  initiated_position bigint NOT NULL,
  updated_position   bigint NOT NULL,
  created_at         timestamptz NOT NULL,
  updated_at         timestamptz NOT NULL
);
CREATE INDEX rm_payments_order ON @S@.rm_payments (order_id, initiated_position DESC);

CREATE TABLE @S@.rm_sessions (
  id            uuid PRIMARY KEY,
  user_id       uuid NOT NULL,
  started_at    timestamptz NOT NULL,
  refreshed_at  timestamptz,
  refresh_count bigint NOT NULL DEFAULT 0,
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  revoke_reason text
);
CREATE INDEX rm_sessions_user ON @S@.rm_sessions (user_id);
CREATE INDEX rm_sessions_revoked ON @S@.rm_sessions (expires_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE @S@.rm_kafka_offsets (
  consumer_group       text NOT NULL,
  topic                text NOT NULL,
  partition            int NOT NULL,
  next_offset          bigint,
  covered_tx           xid8 NOT NULL DEFAULT '0',
  covered_position     bigint NOT NULL DEFAULT 0,
  covered_max_position bigint NOT NULL DEFAULT 0,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);
)SQL";

std::string utc_text(const std::string& column) {
  return "to_char(" + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

std::optional<std::string> opt_text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return std::string(f.c_str(), f.size());
}

}  // namespace

const std::vector<std::string>& read_model_tables() {
  static const std::vector<std::string> tables = {
      "rm_users",    "rm_categories", "rm_products",    "rm_cart_items",   "rm_orders",
      "rm_payments", "rm_sessions",   "rm_checkpoints", "rm_kafka_offsets"};
  return tables;
}

void create_read_model_tables(pqxx::transaction_base& tx, const std::string& schema) {
  const std::string quoted = tx.quote_name(schema);
  std::string sql = kReadModelTables;
  for (std::size_t at = sql.find("@S@"); at != std::string::npos; at = sql.find("@S@", at)) {
    sql.replace(at, 3, quoted);
    at += quoted.size();
  }
  tx.exec("CREATE SCHEMA IF NOT EXISTS " + quoted);
  tx.exec(sql);
}

bool projected_from_kafka(pqxx::transaction_base& tx, const std::string& schema) {
  const auto table = tx.exec_params("SELECT to_regclass($1) IS NOT NULL",
                                    tx.quote_name(schema) + ".rm_kafka_offsets");
  return table[0][0].as<bool>() &&
         !tx.exec("SELECT 1 FROM " + tx.quote_name(schema) + ".rm_kafka_offsets LIMIT 1").empty();
}

std::vector<ProjectionStatus> projection_status(pqxx::transaction_base& tx) {
  // Whether a process holds the projection's rebuild lock (projector/src/rebuild.cpp).
  const auto rows = tx.exec(
      "SELECT p.name, p.schema_prefix || p.live_version, p.live_version, p.building_version, "
      "       p.state, p.rebuild_position, p.rebuild_head, p.events_per_second, p.eta_seconds, " +
      utc_text("p.requested_at") + ", " + utc_text("p.started_at") + ", " +
      utc_text("p.last_rebuild_at") + ", p.last_error, " + utc_text("p.updated_at") +
      ", EXISTS (SELECT 1 FROM pg_locks l"
      "           WHERE l.locktype = 'advisory' AND l.granted AND l.classid = " +
      std::to_string(kRebuildLockClass) +
      "             AND l.objid = hashtext(p.name)::oid AND l.objsubid = 2"
      "             AND l.database = (SELECT oid FROM pg_database"
      "                                WHERE datname = current_database()))"
      "  FROM projections p ORDER BY p.name");
  std::vector<ProjectionStatus> out;
  for (const auto& r : rows) {
    ProjectionStatus s;
    s.name = r[0].c_str();
    s.live_schema = r[1].c_str();
    s.live_version = r[2].as<int>();
    if (!r[3].is_null()) s.building_version = r[3].as<int>();
    s.state = r[4].c_str();
    s.rebuild_position = r[5].as<std::int64_t>();
    s.rebuild_head = r[6].as<std::int64_t>();
    s.rebuild_events_per_second = r[7].as<double>();
    if (!r[8].is_null()) s.rebuild_eta_seconds = r[8].as<double>();
    s.requested_at = opt_text(r[9]);
    s.rebuild_started_at = opt_text(r[10]);
    s.last_rebuild_at = opt_text(r[11]);
    s.last_error = opt_text(r[12]);
    s.updated_at = r[13].c_str();
    s.rebuild_running = r[14].as<bool>();
    if (s.rebuild_head > 0) {
      s.rebuild_percent = std::min(100.0, 100.0 * static_cast<double>(s.rebuild_position) /
                                              static_cast<double>(s.rebuild_head));
    }
    // The live version's place, and what the store holds beyond it: the events after the
    // checkpoint in the global order, and the age of the first of them.
    const std::string schema = tx.quote_name(s.live_schema);
    const auto live = tx.exec_params(
        "SELECT c.max_position,"
        "       (SELECT count(*) FROM events e"
        "         WHERE c.last_tx IS NULL"
        "            OR (e.tx_id >= c.last_tx AND (e.tx_id > c.last_tx"
        "                                          OR e.position > c.last_position))),"
        "       (SELECT greatest(0, extract(epoch FROM now() - e.occurred_at))::float8"
        "          FROM events e"
        "         WHERE c.last_tx IS NULL"
        "            OR (e.tx_id >= c.last_tx AND (e.tx_id > c.last_tx"
        "                                          OR e.position > c.last_position))"
        "         ORDER BY e.tx_id, e.position LIMIT 1)"
        "  FROM (SELECT 1) one LEFT JOIN " +
            schema + ".rm_checkpoints c ON c.name = $1",
        s.name);
    if (!live.empty()) {
      const auto& l = live[0];
      s.position = l[0].is_null() ? 0 : l[0].as<std::int64_t>();
      s.lag_events = l[1].as<std::int64_t>();
      s.lag_seconds = l[2].is_null() ? 0 : l[2].as<double>();
    }
    s.kafka = projected_from_kafka(tx, s.live_schema);
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

void write_status(json::Writer& w, const ProjectionStatus& p) {
  auto text = [&](const char* key, const std::optional<std::string>& v) {
    w.Key(key);
    if (v) {
      w.String(*v);
    } else {
      w.Null();
    }
  };
  w.StartObject();
  w.Key("name");
  w.String(p.name);
  w.Key("live_version");
  w.Int(p.live_version);
  w.Key("state");
  w.String(p.state);
  w.Key("source");
  w.String(p.kafka ? "kafka" : "store");
  w.Key("position");
  w.Int64(p.position);
  w.Key("lag_events");
  w.Int64(p.lag_events);
  w.Key("lag_seconds");
  w.Double(p.lag_seconds);
  w.Key("rebuild");
  if (p.building_version) {
    w.StartObject();
    w.Key("version");
    w.Int(*p.building_version);
    w.Key("running");
    w.Bool(p.rebuild_running);
    w.Key("position");
    w.Int64(p.rebuild_position);
    w.Key("head");
    w.Int64(p.rebuild_head);
    w.Key("percent");
    w.Double(p.rebuild_percent);
    w.Key("events_per_second");
    w.Double(p.rebuild_events_per_second);
    w.Key("eta_seconds");
    if (p.rebuild_eta_seconds) {
      w.Double(*p.rebuild_eta_seconds);
    } else {
      w.Null();
    }
    text("started_at", p.rebuild_started_at);
    w.EndObject();
  } else {
    w.Null();
  }
  text("requested_at", p.requested_at);
  text("last_rebuild_at", p.last_rebuild_at);
  text("last_error", p.last_error);
  w.Key("updated_at");
  w.String(p.updated_at);
  w.EndObject();
}

}  // namespace

std::string projection_status_json(const ProjectionStatus& projection) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  write_status(w, projection);
  return {buf.GetString(), buf.GetSize()};
}

std::string projection_status_json(const std::vector<ProjectionStatus>& projections) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& p : projections) write_status(w, p);
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

RebuildRequest request_rebuild(pqxx::transaction_base& tx, const std::string& name, bool verify,
                               bool force) {
  const auto row = tx.exec_params(
      "SELECT schema_prefix || live_version, state,"
      "       EXISTS (SELECT 1 FROM pg_locks l"
      "                WHERE l.locktype = 'advisory' AND l.granted AND l.classid = " +
          std::to_string(kRebuildLockClass) +
          "                  AND l.objid = hashtext(name)::oid AND l.objsubid = 2"
          "                  AND l.database = (SELECT oid FROM pg_database"
          "                                     WHERE datname = current_database()))"
          "  FROM projections WHERE name = $1 FOR UPDATE",
      name);
  if (row.empty()) return RebuildRequest::unknown;
  const std::string live_schema = row[0][0].c_str();
  const std::string state = row[0][1].c_str();
  if (state == "requested" || (state == "rebuilding" && row[0][2].as<bool>())) {
    return RebuildRequest::running;
  }
  if (projected_from_kafka(tx, live_schema)) return RebuildRequest::kafka;
  // An interrupted rebuild (a new version exists, nobody builds it) is taken up where it stopped.
  tx.exec_params(
      "UPDATE projections SET state = CASE WHEN state = 'rebuilding' THEN state ELSE 'requested' "
      "END, requested_at = now(), request = jsonb_build_object('verify', $2::boolean, 'force', "
      "$3::boolean), runner = 'service', last_error = NULL, updated_at = now() WHERE name = $1",
      name, verify, force);
  return RebuildRequest::accepted;
}

}  // namespace shop::infra
