#include "shop/infra/event_store.h"

#include <pqxx/pqxx>

namespace shop::infra {

const char* const kEventColumns =
    "position, event_id::text, stream_id, stream_version, type, schema_version, "
    "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "correlation_id::text, causation_id::text, actor::text, data::text";

RecordedEvent event_from_row(const pqxx::row& row) {
  RecordedEvent e;
  e.position = row[0].as<std::int64_t>();
  e.event_id = row[1].c_str();
  e.stream_id = row[2].c_str();
  e.stream_version = row[3].as<std::int64_t>();
  e.type = row[4].c_str();
  e.schema_version = row[5].as<int>();
  e.occurred_at = row[6].c_str();
  e.correlation_id = row[7].c_str();
  e.causation_id = row[8].c_str();
  if (!row[9].is_null()) e.actor = row[9].c_str();
  e.data = row[10].c_str();
  return e;
}

void prepare_event_store(pqxx::connection& c) {
  // Streams lock in their own advisory-lock space (two-key form, class 1).
  c.prepare("es_lock_stream", "SELECT pg_advisory_xact_lock(1, hashtext($1))");
  c.prepare("es_stream_version",
            "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1");
  c.prepare("es_read_stream", std::string("SELECT ") + kEventColumns +
                                  " FROM events WHERE stream_id = $1 AND stream_version > $2"
                                  " ORDER BY stream_version");
  c.prepare("es_append",
            "SELECT out_position, out_stream_id FROM es_append($1::jsonb, $2::jsonb, "
            "$3::timestamptz, $4::uuid, $5::uuid, NULLIF($6, '')::uuid, $7::jsonb, $8::jsonb)");
  // A concurrent claim of the same value waits for the first to commit or roll back; then this
  // one either does nothing (taken) or inserts.
  c.prepare("es_claim",
            "INSERT INTO unique_claims (scope, value, owner) VALUES ($1, $2, $3) "
            "ON CONFLICT (scope, value) DO NOTHING RETURNING owner");
  c.prepare("es_release", "DELETE FROM unique_claims WHERE scope = $1 AND value = $2 AND owner = $3");
  c.prepare("es_owner", "SELECT owner FROM unique_claims WHERE scope = $1 AND value = $2");
}

struct StoreSession::Impl {
  explicit Impl(ConnectionPool::Lease l) : lease(std::move(l)), work(*lease) {}
  ConnectionPool::Lease lease;
  pqxx::work work;
};

StoreSession::StoreSession(ConnectionPool::Lease lease)
    : impl_(std::make_unique<Impl>(std::move(lease))) {}
StoreSession::~StoreSession() = default;

pqxx::dbtransaction& StoreSession::tx() { return impl_->work; }
void StoreSession::commit() { impl_->work.commit(); }

void StoreSession::lock_stream(const std::string& stream_id) {
  impl_->work.exec_prepared("es_lock_stream", stream_id);
}

std::int64_t StoreSession::stream_version(const std::string& stream_id) {
  auto r = impl_->work.exec_prepared("es_stream_version", stream_id);
  return r.empty() ? 0 : r[0][0].as<std::int64_t>();
}

std::vector<RecordedEvent> StoreSession::read_stream(const std::string& stream_id,
                                                     std::int64_t after_version) {
  auto r = impl_->work.exec_prepared("es_read_stream", stream_id, after_version);
  std::vector<RecordedEvent> out;
  out.reserve(r.size());
  for (const auto& row : r) out.push_back(event_from_row(row));
  return out;
}

void StoreSession::claim_unique(const std::string& scope, const std::string& value,
                                const std::string& owner) {
  auto r = impl_->work.exec_prepared("es_claim", scope, value, owner);
  if (r.empty()) throw UniqueClaimTaken(scope, value);
}

void StoreSession::release_unique(const std::string& scope, const std::string& value,
                                  const std::string& owner) {
  impl_->work.exec_prepared("es_release", scope, value, owner);
}

std::optional<std::string> StoreSession::unique_owner(const std::string& scope,
                                                      const std::string& value) {
  auto r = impl_->work.exec_prepared("es_owner", scope, value);
  if (r.empty()) return std::nullopt;
  return std::string(r[0][0].c_str());
}

namespace {

// Runs the one-statement append (migration 3's es_append) in `tx`.
AppendResult append_in(pqxx::transaction_base& tx, const std::vector<StreamAppend>& streams,
                       const Metadata& meta, const std::vector<StreamCheck>& checks,
                       const std::optional<IdempotencyRecord>& idempotency) {
  AppendResult result;
  rapidjson::StringBuffer sbuf, ebuf;
  json::Writer sw(sbuf), ew(ebuf);
  sw.StartArray();
  ew.StartArray();
  std::size_t stream_count = 0;
  for (const auto& s : streams) {
    if (s.events.empty()) continue;
    ++stream_count;
    const std::int64_t version = s.expected_version + static_cast<std::int64_t>(s.events.size());
    sw.StartObject();
    sw.Key("stream_id");
    sw.String(s.stream_id);
    sw.Key("expected");
    sw.Int64(s.expected_version);
    sw.Key("version");
    sw.Int64(version);
    sw.EndObject();
    std::int64_t v = s.expected_version;
    for (const auto& e : s.events) {
      ew.StartObject();
      ew.Key("event_id");
      ew.String(e.event_id);
      ew.Key("stream_id");
      ew.String(s.stream_id);
      ew.Key("stream_version");
      ew.Int64(++v);
      ew.Key("type");
      ew.String(e.type);
      ew.Key("schema_version");
      ew.Int(e.schema_version);
      ew.Key("data");
      ew.RawValue(e.data.data(), e.data.size(), rapidjson::kObjectType);
      ew.EndObject();
    }
    result.versions[s.stream_id] = version;
  }
  sw.EndArray();
  ew.EndArray();
  if (stream_count == 0) return result;

  std::optional<std::string> checks_json;
  if (!checks.empty()) {
    rapidjson::StringBuffer buf;
    json::Writer w(buf);
    w.StartArray();
    for (const auto& c : checks) {
      w.StartObject();
      w.Key("stream_id");
      w.String(c.stream_id);
      w.Key("expected");
      w.Int64(c.expected_version);
      w.EndObject();
    }
    w.EndArray();
    checks_json.emplace(buf.GetString(), buf.GetSize());
  }
  std::optional<std::string> idempotency_json;
  if (idempotency) {
    rapidjson::StringBuffer buf;
    json::Writer w(buf);
    w.StartObject();
    w.Key("scope");
    w.String(idempotency->scope);
    w.Key("key");
    w.String(idempotency->key);
    w.Key("request");
    w.String(idempotency->request);
    w.Key("status");
    w.Int(idempotency->status);
    w.Key("response");
    w.String(idempotency->response);
    w.EndObject();
    idempotency_json.emplace(buf.GetString(), buf.GetSize());
  }
  try {
    auto positions = tx.exec_prepared(
        "es_append", std::string(sbuf.GetString(), sbuf.GetSize()),
        std::string(ebuf.GetString(), ebuf.GetSize()), meta.occurred_at, meta.correlation_id,
        meta.causation_id, meta.actor.value_or(""), checks_json, idempotency_json);
    for (const auto& row : positions) {
      const auto position = row[0].as<std::int64_t>();
      result.last_position = std::max(result.last_position, position);
      auto& last = result.positions[row[1].c_str()];
      last = std::max(last, position);
    }
  } catch (const pqxx::unique_violation&) {
    // Two writers created the same new stream at once: the loser sees the unique index.
    throw ConcurrencyConflict("stream version changed");
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "SH001") throw ConcurrencyConflict("stream version changed");
    if (e.sqlstate() == "SH002") throw IdempotencyKeyUsed("idempotency key already used");
    throw;
  }
  return result;
}

}  // namespace

