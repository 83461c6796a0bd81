#include "shop/projector/kafka_projector.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "shop/events/json.h"
#include "shop/infra/log.h"
#include "shop/projector/projector.h"

namespace shop::projector {

namespace kafka = infra::kafka;
using kafka::TopicPartition;

namespace {

// A place in the event store's global order (transaction id, position), with the greatest
// position of the events up to it.
struct Place {
  std::uint64_t tx = 0;
  std::int64_t position = 0;
  std::int64_t max_position = 0;
  bool before(const Place& o) const { return tx != o.tx ? tx < o.tx : position < o.position; }
};

std::uint64_t parse_xid(std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw std::runtime_error("bad transaction id '" + std::string(text) + "'");
  }
  return v;
}

const std::pair<const char*, const char*> kKafkaStatements[] = {
    {"rmk_offsets", R"SQL(
SELECT topic, partition, next_offset, covered_tx::text, covered_position, covered_max_position
  FROM rm_kafka_offsets WHERE consumer_group = $1)SQL"},
    // The fence: the offset moves only from where this process believes it is. Another member
    // that has taken the partition over and applied messages since makes this match no row.
    {"rmk_advance", R"SQL(
UPDATE rm_kafka_offsets SET next_offset = $5, updated_at = now()
 WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND next_offset = $4
RETURNING 1)SQL"},
    {"rmk_first", R"SQL(
INSERT INTO rm_kafka_offsets AS o (consumer_group, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (consumer_group, topic, partition)
  DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now() WHERE o.next_offset IS NULL
RETURNING 1)SQL"},
    {"rmk_covered", R"SQL(
INSERT INTO rm_kafka_offsets AS o (consumer_group, topic, partition, covered_tx, covered_position,
                                   covered_max_position)
VALUES ($1, $2, $3, $4::xid8, $5, $6)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
  SET covered_tx = EXCLUDED.covered_tx, covered_position = EXCLUDED.covered_position,
      covered_max_position = EXCLUDED.covered_max_position, updated_at = now()
  WHERE (o.covered_tx, o.covered_position) < (EXCLUDED.covered_tx, EXCLUDED.covered_position))SQL"},
    // Progress transactions of the group's members one after the other: the last to commit sees
    // every partition's place.
    {"rmk_progress_lock", "SELECT pg_advisory_xact_lock(5, hashtext($1))"},
    // The read models' checkpoint only moves forward: each value written is a lower bound of
    // what is applied, computed from committed rows, and applied events stay applied.
    {"rmk_checkpoint", R"SQL(
INSERT INTO rm_checkpoints AS c (name, last_tx, last_position, max_position, updated_at)
VALUES ($1, $2::xid8, $3, $4, now())
ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, last_position = EXCLUDED.last_position,
  max_position = GREATEST(c.max_position, EXCLUDED.max_position), updated_at = now()
WHERE (c.last_tx, c.last_position) < (EXCLUDED.last_tx, EXCLUDED.last_position))SQL"},
    {"rmk_relay", R"SQL(
SELECT last_tx::text, last_position, published_position, last_offsets::text
  FROM relay_status WHERE name = $1)SQL"},
    {"rmk_source", R"SQL(
SELECT EXISTS (SELECT 1 FROM rm_checkpoints WHERE name = $2),
       EXISTS (SELECT 1 FROM rm_kafka_offsets WHERE consumer_group = $1),
       (SELECT string_agg(DISTINCT consumer_group, ', ') FROM rm_kafka_offsets
         WHERE consumer_group <> $1))SQL"},
};

std::string regex_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::string_view(".^$*+?()[]{}|\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::vector<std::string> projector_topics(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto category : events::all_categories()) {
    out.push_back(prefix + "." + std::string(category));
  }
  return out;
}

events::RecordedEvent event_from_envelope(std::string_view envelope) {
  json::Document d;
  if (auto error = json::parse(envelope, d); !error.empty() || !d.IsObject()) {
    throw std::runtime_error("not an event envelope: " + (error.empty() ? "not an object" : error));
  }
  const json::Value* data = json::member(d, "data");
  const json::Value* position = json::member(d, "position");
  const json::Value* type = json::member(d, "type");
  if (data == nullptr || position == nullptr || !position->IsInt64() || type == nullptr ||
      !type->IsString()) {
    throw std::runtime_error("not an event envelope: position, type or data missing");
  }
  events::RecordedEvent e;
  e.position = position->GetInt64();
  e.stream_id = json::get_string(d, "stream_id");
  e.stream_version = json::get_int(d, "stream_version");
  e.type = type->GetString();
  e.schema_version = static_cast<int>(json::get_int(d, "schema_version", 1));
  e.occurred_at = json::get_string(d, "occurred_at");
  e.event_id = json::get_string(d, "event_id");
  e.correlation_id = json::get_string(d, "correlation_id");
  e.causation_id = json::get_string(d, "causation_id");
  if (const json::Value* actor = json::member(d, "actor"); actor && actor->IsString()) {
    e.actor = actor->GetString();
  }
  e.data = json::to_string(*data);
  return e;
}

struct KafkaProjector::Impl {
  // A relay checkpoint and the offset of the partition's last message as of it: the partition
  // is applied up to `place` once the message at `last` is.
  struct Pending {
    Place place;
    std::int64_t last = -1;
  };
  struct Owned {
    std::optional<std::int64_t> stored;  // next_offset as stored (none: start at the beginning)
    Place covered;
    std::deque<Pending> pending;  // places not reached yet, oldest first
  };

