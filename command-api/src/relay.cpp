#include "shop/command/relay.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "shop/events/envelope.h"
#include "shop/events/json.h"
#include "shop/infra/kafka.h"
#include "shop/infra/log.h"

namespace shop::command {

namespace kafka = infra::kafka;

namespace {

constexpr const char* kCheckpointKey = "relay";
// How far back from the end of the checkpoint topic the last committed checkpoint is looked for
// first. Every transaction adds two offsets there (the checkpoint and the commit marker); an
// aborted one a few more. The whole topic is read when this window holds none.
constexpr std::int64_t kCheckpointWindow = 2000;

// A category whose topic lost its events (deleted, or recreated empty) while the relay's
// checkpoint was past some of them: those events are published again, in global order, before
// anything newer goes to that topic.
struct Repair {
  std::string category;
  infra::GlobalCheckpoint upto;  // the last event to publish again (the checkpoint at detection)
  infra::GlobalCheckpoint done;  // the last one published again so far
};

using LastOffsets = kafka::PartitionOffsets;

std::string checkpoint_json(const infra::GlobalCheckpoint& cp, std::int64_t published_position,
                            const LastOffsets& last_offsets, const std::optional<Repair>& repair) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("tx");
  w.String(cp.tx);
  w.Key("position");
  w.Int64(cp.position);
  w.Key("published_position");
  w.Int64(published_position);
  w.Key("last_offsets");
  const auto offsets = kafka::partition_offsets_json(last_offsets);
  w.RawValue(offsets.data(), offsets.size(), rapidjson::kArrayType);
  if (repair) {
    w.Key("repair");
    w.StartObject();
    w.Key("category");
    w.String(repair->category);
    w.Key("upto_tx");
    w.String(repair->upto.tx);
    w.Key("upto_position");
    w.Int64(repair->upto.position);
    w.Key("done_tx");
    w.String(repair->done.tx);
    w.Key("done_position");
    w.Int64(repair->done.position);
    w.EndObject();
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

}  // namespace

struct Relay::Impl {
  RelayOptions o;
  std::string checkpoint_topic;
  std::unique_ptr<pqxx::connection> lock_conn;  // holds the relay lock while it lives
  std::unique_ptr<pqxx::connection> conn;
  // Two producers with two transactional ids, taking turns batch by batch: a transaction begun
  // right after the previous one's commit would wait (the broker answers "concurrent
  // transactions" until the commit markers are written, and librdkafka retries after 20 ms);
  // the other id has no transaction in flight. Commits still happen one after the other, so the
  // batches and their checkpoints stay in order.
  std::unique_ptr<kafka::TransactionalProducer> producers[2];
  kafka::TransactionalProducer* producer = nullptr;  // the one whose turn it is
  int turn = 0;
  void next_turn() {
    turn ^= 1;
    producer = producers[turn].get();
  }
  std::set<std::string> topics_ready;
  bool started = false;
  std::optional<Repair> repair;         // in progress (also written with every checkpoint)
  std::vector<Repair> repairs_waiting;  // found at start, after the one in progress

  mutable std::mutex mutex;  // guards cp and st (read by status() from other threads)
  infra::GlobalCheckpoint cp;
  RelayStatus st;
  // The offset of the last message of each partition as of `cp`: written with every checkpoint
  // and to relay_status, so that the projector knows when a partition holds nothing more up to
  // `cp` (see kafka_projector.h).
  LastOffsets last_offsets;

  kafka::Properties client_properties() const { return {{"bootstrap.servers", o.brokers}}; }

  void reset() {
    started = false;
    repair.reset();
    repairs_waiting.clear();
    producer = nullptr;
    producers[0].reset();
    producers[1].reset();
    topics_ready.clear();
    conn.reset();
    lock_conn.reset();
  }

