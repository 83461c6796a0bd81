// The outbox relay against a real PostgreSQL and a real Kafka broker: every committed event
// reaches its topic exactly once, in stream order, with the envelope as value, also when the
// relay is killed again and again in the middle of its work.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "shop/command/relay.h"
#include "shop/events/envelope.h"
#include "shop/events/json.h"
#include "shop/events/types.h"
#include "shop/infra/event_store.h"
#include "shop/infra/kafka.h"
#include "support/kafka_fixture.h"
#include "support/pg_fixture.h"
#include "support/processes.h"

namespace shop::command {
namespace {

namespace kafka = infra::kafka;
using namespace std::chrono_literals;

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    brokers_ = testing::test_kafka_brokers();
    url_ = testing::create_test_database("relay");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    prefix_ = testing::unique_kafka_name("relay");
  }
  void TearDown() override {
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  RelayOptions options() const {
    RelayOptions o;
    o.database_url = url_;
    o.brokers = brokers_;
    o.topic_prefix = prefix_;
    o.partitions = 3;
    o.batch_size = 50;  // many transactions, so that kills land inside them
    return o;
  }

  // Appends one event to each of `n` streams of the given categories (round robin), several
  // streams per transaction, some streams written more than once.
  void append_some(int n, const std::vector<std::string>& categories) {
    std::minstd_rand rng(static_cast<unsigned>(n));
    for (int i = 0; i < n; i += 2) {
      const auto& category = categories[static_cast<std::size_t>(i / 2) % categories.size()];
      const std::string stream = category + "-" + std::to_string(rng() % 7);
      auto s = store_->begin();
      s->lock_stream(stream);
      const auto version = s->stream_version(stream);
      s->append({{stream,
                  version,
                  {{new_uuid(), "TestHappened", 1, R"({"i": )" + std::to_string(i) + "}"},
                   {new_uuid(), "TestHappened", 1, R"({"text": "a \"quoted\"\nline"})"}}}},
                {new_uuid(), new_uuid(), std::nullopt, format_time(SystemClock().now())});
      s->commit();
    }
  }

  std::vector<events::RecordedEvent> stored() {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    std::vector<events::RecordedEvent> out;
    for (const auto& row : tx.exec(std::string("SELECT ") + infra::kEventColumns +
                                   " FROM events ORDER BY position")) {
      out.push_back(infra::event_from_row(row));
    }
    return out;
  }

  // Every committed message of every topic of this test's prefix, read from offset 0.
  std::vector<kafka::Message> published(const std::vector<std::string>& categories) {
    kafka::Consumer consumer({{"bootstrap.servers", brokers_}});
    std::vector<kafka::TopicPartitionOffset> parts;
    for (const auto& c : categories) {
      const auto topic = prefix_ + "." + c;
      const int n = consumer.partition_count(topic, 10s);
      for (int p = 0; p < n; ++p) parts.push_back({topic, p, 0});
    }
    std::vector<kafka::Message> out;
    kafka::read_to_end(
        consumer, parts, [&](const kafka::Message& m) { out.push_back(m); }, 60s);
    return out;
  }

  // The published messages are exactly the stored events: each once, in its stream's order
  // within its partition, on the topic of its category, with the envelope as value.
  void expect_exactly_once(const std::vector<std::string>& categories) {
    const auto events = stored();
    const auto messages = published(categories);
    std::map<std::string, const events::RecordedEvent*> by_id;
    for (const auto& e : events) by_id[e.event_id] = &e;
    std::set<std::string> seen;
    std::map<std::string, std::int64_t> last_version;  // per stream, in partition order
    std::map<std::pair<std::string, int>, std::string> partition_of_stream;
    for (const auto& m : messages) {
      const auto id = m.header("event_id");
      ASSERT_TRUE(id.has_value()) << "message without event_id header at " << m.topic << "/"
                                  << m.partition << "@" << m.offset;
      EXPECT_TRUE(seen.insert(*id).second) << "published twice: " << *id;
      auto it = by_id.find(*id);
      ASSERT_NE(it, by_id.end()) << "published but not in the store: " << *id;
      const auto& e = *it->second;
      std::string envelope;
      events::append_envelope_json(envelope, e);
      EXPECT_EQ(m.value, envelope);
      EXPECT_EQ(m.key, e.stream_id);
      EXPECT_EQ(m.topic, Relay::topic_for(prefix_, e.stream_id));
      EXPECT_EQ(m.header("event_type"), e.type);
      EXPECT_EQ(m.header("schema_version"), std::to_string(e.schema_version));
      EXPECT_EQ(m.header("position"), std::to_string(e.position));
      auto& last = last_version[e.stream_id];
      EXPECT_EQ(e.stream_version, last + 1) << "out of order in " << e.stream_id;
      last = e.stream_version;
    }
    EXPECT_EQ(seen.size(), events.size()) << "events never published";
    EXPECT_EQ(messages.size(), events.size());

    // relay_status names the offset of every partition's last message (what a projector reading
    // Kafka waits for before it says an event is visible).
    kafka::PartitionOffsets expected;
    for (const auto& m : messages) {
      auto& last = expected[{m.topic, m.partition}];
      last = std::max(last, m.offset);
    }
    pqxx::connection c(url_);
    pqxx::work tx(c);
    const auto r =
        tx.exec_params("SELECT last_offsets::text FROM relay_status WHERE name = $1", prefix_);
    ASSERT_EQ(r.size(), 1u);
    ASSERT_FALSE(r[0][0].is_null());
    auto stated = kafka::parse_partition_offsets(r[0][0].c_str());
    std::erase_if(stated, [&](const auto& kv) {
      for (const auto& category : categories) {
        if (kv.first.topic == prefix_ + "." + category) return false;
      }
      return true;
    });
    EXPECT_EQ(stated, expected);
  }

  // The last event in the global order, as "tx/position".
  std::string last_event() {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    return tx
        .exec(
            "SELECT tx_id::text || '/' || position FROM events "
            "ORDER BY events.tx_id DESC, position DESC LIMIT 1")[0][0]
        .c_str();
  }
  // Waits until the relay's status (written after each committed batch) is at or past `last`
  // in the global order.
  bool wait_published(const std::string& last, std::chrono::seconds timeout) {
    const auto slash = last.find('/');
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pqxx::connection c(url_);
      pqxx::work tx(c);
      auto r = tx.exec_params(
          "SELECT (last_tx, last_position) >= ($2::xid8, $3::bigint) FROM relay_status "
          "WHERE name = $1",
          prefix_, last.substr(0, slash), last.substr(slash + 1));
      if (!r.empty() && r[0][0].as<bool>()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // Publishes until the relay's checkpoint is the last stored event. The store's horizon is the
  // cluster's: a transaction of another database (tests running in parallel) can keep new
  // events out of reach for a moment, so "nothing to publish" is not "done".
  void drain(Relay& relay) {
    const auto last = last_event();
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    for (;;) {
      while (relay.run_once() > 0) {
      }
      const auto cp = relay.checkpoint();
      if (cp.tx + "/" + std::to_string(cp.position) == last) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the relay never reached " << last;
      std::this_thread::sleep_for(10ms);
    }
  }

  std::string brokers_, url_, prefix_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
};

TEST_F(RelayTest, PublishesEveryEventOnceInStreamOrderOnTheTopicOfItsCategory) {
  const std::vector<std::string> categories = {"order", "cart", "product"};
  append_some(120, categories);
  Relay relay(options());
  drain(relay);
  expect_exactly_once(categories);
  const auto s = relay.status();
  EXPECT_EQ(s.published_events, 120);
  EXPECT_EQ(s.published_position, s.store_position);
  // The lag is visible in PostgreSQL too.
  pqxx::connection c(url_);
  pqxx::work tx(c);
  EXPECT_EQ(
      tx.exec_params("SELECT published_position FROM relay_status WHERE name = $1", prefix_)[0][0]
          .as<std::int64_t>(),
      s.store_position);
}

TEST_F(RelayTest, ANewRelayContinuesFromTheCheckpointCommittedToKafka) {
  const std::vector<std::string> categories = {"order", "payment"};
  append_some(40, categories);
  {
    Relay first(options());
    drain(first);
  }
  append_some(30, categories);
  Relay second(options());
  drain(second);
  EXPECT_EQ(second.status().published_events, 30);
  expect_exactly_once(categories);
}

// A checkpoint written before checkpoints carried the partitions' last offsets: the relay finds
// them by reading the topics, and says them in relay_status.
TEST_F(RelayTest, FindsThePartitionsLastOffsetsWhenItsCheckpointLacksThem) {
  const std::vector<std::string> categories = {"order", "cart"};
  append_some(60, categories);
  infra::GlobalCheckpoint at;
  std::int64_t published = 0;
  {
    Relay first(options());
    drain(first);
    at = first.checkpoint();
    published = first.status().published_position;
  }
  {
    kafka::TransactionalProducer producer(
        {{"bootstrap.servers", brokers_}, {"transactional.id", prefix_ + "-old-format"}});
    producer.init_transactions(30s);
    producer.begin_transaction();
    producer.produce(prefix_ + "-relay-checkpoints", "relay",
                     R"({"tx": ")" + at.tx + R"(", "position": )" + std::to_string(at.position) +
                         R"(, "published_position": )" + std::to_string(published) + "}",
                     {});
    producer.commit_transaction(30s);
  }
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec_params("UPDATE relay_status SET last_offsets = NULL WHERE name = $1", prefix_);
    tx.commit();
  }
  Relay second(options());
  second.start();
  EXPECT_EQ(second.checkpoint().position, at.position);
  expect_exactly_once(categories);
  append_some(20, categories);
  drain(second);
  expect_exactly_once(categories);
}

TEST_F(RelayTest, CreatesTopicsWithThePartitionsAskedForAndKeepsEventsForever) {
  append_some(4, {"user"});
  auto o = options();
  o.partitions = 5;
  Relay relay(o);
  drain(relay);
  kafka::Consumer consumer({{"bootstrap.servers", brokers_}});
  EXPECT_EQ(consumer.partition_count(prefix_ + ".user", 10s), 5);
  std::map<std::string, std::string> config;
  for (const auto& [k, v] : consumer.topic_config(prefix_ + ".user", 10s)) config[k] = v;
  EXPECT_EQ(config["retention.ms"], "-1");
  EXPECT_EQ(config["retention.bytes"], "-1");
  // An analyst's view: kcat reads the topic from the beginning with the relay's headers.
  std::string out;
  ASSERT_EQ(testing::run_command(
                "/usr/bin/env",
                {"kcat", "-b", brokers_, "-C", "-t", prefix_ + ".user", "-e", "-q", "-f", "%h\\n"},
                {}, out),
            0)
      << out;
  EXPECT_NE(out.find("event_type=TestHappened"), std::string::npos) << out;
  // And the values: one JSON envelope per message, exactly the stored events of the category.
  ASSERT_EQ(testing::run_command(
                "/usr/bin/env",
                {"kcat", "-b", brokers_, "-C", "-t", prefix_ + ".user", "-e", "-q", "-f", "%s\n"},
                {}, out),
            0)
      << out;
  std::set<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    json::Document d;
    EXPECT_TRUE(json::parse(line, d).empty() && d.IsObject()) << line;
    EXPECT_EQ(json::get_string(d, "type"), "TestHappened") << line;
    lines.insert(line);
  }
  std::set<std::string> expected;
  for (const auto& e : stored()) {
    std::string envelope;
    events::append_envelope_json(envelope, e);
    expected.insert(envelope);
  }
  EXPECT_EQ(lines, expected);
}

// The real binary, killed with SIGKILL at random moments while events keep being appended, and
// started again each time: in the end every event is in Kafka exactly once, in order.
TEST_F(RelayTest, KilledAgainAndAgainMidStreamLeavesEveryEventExactlyOnce) {
  const std::vector<std::string> categories = {"order", "cart", "product", "payment"};
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    while (writing.load()) {
      append_some(20, categories);
      std::this_thread::sleep_for(5ms);
    }
  });
  const std::map<std::string, std::string> env = {{"DATABASE_URL", url_},
                                                  {"KAFKA_BROKERS", brokers_},
                                                  {"KAFKA_TOPIC_PREFIX", prefix_},
                                                  {"RELAY_BATCH_SIZE", "40"},
                                                  {"LOG_LEVEL", "info"}};
  const std::string log = ::testing::TempDir() + prefix_ + ".log";
  std::minstd_rand rng(42);
  for (int round = 0; round < 8; ++round) {
    testing::ChildProcess relay(SHOP_RELAY_BIN, {}, env, log);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 1500));
    ASSERT_TRUE(relay.running()) << relay.log();
    relay.kill();
  }
  writing = false;
  writer.join();
  {
    testing::ChildProcess relay(SHOP_RELAY_BIN, {}, env, log);
    // Wait until the relay's checkpoint is the last event in the global order.
    ASSERT_TRUE(wait_published(last_event(), 120s)) << relay.log();
    relay.terminate();
  }
  expect_exactly_once(categories);
}

