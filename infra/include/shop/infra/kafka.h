// Apache Kafka through librdkafka (C API): a transactional producer, topic creation, a consumer
// of given partitions and a consumer-group member, behind small classes that hide librdkafka's
// types. Errors become kafka::Error, which says whether the operation may be retried, whether the
// transaction must be aborted, or whether the client is unusable (fatal: make a new one).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
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

struct TopicPartition {
  std::string topic;
  int partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};

// An offset per partition; for the relay's "last offsets", the offset of the last message of each
// partition written so far.
using PartitionOffsets = std::map<TopicPartition, std::int64_t>;
// As JSON, [{"topic": ..., "partition": ..., "offset": ...}, ...] (the relay's checkpoints and
// relay_status.last_offsets); parse throws on anything else.
std::string partition_offsets_json(const PartitionOffsets& offsets);
PartitionOffsets parse_partition_offsets(std::string_view json);

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
  // Waits until the broker has acknowledged every message queued so far (throws if it cannot
  // within `timeout`); their offsets are then in last_offsets().
  void flush(std::chrono::milliseconds timeout);
  // For each partition written in the current transaction, the offset of its last message the
  // broker has acknowledged so far. Emptied by begin_transaction().
  const PartitionOffsets& last_offsets() const;
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

// A member of a consumer group: Kafka shares the partitions of the subscribed topics among the
// members and moves them when members come and go (a rebalance). Where each partition is read
// from is decided by `on_assign`, typically from offsets stored with the results of processing:
// offsets committed to Kafka are never used for that (commit_async is for monitoring tools).
//
// Rebalances use the EAGER protocol (partition.assignment.strategy roundrobin unless given): a
// member first gives up every partition (`on_revoke`), then receives its new set (`on_assign`).
// Both callbacks run inside poll(), on the polling thread. An exception thrown by a callback
// leaves the member without partitions and is rethrown by poll(); the member should then be
// destroyed (it leaves the group) and a new one made.
//
// Messages are read with isolation.level=read_committed, and a stored offset that is no longer
// in the partition is an error (auto.offset.reset=error) rather than a silent jump.
class GroupConsumer {
 public:
  // An offset for on_assign: the partition's first message.
  static constexpr std::int64_t kBeginning = -2;

  struct Callbacks {
    // Returns the offset at which to start reading each partition just assigned.
    std::function<std::vector<TopicPartitionOffset>(const std::vector<TopicPartition>&)> on_assign;
    std::function<void(const std::vector<TopicPartition>&)> on_revoke;
    // Errors the client recovers from by itself (a broker away, a topic missing), for logging.
    std::function<void(const std::string&)> on_warning;
  };

  // `props` must set bootstrap.servers and group.id.
  GroupConsumer(const Properties& props, Callbacks callbacks);
  ~GroupConsumer();  // leaves the group
  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  // Subscribes to topic names, or to every topic matching a pattern that starts with '^'.
  // Topics that do not exist yet are picked up when they appear (checked every
  // topic.metadata.refresh.interval.ms).
  void subscribe(const std::vector<std::string>& topics);

  // Waits up to `timeout` for a first message, then takes the messages already fetched, up to
  // `max_messages`, in the order of each partition. A rebalance during the call drops what was
  // taken before it: only messages of the assignment in force when poll returns are returned
  // (a partition assigned again is read again from the offset on_assign gives).
  std::vector<Message> poll(std::chrono::milliseconds timeout, std::size_t max_messages);

  // The partitions assigned now.
  std::vector<TopicPartition> assignment() const;

  // Moves the read positions of assigned partitions; messages fetched ahead are dropped.
  void seek(const std::vector<TopicPartitionOffset>& positions, std::chrono::milliseconds timeout);

  // For an assigned partition, an offset below which every record has been handed out by poll():
  // where the partition ended when poll() last reached its end (so the transaction markers after
  // the last message count), since it was assigned or sought. 0 when nothing is known.
  std::int64_t consumed_to(const TopicPartition& partition) const;

  // Commits offsets to the group without waiting, for monitoring tools (consumer lag); failures
  // are ignored.
  void commit_async(const std::vector<TopicPartitionOffset>& offsets);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shop::infra::kafka