  void take_lock() {
    lock_conn = std::make_unique<pqxx::connection>(o.database_url);
    pqxx::nontransaction tx(*lock_conn);
    const std::string key = "relay:" + o.topic_prefix;
    if (!tx.exec_params("SELECT pg_try_advisory_lock(3, hashtext($1))", key)[0][0].as<bool>()) {
      log::info("another relay for topic prefix '{}' is running; waiting for it to stop",
                o.topic_prefix);
      tx.exec_params("SELECT pg_advisory_lock(3, hashtext($1))", key);
    }
  }

  void load_checkpoint() {
    kafka::Consumer consumer(client_properties());
    const auto [low, high] = consumer.watermarks(checkpoint_topic, 0, o.kafka_timeout);
    std::optional<std::string> last;
    auto keep = [&](const kafka::Message& m) {
      if (m.key == kCheckpointKey) last = m.value;
    };
    const std::int64_t from = std::max(low, high - kCheckpointWindow);
    kafka::read_to_end(consumer, {{checkpoint_topic, 0, from}}, keep, o.kafka_timeout * 4);
    if (!last && from > low) {
      kafka::read_to_end(consumer, {{checkpoint_topic, 0, low}}, keep, o.kafka_timeout * 20);
    }
    infra::GlobalCheckpoint loaded;
    std::int64_t published = 0;
    if (last) {
      json::Document d;
      if (!json::parse(*last, d).empty() || !d.IsObject()) {
        throw std::runtime_error("unreadable relay checkpoint in " + checkpoint_topic + ": " +
                                 *last);
      }
      loaded.tx = json::get_string(d, "tx");
      loaded.position = json::get_int(d, "position");
      published = json::get_int(d, "published_position");
      if (const json::Value* offsets = json::member(d, "last_offsets")) {
        last_offsets = kafka::parse_partition_offsets(json::to_string(*offsets));
      } else {
        last_offsets = scan_last_offsets();
      }
      if (d.HasMember("repair") && d["repair"].IsObject()) {
        const auto& r = d["repair"];
        repair = Repair{json::get_string(r, "category"),
                        {json::get_string(r, "upto_tx"), json::get_int(r, "upto_position")},
                        {json::get_string(r, "done_tx"), json::get_int(r, "done_position")}};
      }
    }
    if (!last) last_offsets.clear();
    std::lock_guard lock(mutex);
    cp = loaded;
    st.published_position = published;
    log::info("relay resumes after transaction {} position {} ({} of {}: offsets {}..{})",
              loaded.tx, loaded.position, last ? "checkpoint" : "no checkpoint", checkpoint_topic,
              low, high);
  }

  // The last offsets of every partition, read from the topics: for a checkpoint written before
  // checkpoints carried them. Reads every committed message once.
  LastOffsets scan_last_offsets() {
    log::info("relay: the checkpoint has no partition offsets; reading the topics to find them");
    kafka::Consumer consumer(client_properties());
    LastOffsets out;
    std::vector<kafka::TopicPartitionOffset> from;
    for (const auto category : events::all_categories()) {
      const auto topic = o.topic_prefix + "." + std::string(category);
      const int n = consumer.partition_count(topic, o.kafka_timeout);
      for (int p = 0; p < n; ++p) from.push_back({topic, p, 0});
    }
    kafka::read_to_end(
        consumer, from,
        [&](const kafka::Message& m) {
          auto& last = out[{m.topic, m.partition}];
          last = std::max(last, m.offset);
        },
        o.kafka_timeout * 20);
    return out;
  }

