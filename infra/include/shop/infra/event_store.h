// The PostgreSQL event store: per-stream expected versions, atomic appends across several
// streams, unique claims, and a global-order reader that never skips and never stalls.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "shop/events/events.h"
#include "shop/infra/pg.h"

#include <pqxx/row>
#include <pqxx/dbtransaction>
#include <pqxx/transaction_base>

namespace shop::infra {

using events::RecordedEvent;

// Stream versions start at 1; an expected version of 0 means "the stream must not exist yet".
inline constexpr std::int64_t kNoStream = 0;

// Another writer changed a stream since it was read. A normal outcome: reload and decide again.
struct ConcurrencyConflict : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A unique value (an e-mail, a SKU) is already claimed by someone else.
struct UniqueClaimTaken : std::runtime_error {
  UniqueClaimTaken(std::string s, std::string v)
      : std::runtime_error(s + " already taken"), scope(std::move(s)), value(std::move(v)) {}
  std::string scope, value;
};

// The idempotency key given with an append was stored by an earlier append: nothing was written.
struct IdempotencyKeyUsed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct PendingEvent {
  std::string event_id;
  std::string type;
  int schema_version = 1;
  std::string data;  // JSON
};

struct StreamAppend {
  std::string stream_id;
  std::int64_t expected_version = kNoStream;
  std::vector<PendingEvent> events;
};

// A stream the command read but does not write: its version must still be the one it read.
struct StreamCheck {
  std::string stream_id;
  std::int64_t expected_version = kNoStream;
};

// An idempotency key stored by the append, with the answer it stands for; a second append with
// the same scope and key fails with IdempotencyKeyUsed.
struct IdempotencyRecord {
  std::string scope;
  std::string key;
  std::string request;   // what the key was used for, e.g. "POST /api/orders"
  int status = 0;        // the HTTP status of the answer
  std::string response;  // the answer (JSON)
};

struct Metadata {
  std::string correlation_id;
  std::string causation_id;
  std::optional<std::string> actor;
  std::string occurred_at;  // RFC 3339 UTC
};

struct AppendResult {
  std::int64_t last_position = 0;                   // global position of the last event written
  std::map<std::string, std::int64_t> versions;     // stream -> version after the append
  std::map<std::string, std::int64_t> positions;    // stream -> position of its last new event
};

// Prepares the event store's statements on a new connection (pass to ConnectionPool).
void prepare_event_store(pqxx::connection& c);

// One database transaction of the write side. Read streams (locking them against concurrent
// writers), claim unique values, append, commit. Destroying it without commit rolls back.
class StoreSession {
 public:
  explicit StoreSession(ConnectionPool::Lease lease);
  ~StoreSession();
  StoreSession(const StoreSession&) = delete;
  StoreSession& operator=(const StoreSession&) = delete;

  // Locks the stream (existing or not) until commit: a concurrent writer of the same stream waits.
  // Take every lock a command needs BEFORE its first write: the lock is an advisory lock, which
  // gives the transaction no id, so the transaction id assigned at the first write is greater than
  // that of every earlier writer of the stream. That keeps each stream's events in stream order in
  // the global (transaction id, position) order that readers follow.
  void lock_stream(const std::string& stream_id);
  // The stream's current version (0 if none).
  std::int64_t stream_version(const std::string& stream_id);
  // Events of a stream with a version above `after_version`, in order.
  std::vector<RecordedEvent> read_stream(const std::string& stream_id,
                                         std::int64_t after_version = 0);

  void claim_unique(const std::string& scope, const std::string& value, const std::string& owner);
  void release_unique(const std::string& scope, const std::string& value, const std::string& owner);
  std::optional<std::string> unique_owner(const std::string& scope, const std::string& value);

  // Appends to every stream at once or to none. Throws ConcurrencyConflict when any stream's
  // version (or a checked stream's) is not the expected one, IdempotencyKeyUsed when the key is.
  AppendResult append(const std::vector<StreamAppend>& streams, const Metadata& meta,
                      const std::vector<StreamCheck>& checks = {},
                      const std::optional<IdempotencyRecord>& idempotency = std::nullopt);

  pqxx::dbtransaction& tx();
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class EventStore {
 public:
  explicit EventStore(ConnectionPool& pool) : pool_(pool) {}
  // A transaction, for commands that write more than events (unique claims, credentials).
  std::unique_ptr<StoreSession> begin() { return std::make_unique<StoreSession>(pool_.acquire()); }
  ConnectionPool& pool() { return pool_; }

  // The same append as StoreSession::append, as one statement in a transaction of its own: one
  // round trip. It takes the streams' locks itself, before it writes.
  AppendResult append(const std::vector<StreamAppend>& streams, const Metadata& meta,
                      const std::vector<StreamCheck>& checks = {},
                      const std::optional<IdempotencyRecord>& idempotency = std::nullopt);
  // A stream's events with a version above `after_version`, in order (no transaction kept).
  std::vector<RecordedEvent> read_stream(const std::string& stream_id,
                                         std::int64_t after_version = 0);

 private:
  ConnectionPool& pool_;
};

// A reader's place in the global order: the transaction id and position of the last event read.
struct GlobalCheckpoint {
  std::string tx = "0";  // xid8 as decimal text
  std::int64_t position = 0;
};

struct GlobalBatch {
  std::vector<RecordedEvent> events;
  GlobalCheckpoint next;  // checkpoint after the last event of the batch
};

// Reads up to `limit` events after `from` in global order. Only events of transactions that have
// ended before every still-running transaction began are returned, ordered by (transaction,
// position): an event committed late by a long transaction is read after the ones before it,
// never skipped, and a rolled-back transaction leaves nothing to wait for.
// Run it in a READ COMMITTED transaction that has not written anything yet (the horizon and the
// rows are read by two statements, with two snapshots, the second later than the first).
GlobalBatch read_global(pqxx::transaction_base& tx, const GlobalCheckpoint& from, int limit);

// Column list and row decoding shared by every query that returns whole events.
extern const char* const kEventColumns;
RecordedEvent event_from_row(const pqxx::row& row);

}  // namespace shop::infra