AppendResult StoreSession::append(const std::vector<StreamAppend>& streams, const Metadata& meta,
                                  const std::vector<StreamCheck>& checks,
                                  const std::optional<IdempotencyRecord>& idempotency) {
  return append_in(impl_->work, streams, meta, checks, idempotency);
}

AppendResult EventStore::append(const std::vector<StreamAppend>& streams, const Metadata& meta,
                                const std::vector<StreamCheck>& checks,
                                const std::optional<IdempotencyRecord>& idempotency) {
  auto lease = pool_.acquire();
  pqxx::nontransaction tx(*lease);
  return append_in(tx, streams, meta, checks, idempotency);
}

std::vector<RecordedEvent> EventStore::read_stream(const std::string& stream_id,
                                                   std::int64_t after_version) {
  auto lease = pool_.acquire();
  pqxx::nontransaction tx(*lease);
  auto r = tx.exec_prepared("es_read_stream", stream_id, after_version);
  std::vector<RecordedEvent> out;
  out.reserve(r.size());
  for (const auto& row : r) out.push_back(event_from_row(row));
  return out;
}

GlobalBatch read_global(pqxx::transaction_base& tx, const GlobalCheckpoint& from, int limit) {
  // Two statements, so two snapshots (READ COMMITTED): the horizon comes from the first, and the
  // rows from the second, taken later. Every transaction below the horizon had ended before the
  // first snapshot, so the second sees all of its events; nothing below the horizon can still
  // appear afterwards.
  static const std::string horizon_sql = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text";
  //
  // The order is by the xid8 column itself. The text copy of it in the select list carries its
  // own name: a bare "tx_id" in ORDER BY would name that output column (PostgreSQL resolves
  // ORDER BY names against the output first) and sort as text, where "1000" < "999".
  static const std::string sql = std::string("SELECT ") + kEventColumns + R"SQL(,
       e.tx_id::text AS tx_id_text
  FROM events e
 WHERE e.tx_id >= $1::xid8 AND e.tx_id < $4::xid8
   AND (e.tx_id > $1::xid8 OR e.position > $2)
 ORDER BY e.tx_id, e.position
 LIMIT $3)SQL";
  const std::string horizon = tx.exec(horizon_sql)[0][0].c_str();
  auto r = tx.exec_params(sql, from.tx, from.position, limit, horizon);
  GlobalBatch batch;
  batch.next = from;
  batch.events.reserve(r.size());
  for (const auto& row : r) {
    batch.events.push_back(event_from_row(row));
    batch.next.tx = row[11].c_str();
    batch.next.position = batch.events.back().position;
  }
  return batch;
}

}  // namespace shop::infra