  void start() {
    take_lock();
    conn = std::make_unique<pqxx::connection>(o.database_url);
    kafka::Properties props = client_properties();
    props.insert(props.end(), {
                                  {"enable.idempotence", "true"},
                                  {"acks", "all"},
                                  // Each batch is flushed whole before its checkpoint: waiting
                                  // for more messages only delays small batches.
                                  {"linger.ms", "1"},
                                  // Small requests (a lone event, the transaction's end) go out
                                  // at once instead of waiting for the previous one's ack.
                                  {"socket.nagle.disable", "true"},
                                  {"compression.type", "lz4"},
                                  // The partition of a key is the one Java clients choose.
                                  {"partitioner", "murmur2_random"},
                                  {"transaction.timeout.ms", "60000"},
                                  // A message that cannot be delivered (its topic was deleted)
                                  // fails the transaction after this long, not 5 minutes.
                                  {"message.timeout.ms", std::to_string(o.kafka_timeout.count())},
                                  {"queue.buffering.max.messages", "200000"},
                              });
    log::info("relay: connecting to Kafka at {} (transactional ids {} and {}-2)", o.brokers,
              o.transactional_id, o.transactional_id);
    for (int i = 0; i < 2; ++i) {
      auto p = props;
      p.emplace_back("transactional.id", i == 0 ? o.transactional_id : o.transactional_id + "-2");
      producers[i] = std::make_unique<kafka::TransactionalProducer>(p);
      // Fences any earlier relay's producer with this id and aborts what it left open.
      producers[i]->init_transactions(o.kafka_timeout);
    }
    turn = 0;
    producer = producers[0].get();
    // Every category's topic exists from the start, even before its first event: consumers
    // (the projector's group) then know every partition they will ever read at once.
    std::vector<kafka::TopicSpec> topics = {
        {checkpoint_topic, 1, o.replication_factor, {{"cleanup.policy", "compact"}}}};
    for (const auto category : events::all_categories()) {
      topics.push_back(spec(o.topic_prefix + "." + std::string(category)));
    }
    producer->create_topics(topics, o.kafka_timeout);
    for (std::size_t i = 1; i < topics.size(); ++i) topics_ready.insert(topics[i].name);
    load_checkpoint();
    find_lost_topics();
    last_topic_check = std::chrono::steady_clock::now();
    started = true;
    {
      std::unique_lock lock(mutex);
      const auto at = cp;
      const auto published = st.published_position;
      lock.unlock();
      if (at.position > 0 || at.tx != "0") save_status(published, at);
    }
  }
  std::chrono::steady_clock::time_point last_topic_check;

  // A topic that is missing or empty although the checkpoint is past events of its category was
  // deleted (and perhaps recreated) behind the relay's back: its events are published again.
  void find_lost_topics() {
    infra::GlobalCheckpoint at;
    {
      std::lock_guard lock(mutex);
      at = cp;
    }
    if (at.position == 0 && at.tx == "0") return;  // nothing published yet
    kafka::Consumer consumer(client_properties());
    for (const auto category_view : events::all_categories()) {
      const std::string category(category_view);
      if (repair && repair->category == category) continue;
      bool waiting = false;
      for (const auto& r : repairs_waiting) waiting |= r.category == category;
      if (waiting) continue;
      const auto topic = o.topic_prefix + "." + category;
      const int partitions = consumer.partition_count(topic, o.kafka_timeout);
      if (partitions == 0) topics_ready.erase(topic);  // to be created again before use
      bool empty = true;
      for (int p = 0; p < partitions && empty; ++p) {
        empty = consumer.watermarks(topic, p, o.kafka_timeout).second == 0;
      }
      if (!empty) continue;
      pqxx::work tx(*conn);
      const bool published_before =
          tx.exec_params(
                "SELECT EXISTS (SELECT 1 FROM events e WHERE e.stream_id LIKE $1 "
                "AND (e.tx_id, e.position) <= ($2::xid8, $3))",
                category + "-%", at.tx, at.position)[0][0]
              .as<bool>();
      tx.commit();
      if (!published_before) continue;
      log::warn(
          "relay: topic {} is {} although events of it were published: publishing them "
          "again, up to transaction {} position {}",
          topic, partitions == 0 ? "missing" : "empty", at.tx, at.position);
      repairs_waiting.push_back({category, at, {}});
    }
    if (!repair && !repairs_waiting.empty()) {
      repair = repairs_waiting.front();
      repairs_waiting.erase(repairs_waiting.begin());
    }
  }

