// The outbox relay: publishes every committed event of the PostgreSQL event store to Kafka, in
// the global order, exactly once.
//
// Topics: one per stream category, <prefix>.<category> (shop.order, shop.cart, ...); message
// key = stream id (a stream's events stay in one partition, in order); value = the event
// envelope as one JSON object (the replay tool's JSON line, without the newline); headers
// event_type, schema_version, event_id, position.
//
// Exactly once: each batch of events is one Kafka transaction, and that transaction also writes
// the relay's checkpoint (the global-order position after the batch) to a one-partition topic,
// <prefix>-relay-checkpoints. Either the batch and its checkpoint are committed, or neither is
// visible to read_committed consumers. At start the relay's two producers (fixed
// transactional.ids <id> and <id>-2, taking turns batch by batch so that a new transaction never
// waits for the previous commit's markers) fence any earlier instance and abort whatever
// transactions it left open; then the relay reads the last committed checkpoint and continues
// from there. A PostgreSQL advisory lock keeps a second relay waiting while one runs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "shop/infra/event_store.h"

namespace shop::command {

struct RelayOptions {
  std::string database_url;
  std::string brokers;                // KAFKA_BROKERS
  std::string topic_prefix = "shop";  // KAFKA_TOPIC_PREFIX
  int partitions = 3;                 // KAFKA_PARTITIONS, for topics the relay creates
  int replication_factor = 1;         // KAFKA_REPLICATION_FACTOR
  std::string transactional_id;       // default: <prefix>-relay (and <id>-2)
  int batch_size = 5000;              // events per Kafka transaction
  std::chrono::milliseconds idle_poll{5};
  std::chrono::milliseconds kafka_timeout{30000};
  // How often the relay looks for topics deleted behind its back (their events are then
  // published again; see docs/KAFKA.md). Also done at every start.
  std::chrono::milliseconds topic_check_interval{30000};
};

struct RelayStatus {
  std::int64_t published_position = 0;  // the greatest position published so far
  std::int64_t published_events = 0;    // by this process
  std::int64_t store_position = 0;      // the greatest position in the store (at the last read)
};

class Relay {
 public:
  explicit Relay(RelayOptions options);
  ~Relay();

  // Takes the relay lock, connects to Kafka, creates the checkpoint topic and loads the
  // checkpoint. Throws when Kafka or PostgreSQL cannot be reached (the caller retries).
  void start();
  // Publishes at most one batch; returns the number of events published (0: caught up).
  int run_once();
  // Runs until `stop`, retrying every failure with backoff (and logging it): the store keeps
  // taking events while Kafka is away, and the relay catches up when it is back.
  void run(const std::atomic<bool>& stop);

  infra::GlobalCheckpoint checkpoint() const;
  RelayStatus status() const;

  // The topic of a stream: <prefix>.<category>, where the category is the stream id up to its
  // first '-'.
  static std::string topic_for(const std::string& prefix, const std::string& stream_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shop::command