  std::string url;
  KafkaOptions o;
  std::unique_ptr<pqxx::connection> conn;
  std::map<TopicPartition, Owned> owned;
  std::optional<Place> written;  // the checkpoint this process last computed
  std::chrono::steady_clock::time_point next_progress{};
  std::chrono::steady_clock::time_point next_recompute{};
  bool source_checked = false;
  std::int64_t fenced = 0;  // batches rolled back because another member moved an offset
  // Last: destroyed first, so that its final revoke callback still finds the members above.
  std::unique_ptr<kafka::GroupConsumer> consumer;

  pqxx::connection& connection() {
    if (!conn || !conn->is_open()) {
      conn = std::make_unique<pqxx::connection>(url);
      pqxx::nontransaction(*conn).exec("SET TIME ZONE 'UTC'");
      prepare_statements(*conn);
      for (const auto& [name, sql] : kKafkaStatements) conn->prepare(name, sql);
      // The live version of the read models for the connection's life; every batch checks that
      // it is still live (a rebuild may have switched: then everything starts over).
      pqxx::work tx(*conn);
      live_schema = use_live_version(tx, true);
      tx.commit();
    }
    return *conn;
  }
  std::string live_schema;

  // Read models built from the store (or by another consumer group) have their places
  // elsewhere: continuing them from Kafka offsets would apply events twice.
  void check_source() {
    if (source_checked) return;
    pqxx::work tx(connection());
    auto r = tx.exec_prepared("rmk_source", o.group, kCheckpointName)[0];
    if (!r[2].is_null()) {
      throw WrongSource(std::string("the read models in this database are projected by "
                                    "Kafka consumer group ") +
                        r[2].c_str() + ", not " + o.group +
                        "; rebuild them to change groups (see projector/README.md)");
    }
    if (r[0].as<bool>() && !r[1].as<bool>()) {
      throw WrongSource(
          "the read models in this database are projected from the event store; unset "
          "KAFKA_BROKERS, or rebuild them from Kafka (see projector/README.md)");
    }
    source_checked = true;
  }