  // Publishes the next batch of a topic's lost events again, with the unchanged main checkpoint
  // and the repair's progress in the same transaction.
  int repair_once() {
    const std::string topic = o.topic_prefix + "." + repair->category;
    if (!topics_ready.count(topic)) {
      producer->create_topics({spec(topic)}, o.kafka_timeout);
      topics_ready.insert(topic);
    }
    std::vector<events::RecordedEvent> batch;
    infra::GlobalCheckpoint last = repair->done;
    {
      pqxx::work tx(*conn);
      auto rows = tx.exec_params(
          std::string("SELECT ") + infra::kEventColumns + R"SQL(, e.tx_id::text AS tx_id_text
  FROM events e
 WHERE e.stream_id LIKE $1
   AND (e.tx_id, e.position) > ($2::xid8, $3) AND (e.tx_id, e.position) <= ($4::xid8, $5)
 ORDER BY e.tx_id, e.position
 LIMIT $6)SQL",
          repair->category + "-%", repair->done.tx, repair->done.position, repair->upto.tx,
          repair->upto.position, o.batch_size);
      tx.commit();
      for (const auto& row : rows) {
        batch.push_back(infra::event_from_row(row));
        last = {row[11].c_str(), batch.back().position};
      }
    }
    const bool finished = static_cast<int>(batch.size()) < o.batch_size;
    std::optional<Repair> after = repair;
    after->done = last;
    if (finished) {
      after.reset();
      if (!repairs_waiting.empty()) {
        after = repairs_waiting.front();
      }
    }
    infra::GlobalCheckpoint main;
    std::int64_t published;
    {
      std::lock_guard lock(mutex);
      main = cp;
      published = st.published_position;
    }
    next_turn();
    producer->begin_transaction();
    for (const auto& e : batch) publish(e);
    producer->flush(o.kafka_timeout);
    LastOffsets offsets = last_offsets;
    if (repair->done.position == 0 && repair->done.tx == "0") {
      // The topic starts again from offset 0.
      std::erase_if(offsets, [&](const auto& kv) { return kv.first.topic == topic; });
    }
    for (const auto& [tp, offset] : producer->last_offsets()) offsets[tp] = offset;
    producer->produce(checkpoint_topic, kCheckpointKey,
                      checkpoint_json(main, published, offsets, after), {});
    producer->commit_transaction(o.kafka_timeout);
    last_offsets = std::move(offsets);
    save_status(published, main);
    if (finished) {
      log::info("relay: topic {} has all its earlier events again", topic);
      if (!repairs_waiting.empty()) repairs_waiting.erase(repairs_waiting.begin());
    }
    repair = after;
    return static_cast<int>(batch.size()) + 1;
  }

  kafka::TopicSpec spec(const std::string& topic) const {
    // Events are kept forever: analysts replay topics from offset 0.
    return {topic,
            o.partitions,
            o.replication_factor,
            {{"retention.ms", "-1"}, {"retention.bytes", "-1"}}};
  }

  void publish(const events::RecordedEvent& e) {
    value_.clear();
    events::append_envelope_json(value_, e);
    producer->produce(Relay::topic_for(o.topic_prefix, e.stream_id), e.stream_id, value_,
                      {{"event_type", e.type},
                       {"schema_version", std::to_string(e.schema_version)},
                       {"event_id", e.event_id},
                       {"position", std::to_string(e.position)}});
  }
  std::string value_;

  void ensure_topics(const std::vector<events::RecordedEvent>& evs) {
    std::vector<kafka::TopicSpec> missing;
    std::set<std::string> names;
    for (const auto& e : evs) {
      auto topic = Relay::topic_for(o.topic_prefix, e.stream_id);
      if (!topics_ready.count(topic) && names.insert(topic).second) missing.push_back(spec(topic));
    }
    if (missing.empty()) return;
    producer->create_topics(missing, o.kafka_timeout);
    topics_ready.insert(names.begin(), names.end());
  }

  void save_status(std::int64_t published_position, const infra::GlobalCheckpoint& next) {
    pqxx::work tx(*conn);
    tx.exec_params(
        "INSERT INTO relay_status (name, last_tx, last_position, published_position, "
        "last_offsets, updated_at) VALUES ($1, $2::xid8, $3, $4, $5::jsonb, now()) "
        "ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, "
        "last_position = EXCLUDED.last_position, published_position = "
        "EXCLUDED.published_position, last_offsets = EXCLUDED.last_offsets, updated_at = now()",
        o.topic_prefix, next.tx, next.position, published_position,
        kafka::partition_offsets_json(last_offsets));
    tx.commit();
  }

