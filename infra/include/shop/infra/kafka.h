// Apache Kafka through librdkafka (C API): a transactional producer, topic creation, a consumer
// of given partitions and a consumer-group member, behind small classes that hide librdkafka's
// types. Errors become kafka::Error, which
// says whether the operation may be retried, whether the transaction must be aborted, or whether
// the client is unusable (fatal: make a new one).
#pragma once

#include <chrono>
#include <cstdint>
#include <compare>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shop::infra::kafka {

// librdkafka properties (bootstrap.servers, transactional.id, ...).
using Properties = std::vector<std::pair<std::string, std::string>>;
using Headers = std::vector<std::pair<std::string, std::string>>;

struct Error : std::runtime_error {
  explicit Error(const std::string& what, bool is_retriable = false, bool needs_abort = false,
                 bool is_fatal = false)
      : std::runtime_error(what),
        retriable(is_retriable),
        abort_required(needs_abort),
        fatal(is_fatal) {}
  bool retriable;
  bool abort_required;
  bool fatal;
};

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
  Properties config;  // e.g. retention.ms=-1
};

// A producer whose messages become visible to read_committed consumers only when the
// transaction that wrote them commits. A new producer with the same transactional.id fences the
// old one (which can then commit nothing) and aborts the transaction it left open.
class TransactionalProducer {
 public:
  explicit TransactionalProducer(const Properties& props);  // must set transactional.id
  ~TransactionalProducer();
  TransactionalProducer(const TransactionalProducer&) = delete;
  TransactionalProducer& operator=(const TransactionalProducer&) = delete;

  void init_transactions(std::chrono::milliseconds timeout);
  void begin_transaction();
  // Queues one message (waits while the local queue is full). The partition comes from the key.
  void produce(const std::string& topic, std::string_view key, std::string_view value,
               const Headers& headers);
  void commit_transaction(std::chrono::milliseconds timeout);
  void abort_transaction(std::chrono::milliseconds timeout);

  // Creates the topics that do not exist yet (an existing topic is left as it is).
  void create_topics(const std::vector<TopicSpec>& topics, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct Message {
  std::string topic;
  int partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  Headers headers;
  std::optional<std::string> header(std::string_view name) const;
};

struct TopicPartitionOffset {
  std::string topic;
  int partition = 0;
  std::int64_t offset = 0;  // next offset to read
};

// A consumer that reads the partitions it is given (no consumer group), committed messages
// only.
class Consumer {
 public:
  explicit Consumer(const Properties& props);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Low and high watermark offsets of a partition.
  std::pair<std::int64_t, std::int64_t> watermarks(const std::string& topic, int partition,
                                                   std::chrono::milliseconds timeout);
  // Number of partitions of a topic (0 when it does not exist).
  int partition_count(const std::string& topic, std::chrono::milliseconds timeout);
  // The topic's configuration as the broker reports it (retention.ms, cleanup.policy, ...).
  std::vector<std::pair<std::string, std::string>> topic_config(const std::string& topic,
                                                                std::chrono::milliseconds timeout);
  void assign(const std::vector<TopicPartitionOffset>& partitions);

  struct Polled {
    std::optional<Message> message;
    bool end_of_partition = false;  // caught up with a partition (see `partition`)
    std::string topic;
    int partition = 0;
  };
  // Waits up to `timeout` for the next message or end-of-partition notice.
  Polled poll(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads every committed message of the given partitions from their offsets up to the end they
// had when the call started, calling `on_message` for each; returns when every partition is
// done or the deadline passes (then throws).
void read_to_end(Consumer& consumer, const std::vector<TopicPartitionOffset>& partitions,
                 const std::function<void(const Message&)>& on_message,
                 std::chrono::milliseconds timeout);

}  // namespace shop::infra::kafka
