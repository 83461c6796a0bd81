// The projector: keeps the PostgreSQL read models (catalog, carts, orders, payments, users) up to
// date from the events. Two sources, one set of handlers (apply):
//  - the event store itself, in global order (Projector, the embedded default);
//  - Kafka, as a consumer group (KafkaProjector, kafka_projector.h).
// Either way the read-model changes and the place reached are written in one transaction, so a
// crash at any point applies a batch with its checkpoint or neither: no event is lost or applied
// twice.
//
// The handlers give the same rows whatever the interleaving of different streams' events (each
// stream's own events in order): Kafka delivers each partition in order, but partitions in any
// interleaving. Where events of two streams set the same value, the value keeps the position of
// the event that set it and only a greater position replaces it (see the migration "read models
// in any order across streams").
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "shop/infra/event_store.h"

namespace shop::projector {

inline constexpr const char* kCheckpointName = "read_models";

// The read models in the database are maintained from the other source (the store, or Kafka, or
// another consumer group): continuing them from here would apply events twice or skip them.
// Not retried: the projector stops (rebuild the read models to switch, see projector/README.md).
struct WrongSource : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The read models were switched to another version (a rebuild) under a projector that keeps
// its connection's search path for its lifetime (the Kafka one): start over with a new one.
struct VersionSwitched : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  int batch_size = 1000;
  int idle_poll_ms = 5;  // pause after an empty read
};

class Projector {
 public:
  Projector(std::string database_url, Options options);
  ~Projector();

  // Applies at most one batch; returns the number of events applied (0 when caught up). Throws
  // WrongSource rather than write into read models that a projector reading Kafka maintains.
  int run_once();
  // Runs until `stop` becomes true. Errors are logged and retried with backoff: the projector
  // stalls on an event it cannot apply rather than skip it. WrongSource is thrown, not retried.
  void run(const std::atomic<bool>& stop);
  // The checkpoint as stored.
  infra::GlobalCheckpoint checkpoint();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Prepares the read-model statements on a connection (once per connection).
void prepare_statements(pqxx::connection_base& c);

// The read models live in one schema per version (rm_v1, rm_v2, ...; see infra/pg.h), the live
// one named in the registry. Reads the live version and puts its schema first on the search path
// (then public, where the events are) for the rest of `tx`, or with `session` for the
// connection's life (the transaction must then commit). Returns the schema. The projector reading
// the store calls it under its lock (rm_projector_lock, every batch): a rebuild switches versions
// holding that lock, so the version read stays live until the transaction ends.
std::string use_live_version(pqxx::transaction_base& tx, bool session = false);

// For projectors that may run side by side (Kafka): takes the projector lock shared (a rebuild's
// switch waits for the batch, the batch for a switch) and throws VersionSwitched unless the live
// version is still the one in `schema`.
void lock_live_version(pqxx::transaction_base& tx, const std::string& schema);

// Applies events to the read models inside `tx`, in the order given. First takes, all at once
// and in one fixed order, transaction-scoped advisory locks on every order and product whose
// rows events of several streams write (exclusive; shared for a cart line added), so that two
// projectors applying different partitions at the same time never interleave inside one order
// or one product's cart lines, and never wait for each other in a cycle on these locks. The
// statements must be prepared on tx's connection (prepare_statements).
void apply_batch(pqxx::transaction_base& tx, const std::vector<events::RecordedEvent>& events);

// Applies one event (prepares the statements if needed; exposed for tests).
void apply(pqxx::transaction_base& tx, const events::RecordedEvent& e);

}  // namespace shop::projector