  int run_once() {
    if (!started) start();
    if (std::chrono::steady_clock::now() - last_topic_check > o.topic_check_interval) {
      find_lost_topics();
      last_topic_check = std::chrono::steady_clock::now();
    }
    if (repair) return repair_once();
    infra::GlobalCheckpoint from;
    {
      std::lock_guard lock(mutex);
      from = cp;
    }
    infra::GlobalBatch batch;
    std::int64_t head = 0;
    {
      pqxx::work tx(*conn);
      batch = infra::read_global(tx, from, o.batch_size);
      head = tx.exec("SELECT coalesce(max(position), 0) FROM events")[0][0].as<std::int64_t>();
      tx.commit();
    }
    {
      std::lock_guard lock(mutex);
      st.store_position = head;
    }
    if (batch.events.empty()) return 0;
    ensure_topics(batch.events);

    std::int64_t published;
    {
      std::lock_guard lock(mutex);
      published = st.published_position;
    }
    next_turn();
    producer->begin_transaction();
    for (const auto& e : batch.events) {
      publish(e);
      published = std::max(published, e.position);
    }
    // The batch's offsets go with its checkpoint, so they are known only once acknowledged.
    producer->flush(o.kafka_timeout);
    LastOffsets offsets = last_offsets;
    for (const auto& [tp, offset] : producer->last_offsets()) offsets[tp] = offset;
    producer->produce(checkpoint_topic, kCheckpointKey,
                      checkpoint_json(batch.next, published, offsets, std::nullopt), {});
    producer->commit_transaction(o.kafka_timeout);
    last_offsets = std::move(offsets);
    {
      std::lock_guard lock(mutex);
      cp = batch.next;
      st.published_position = published;
      st.published_events += static_cast<std::int64_t>(batch.events.size());
    }
    save_status(published, batch.next);
    return static_cast<int>(batch.events.size());
  }
};

Relay::Relay(RelayOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->o = std::move(options);
  if (impl_->o.transactional_id.empty())
    impl_->o.transactional_id = impl_->o.topic_prefix + "-relay";
  impl_->checkpoint_topic = impl_->o.topic_prefix + "-relay-checkpoints";
}

Relay::~Relay() = default;

std::string Relay::topic_for(const std::string& prefix, const std::string& stream_id) {
  return prefix + "." + stream_id.substr(0, stream_id.find('-'));
}

void Relay::start() {
  impl_->start();
}

int Relay::run_once() {
  return impl_->run_once();
}

infra::GlobalCheckpoint Relay::checkpoint() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cp;
}

RelayStatus Relay::status() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->st;
}

void Relay::run(const std::atomic<bool>& stop) {
  int backoff_ms = 200;
  auto last_report = std::chrono::steady_clock::now();
  while (!stop.load()) {
    try {
      const int n = impl_->run_once();
      backoff_ms = 200;
      if (n == 0) std::this_thread::sleep_for(impl_->o.idle_poll);
    } catch (const std::exception& e) {
      // Whatever failed (Kafka away, a topic deleted, PostgreSQL restarted, this producer fenced),
      // start over as a new instance would: the new producer aborts what this one left open and
      // the checkpoint is read back from Kafka, so nothing is published twice or passed by.
      log::error("relay: {}; starting over in {} ms", e.what(), backoff_ms);
      impl_->reset();
      for (int waited = 0; waited < backoff_ms && !stop.load(); waited += 50) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      backoff_ms = std::min(backoff_ms * 2, 10000);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report > std::chrono::seconds(10)) {
      last_report = now;
      const auto s = status();
      log::info(
          "relay: published up to position {} (store at {}, lag {} positions), {} events "
          "published by this process",
          s.published_position, s.store_position,
          std::max<std::int64_t>(0, s.store_position - s.published_position), s.published_events);
    }
  }
}

}  // namespace shop::command