  void start() {
    check_source();
    kafka::Properties props = {
        {"bootstrap.servers", o.brokers},
        {"group.id", o.group},
        {"client.id", o.group},
        {"session.timeout.ms", std::to_string(o.session_timeout.count())},
        {"heartbeat.interval.ms",
         std::to_string(std::max<long long>(o.session_timeout.count() / 4, 100))},
        // Fetch requests go out at once (latency of read-your-writes), not after the previous
        // segment's ack.
        {"socket.nagle.disable", "true"},
        // New topics (the relay creates them with their first event) are found this often.
        {"topic.metadata.refresh.interval.ms", "2000"},
    };
    props.insert(props.end(), o.extra.begin(), o.extra.end());
    kafka::GroupConsumer::Callbacks cb;
    cb.on_assign = [this](const std::vector<TopicPartition>& parts) { return on_assign(parts); };
    cb.on_revoke = [this](const std::vector<TopicPartition>& parts) {
      log::info("partitions revoked: {}", describe(parts));
      owned.clear();
    };
    cb.on_warning = [](const std::string& what) { log::warn("kafka: {}", what); };
    consumer = std::make_unique<kafka::GroupConsumer>(props, std::move(cb));
    std::string pattern = "^" + regex_escape(o.topic_prefix) + "\\.(";
    for (std::size_t i = 0; i < events::all_categories().size(); ++i) {
      if (i > 0) pattern += '|';
      pattern += std::string(events::all_categories()[i]);
    }
    pattern += ")$";
    consumer->subscribe({pattern});
    log::info("joined consumer group {} on topics matching {}", o.group, pattern);
  }

  static std::string describe(const std::vector<TopicPartition>& parts) {
    std::string out;
    for (const auto& p : parts) {
      if (!out.empty()) out += ", ";
      out += p.topic + "[" + std::to_string(p.partition) + "]";
    }
    return out.empty() ? "none" : out;
  }

  // The stored offsets of this group, by partition.
  std::map<TopicPartition, Owned> load(pqxx::transaction_base& tx) {
    std::map<TopicPartition, Owned> out;
    for (const auto& r : tx.exec_prepared("rmk_offsets", o.group)) {
      Owned st;
      if (!r[2].is_null()) st.stored = r[2].as<std::int64_t>();
      st.covered = {parse_xid(r[3].c_str()), r[4].as<std::int64_t>(), r[5].as<std::int64_t>()};
      out[{r[0].c_str(), r[1].as<int>()}] = st;
    }
    return out;
  }

  std::vector<kafka::TopicPartitionOffset> on_assign(const std::vector<TopicPartition>& parts) {
    owned.clear();
    std::map<TopicPartition, Owned> stored;
    {
      pqxx::work tx(connection());
      stored = load(tx);
    }
    std::vector<kafka::TopicPartitionOffset> out;
    for (const auto& tp : parts) {
      auto it = stored.find(tp);
      Owned st = it == stored.end() ? Owned{} : it->second;
      out.push_back({tp.topic, tp.partition, st.stored.value_or(kafka::GroupConsumer::kBeginning)});
      owned[tp] = st;
    }
    log::info("partitions assigned: {}", describe(parts));
    return out;
  }

  // After a batch failed the fence: another member has applied messages of these partitions
  // (or is applying them). Read on from what is stored.
  void resync(const std::vector<TopicPartition>& parts) {
    std::map<TopicPartition, Owned> stored;
    {
      pqxx::work tx(connection());
      stored = load(tx);
    }
    std::vector<kafka::TopicPartitionOffset> seek;
    for (const auto& tp : parts) {
      auto own = owned.find(tp);
      if (own == owned.end()) continue;
      auto it = stored.find(tp);
      own->second.stored = it == stored.end() ? std::nullopt : it->second.stored;
      own->second.pending.clear();
      seek.push_back(
          {tp.topic, tp.partition, own->second.stored.value_or(kafka::GroupConsumer::kBeginning)});
    }
    consumer->seek(seek, o.kafka_timeout);
  }

