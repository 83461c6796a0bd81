// The projector reading Kafka: a member of a consumer group over the topics the outbox relay
// writes (<prefix>.<category>), so that several processes share the partitions.
//
// Exactly-once effects: a batch of messages is applied in one PostgreSQL transaction together
// with, per partition, the offset of the next message (rm_kafka_offsets). The update of that
// offset is conditional on the offset the batch started from: a process that still believes it
// owns a partition another member has taken over (a rebalance it has not noticed yet) finds the
// offset moved, rolls its whole batch back and reads on from the stored offset. On every
// assignment the offsets are loaded from PostgreSQL and reading starts there (at the beginning
// when none is stored); offsets committed to Kafka are for monitoring only.
//
// Read-your-writes: there is no single global order in Kafka. After each Kafka transaction the
// relay writes to relay_status its checkpoint R (a place in the store's global order) with the
// offset of the last message of every partition as of R. A partition is applied up to R once
// its message at that offset is applied; each partition's place is kept in rm_kafka_offsets, and
// the least of them over the partitions that hold messages is written as the read models'
// checkpoint in rm_checkpoints, the row the query API reads for X-Min-Position. Places are
// brought forward after every batch, and every progress_interval while idle.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shop/events/events.h"
#include "shop/infra/kafka.h"
#include "shop/projector/projector.h"

namespace shop::projector {

struct KafkaOptions {
  std::string brokers;                // KAFKA_BROKERS
  std::string topic_prefix = "shop";  // KAFKA_TOPIC_PREFIX
  std::string group;                  // KAFKA_CONSUMER_GROUP; default <prefix>-projector
  int batch_size = 1000;              // messages per transaction, at most
  std::chrono::milliseconds poll_timeout{100};
  // How often, while no message comes, the partitions' places in the global order (and so the
  // checkpoint the query API waits on) are brought forward; also the longest poll.
  std::chrono::milliseconds progress_interval{10};
  std::chrono::milliseconds session_timeout{10000};  // a killed member's partitions move after it
  std::chrono::milliseconds kafka_timeout{10000};
  infra::kafka::Properties extra;  // more librdkafka settings
};

class KafkaProjector {
 public:
  KafkaProjector(std::string database_url, KafkaOptions options);
  ~KafkaProjector();  // leaves the group

  // Joins the group if not a member yet, polls one batch and applies it, and brings the
  // checkpoint forward when due. Returns the number of events applied. Throws on any failure;
  // call reset() then (run() does).
  int run_once();
  // Runs until `stop`: every failure is logged, the consumer and the connection are dropped and
  // made again after a backoff (the new member reloads its offsets from PostgreSQL). An event
  // that cannot be applied stalls its partition rather than being skipped. WrongSource (read
  // models maintained from the store or by another group) is thrown, not retried.
  void run(const std::atomic<bool>& stop);
  // Leaves the group and closes the connection.
  void reset();

  const KafkaOptions& options() const;
  // Batches rolled back because another member had moved a partition's stored offset.
  std::int64_t fenced_batches() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The topics of the read models: <prefix>.<category> for every stream category.
std::vector<std::string> projector_topics(const std::string& prefix);

// An event from a message value (the envelope JSON the relay publishes). Throws on anything
// else.
events::RecordedEvent event_from_envelope(std::string_view envelope);

}  // namespace shop::projector
