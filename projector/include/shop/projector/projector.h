// The projector: reads the event store in global order and keeps the PostgreSQL read models
// (catalog, carts, orders, users) up to date. Its checkpoint is written in the same transaction
// as the read-model changes, so a crash at any point applies a batch with its checkpoint or
// neither: no event is lost or applied twice.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "shop/infra/event_store.h"

namespace shop::projector {

inline constexpr const char* kCheckpointName = "read_models";

struct Options {
  int batch_size = 1000;
  int idle_poll_ms = 5;  // pause after an empty read
};

class Projector {
 public:
  Projector(std::string database_url, Options options);
  ~Projector();

  // Applies at most one batch; returns the number of events applied (0 when caught up).
  int run_once();
  // Runs until `stop` becomes true. Errors are logged and retried with backoff: the projector
  // stalls on an event it cannot apply rather than skip it.
  void run(const std::atomic<bool>& stop);
  // The checkpoint as stored.
  infra::GlobalCheckpoint checkpoint();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Applies one event to the read models inside `tx` (exposed for tests).
void apply(pqxx::transaction_base& tx, const events::RecordedEvent& e);

}  // namespace shop::projector