  int apply_messages(const std::vector<kafka::Message>& messages) {
    std::vector<events::RecordedEvent> batch;
    std::map<TopicPartition, std::int64_t> next;  // partition -> offset after its last message
    for (const auto& m : messages) {
      const TopicPartition tp{m.topic, m.partition};
      auto it = owned.find(tp);
      if (it == owned.end()) continue;
      if (it->second.stored && m.offset < *it->second.stored) continue;  // applied already
      // Each offset once, in order (a message handed out again after a seek or a rebalance).
      if (auto n = next.find(tp); n != next.end() && m.offset < n->second) continue;
      try {
        batch.push_back(event_from_envelope(m.value));
      } catch (const std::exception& e) {
        throw std::runtime_error(m.topic + " [" + std::to_string(m.partition) + "] offset " +
                                 std::to_string(m.offset) + ": " + e.what());
      }
      next[tp] = m.offset + 1;
    }
    if (batch.empty()) return 0;
    for (int attempt = 1;; ++attempt) {
      try {
        pqxx::work tx(connection());
        lock_live_version(tx, live_schema);
        apply_batch(tx, batch);
        std::vector<TopicPartition> moved;
        for (const auto& [tp, offset] : next) {
          const auto& st = owned.at(tp);
          const auto r =
              st.stored ? tx.exec_prepared("rmk_advance", o.group, tp.topic, tp.partition,
                                           *st.stored, offset)
                        : tx.exec_prepared("rmk_first", o.group, tp.topic, tp.partition, offset);
          if (r.empty()) moved.push_back(tp);
        }
        if (!moved.empty()) {
          tx.abort();
          ++fenced;
          std::vector<TopicPartition> all;
          for (const auto& [tp, offset] : next) all.push_back(tp);
          log::warn(
              "offsets of {} moved under this member (another member took them over): "
              "batch of {} events rolled back, reading on from the stored offsets",
              describe(moved), batch.size());
          resync(all);
          return 0;
        }
        tx.commit();
        break;
      } catch (const pqxx::transaction_rollback& e) {
        // A deadlock or serialization failure with another member's transaction on shared rows:
        // nothing was applied; try the same batch again.
        if (attempt >= 5) throw;
        log::warn("batch rolled back ({}), retrying", e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
      }
    }
    std::vector<kafka::TopicPartitionOffset> commit;
    for (const auto& [tp, offset] : next) {
      owned.at(tp).stored = offset;
      commit.push_back({tp.topic, tp.partition, offset});
    }
    consumer->commit_async(commit);  // for consumer-lag tools only
    return static_cast<int>(batch.size());
  }

  // Brings forward the places up to which the owned partitions are applied, and from all
  // partitions' places the read models' checkpoint.
  //
  // The relay writes to relay_status, after each Kafka transaction has committed, its checkpoint R
  // (a place in the store's global order) and the offset of the last message of every partition
  // as of R. A partition is applied up to R once the message at that offset is applied (its
  // stored next offset is past it); a partition with no message at all holds nothing up to R.
  // The least place over the partitions that have messages is the read models' checkpoint.
  void progress(bool after_batch) {
    std::optional<Place> relay;
    kafka::PartitionOffsets last_offsets;
    {
      pqxx::work tx(connection());
      auto r = tx.exec_prepared("rmk_relay", o.topic_prefix);
      if (!r.empty() && !r[0][3].is_null()) {
        relay = Place{parse_xid(r[0][0].c_str()), r[0][1].as<std::int64_t>(),
                      r[0][2].as<std::int64_t>()};
        last_offsets = kafka::parse_partition_offsets(r[0][3].c_str());
      }
    }
    if (!relay) return;  // nothing published yet (or by a relay that does not say its offsets)
    const Place R = *relay;

    std::vector<std::pair<TopicPartition, Place>> promoted;
    for (auto& [tp, st] : owned) {
      if (!st.covered.before(R)) continue;
      const auto found = last_offsets.find(tp);
      const std::int64_t last = found == last_offsets.end() ? -1 : found->second;
      if (st.pending.empty() || st.pending.back().place.before(R)) {
        if (!st.pending.empty() && st.pending.back().last == last) {
          st.pending.back().place = R;  // nothing new in the partition: the later place
        } else if (st.pending.size() >= 64) {
          st.pending.back() = {R, last};  // reached later, never wrongly
        } else {
          st.pending.push_back({R, last});
        }
      }
      const std::int64_t applied = st.stored.value_or(0);  // every offset below it is applied
      std::optional<Place> reached;
      while (!st.pending.empty() && st.pending.front().last < applied) {
        reached = st.pending.front().place;
        st.pending.pop_front();
      }
      if (reached && st.covered.before(*reached)) {
        st.covered = *reached;
        promoted.emplace_back(tp, *reached);
      }
    }

    // With nothing promoted here, the checkpoint can still move by other members' promotions:
    // look again now and then while it is behind the relay.
    const auto now = std::chrono::steady_clock::now();
    if (promoted.empty()) {
      if (written && !written->before(R)) return;
      if (after_batch && now < next_recompute) return;
    }
    next_recompute = now + o.progress_interval;

    pqxx::work tx(connection());
    tx.exec_prepared("rmk_progress_lock", o.group);
    for (const auto& [tp, p] : promoted) {
      tx.exec_prepared("rmk_covered", o.group, tp.topic, tp.partition, std::to_string(p.tx),
                       p.position, p.max_position);
    }
    std::map<TopicPartition, Owned> rows = load(tx);
    Place checkpoint = R;
    for (const auto& [tp, last] : last_offsets) {
      const auto row = rows.find(tp);
      const Place covered = row == rows.end() ? Place{} : row->second.covered;
      if (covered.before(checkpoint)) checkpoint = covered;
    }
    if (checkpoint.position > 0) {
      tx.exec_prepared("rmk_checkpoint", kCheckpointName, std::to_string(checkpoint.tx),
                       checkpoint.position, checkpoint.max_position);
    }
    tx.commit();
    written = checkpoint;
  }
};

KafkaProjector::KafkaProjector(std::string database_url, KafkaOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->url = std::move(database_url);
  if (options.group.empty()) options.group = options.topic_prefix + "-projector";
  impl_->o = std::move(options);
}

KafkaProjector::~KafkaProjector() {
  reset();
}

const KafkaOptions& KafkaProjector::options() const {
  return impl_->o;
}

std::int64_t KafkaProjector::fenced_batches() const {
  return impl_->fenced;
}

void KafkaProjector::reset() {
  impl_->consumer.reset();  // leaves the group; the revoke callback clears `owned`
  impl_->owned.clear();
  impl_->conn.reset();
  impl_->source_checked = false;  // the read models may have been rebuilt meanwhile
}

int KafkaProjector::run_once() {
  if (!impl_->consumer) impl_->start();
  // Polls no longer than the progress interval: the checkpoint moves with the relay's
  // checkpoint even when this member's partitions get nothing new.
  const auto messages =
      impl_->consumer->poll(std::min(impl_->o.poll_timeout, impl_->o.progress_interval),
                            static_cast<std::size_t>(impl_->o.batch_size));
  const int n = impl_->apply_messages(messages);
  const auto now = std::chrono::steady_clock::now();
  if (n > 0 || now >= impl_->next_progress) {
    impl_->progress(n > 0);
    impl_->next_progress = now + impl_->o.progress_interval;
  }
  return n;
}

void KafkaProjector::run(const std::atomic<bool>& stop) {
  int backoff_ms = 100;
  while (!stop.load()) {
    try {
      run_once();
      backoff_ms = 100;
    } catch (const WrongSource&) {
      reset();
      throw;
    } catch (const std::exception& e) {
      log::error("projection from Kafka failed, starting over in {} ms: {}", backoff_ms, e.what());
      reset();
      for (int waited = 0; waited < backoff_ms && !stop.load(); waited += 50) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      backoff_ms = std::min(backoff_ms * 2, 5000);
    }
  }
  reset();
}

}  // namespace shop::projector