// An operator deletes a topic while the relay runs: the relay notices, creates it again and
// publishes every event of its category again, in order, before the newer ones.
TEST_F(RelayTest, ATopicDeletedBehindItsBackGetsAllItsEventsBack) {
  const std::vector<std::string> categories = {"order", "cart"};
  append_some(40, categories);
  auto o = options();
  o.topic_check_interval = 200ms;
  o.kafka_timeout = 10s;
  Relay relay(o);
  std::atomic<bool> stop{false};
  std::thread running([&] { relay.run(stop); });
  ASSERT_TRUE(wait_published(last_event(), 60s));
  testing::delete_test_topic(prefix_ + ".order");
  kafka::Consumer consumer({{"bootstrap.servers", brokers_}});
  for (int i = 0; i < 100 && consumer.partition_count(prefix_ + ".order", 10s) > 0; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  append_some(20, categories);
  const bool caught_up = wait_published(last_event(), 90s);
  // The repair runs before the newer events and ends with them: wait for the topic to fill.
  std::this_thread::sleep_for(1s);
  stop = true;
  running.join();
  ASSERT_TRUE(caught_up);
  expect_exactly_once(categories);
}

// Kafka away: no broker at all when the relay starts, then a broker that stops and starts again
// while events keep coming. The store takes every append throughout; the relay retries, and in
// the end every event is in Kafka exactly once. This test runs a broker of its own (the shared
// one serves the other tests).
TEST_F(RelayTest, BrokerDownAtStartAndRestartedMidStreamLosesAndDuplicatesNothing) {
  const auto port = testing::free_port();
  const auto controller_port = testing::free_port();
  const std::string dir = ::testing::TempDir() + testing::unique_kafka_name("broker");
  const std::map<std::string, std::string> broker_env = {
      {"KAFKA_CONTROLLER_PORT", std::to_string(controller_port)}};
  auto broker = [&](const std::string& command) {
    std::string out;
    std::vector<std::string> args = {SHOP_KAFKA_SH, command, dir};
    if (command == "start-local") args.push_back(std::to_string(port));
    const int rc = testing::run_command("/bin/bash", args, broker_env, out);
    EXPECT_EQ(rc, 0) << "kafka.sh " << command << ": " << out;
    return rc == 0;
  };
  struct StopBroker {
    std::function<void()> f;
    ~StopBroker() { f(); }
  } stop_broker{[&] {
    broker("stop-local");
    std::string out;
    testing::run_command("/bin/rm", {"-rf", dir}, {}, out);
  }};
  brokers_ = "127.0.0.1:" + std::to_string(port);

  const std::vector<std::string> categories = {"order", "cart", "product"};
  std::atomic<bool> writing{true};
  std::atomic<int> appends{0};
  std::thread writer([&] {
    while (writing.load()) {
      append_some(10, categories);
      appends += 5;
      std::this_thread::sleep_for(20ms);
    }
  });
  const std::map<std::string, std::string> env = {{"DATABASE_URL", url_},
                                                  {"KAFKA_BROKERS", brokers_},
                                                  {"KAFKA_TOPIC_PREFIX", prefix_},
                                                  {"RELAY_BATCH_SIZE", "40"},
                                                  {"LOG_LEVEL", "info"}};
  const std::string log = ::testing::TempDir() + prefix_ + ".log";
  testing::ChildProcess relay(SHOP_RELAY_BIN, {}, env, log);
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(relay.running()) << relay.log();
  const int before_broker = appends.load();
  EXPECT_GT(before_broker, 0) << "the store must take appends while Kafka is away";

  ASSERT_TRUE(broker("start-local"));
  ASSERT_TRUE(wait_published(last_event(), 60s)) << relay.log();
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(broker("stop-local"));  // mid-stream: the writer keeps appending
  const int at_stop = appends.load();
  std::this_thread::sleep_for(2s);
  EXPECT_GT(appends.load(), at_stop) << "the store must take appends while Kafka is away";
  ASSERT_TRUE(broker("start-local"));
  std::this_thread::sleep_for(2s);
  writing = false;
  writer.join();
  ASSERT_TRUE(wait_published(last_event(), 120s)) << relay.log();
  EXPECT_TRUE(relay.running()) << relay.log();
  relay.terminate();
  expect_exactly_once(categories);
}

}  // namespace
}  // namespace shop::command
