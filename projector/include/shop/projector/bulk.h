// The bulk builder of the read models: the fast path of a rebuild. It builds the read-model tables
// of one PostgreSQL schema from the event store by folding the events in memory and writing the
// resulting rows with COPY, instead of one statement per event. The rows are exactly those that
// apply_batch (projector.h) writes for the same events, so the per-event path can take over from
// the checkpoint it reaches.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "shop/infra/event_store.h"

namespace shop::projector {

struct BulkProgress {
  std::int64_t events = 0;         // events folded by this call so far
  std::int64_t position = 0;       // position of the last event folded (the checkpoint's)
  std::int64_t head_position = 0;  // position of the last event this call folds
};

struct BulkOptions {
  std::int64_t flush_every = 250000;  // events between flushes (each one transaction)
  int batch_size = 10000;             // events handed from the reader to the fold at a time
};

// Builds the read models in the tables of `schema` (rm_users, rm_categories, rm_products,
// rm_cart_items, rm_orders, rm_payments, rm_checkpoints, rm_kafka_offsets, as
// infra::create_read_model_tables makes them) from the event store of the same database, from the
// checkpoint in <schema>.rm_checkpoints (name kCheckpointName; none: from the first event) up to
// the last event final when the call starts (the head). Tables without a checkpoint must be
// empty. The events are folded in memory and the changed rows written with COPY together with the
// checkpoint, in one transaction every `flush_every` events and at the end: interrupted at any
// point (an exception, a kill), the next call continues from the last flush, loading the rows it
// needs from the tables. Returns the checkpoint reached (the one stored; unchanged when there was
// nothing to fold). `progress`, if set, is called after every batch folded, before a flush that
// follows it; an exception it throws ends the call (what was flushed stays). Throws WrongSource
// when the schema's read models are maintained from Kafka, and std::runtime_error when another
// process changed the schema's checkpoint meanwhile. Continue from the result with apply_batch
// (search_path set to `schema`).
infra::GlobalCheckpoint bulk_build(const std::string& database_url, const std::string& schema,
                                   const BulkOptions& options = {},
                                   const std::function<void(const BulkProgress&)>& progress = {});

}  // namespace shop::projector
