// The projector reading Kafka, against a real PostgreSQL and a real broker, with the real relay
// publishing the events: the read models come out exactly as the store-driven projector makes
// them (every rm_ table compared row by row), also with two members sharing the partitions,
// one of them killed with SIGKILL again and again while events flow; a member that still
// believes it owns a partition another member has moved on is fenced off; and the checkpoint
// the query API waits on for X-Min-Position never covers an event that is not applied.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "pg/read_models_support.h"
#include "shop/command/relay.h"
#include "shop/command/service.h"
#include "shop/infra/crypto.h"
#include "shop/infra/event_store.h"
#include "shop/infra/kafka.h"
#include "shop/projector/kafka_projector.h"
#include "shop/projector/projector.h"
#include "support/kafka_fixture.h"
#include "support/pg_fixture.h"
#include "support/processes.h"

namespace shop::projector {
namespace {

namespace kafka = infra::kafka;
using namespace std::chrono_literals;

class ProjectorKafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    brokers_ = testing::test_kafka_brokers();
    url_ = testing::create_test_database("projector_kafka");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(std::string(40, 'k'), "shop");
    service_ = std::make_unique<command::CommandService>(*store_, *jwt_, clock_,
                                                         command::ServiceOptions{});
    conn_ = std::make_unique<pqxx::connection>(url_);
    prefix_ = testing::unique_kafka_name("projector");
    group_ = prefix_ + "-projector";
  }
  void TearDown() override {
    conn_.reset();
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  command::RelayOptions relay_options() const {
    command::RelayOptions o;
    o.database_url = url_;
    o.brokers = brokers_;
    o.topic_prefix = prefix_;
    o.partitions = 3;
    o.batch_size = 40;  // many Kafka transactions
    return o;
  }

  KafkaOptions kafka_options() const {
    KafkaOptions o;
    o.brokers = brokers_;
    o.topic_prefix = prefix_;
    o.group = group_;
    o.batch_size = 50;
    o.poll_timeout = 50ms;
    o.progress_interval = 20ms;
    o.session_timeout = 6000ms;
    o.extra = {{"topic.metadata.refresh.interval.ms", "500"}};
    return o;
  }

  // "tx/position" of the last event in the global order.
  std::string last_event() {
    pqxx::work tx(*conn_);
    return tx
        .exec(
            "SELECT tx_id::text || '/' || position FROM events "
            "ORDER BY tx_id DESC, position DESC LIMIT 1")[0][0]
        .c_str();
  }
  std::string row_text(const std::string& sql) {
    pqxx::work tx(*conn_);
    auto r = tx.exec_params(sql, prefix_);
    return r.empty() || r[0][0].is_null() ? "" : r[0][0].c_str();
  }
  std::string relay_place() {
    return row_text(
        "SELECT last_tx::text || '/' || last_position FROM relay_status WHERE name = $1");
  }
  std::string checkpoint() {
    return row_text(
        "SELECT last_tx::text || '/' || last_position FROM rm_checkpoints "
        "WHERE name = 'read_models' AND $1::text IS NOT NULL");
  }

  // Runs `step` until `done`, or fails the test after `timeout`.
  template <class Done, class Step>
  void until(Done done, Step step, std::chrono::seconds timeout, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out waiting for " << what;
      step();
    }
  }

  // Publishes every stored event with the real relay (in this process).
  void publish_all() {
    command::Relay relay(relay_options());
    const auto last = last_event();
    until([&] { return relay_place() == last; },
          [&] {
            if (relay.run_once() == 0) std::this_thread::sleep_for(10ms);
          },
          120s, "the relay to publish up to " + last);
  }

  void wait_until_projected(const std::function<std::string()>& logs = {}) {
    const auto last = last_event();
    const auto deadline = std::chrono::steady_clock::now() + 180s;
    while (checkpoint() != last) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "the checkpoint " << checkpoint() << " never reached " << last << "\n"
          << (logs ? logs() : "");
      std::this_thread::sleep_for(50ms);
    }
  }

  // The read models as the store-driven projector builds them from scratch.
  std::string store_projection() {
    testing::reset_read_models(*conn_);
    Projector p(url_, {.batch_size = 100});
    const auto last = last_event();
    until([&] { return checkpoint() == last; },
          [&] {
            if (p.run_once() == 0) std::this_thread::sleep_for(5ms);
          },
          120s, "the store projection");
    return testing::dump_read_models(*conn_);
  }

  SystemClock clock_;
  std::string brokers_, url_, prefix_, group_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<command::CommandService> service_;
  std::unique_ptr<pqxx::connection> conn_;
};

// Runs a projector on its own thread until destroyed.
class Running {
 public:
  Running(const std::string& url, const KafkaOptions& o) : p_(url, o) {
    thread_ = std::thread([this] { p_.run(stop_); });
  }
  ~Running() {
    stop_ = true;
    thread_.join();
  }
  KafkaProjector& projector() { return p_; }

 private:
  KafkaProjector p_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The group member on its own: it starts each partition where on_assign says, hands out every
// message once, and reports a partition consumed up to its end, transaction markers included (what
// the projector's read-your-writes checkpoint relies on); a second member makes the group
// rebalance, revoking everything first.
TEST(GroupConsumerTest, StartsWhereOnAssignSaysAndReachesTheEndPastTransactionMarkers) {
  const auto brokers = testing::test_kafka_brokers();
  const auto topic = testing::create_test_topic("group-consumer", 2);
  {
    kafka::TransactionalProducer producer(
        {{"bootstrap.servers", brokers}, {"transactional.id", testing::unique_kafka_name("gc")}});
    producer.init_transactions(30s);
    for (int t = 0; t < 3; ++t) {
      producer.begin_transaction();
      for (int i = 0; i < 10; ++i) {
        producer.produce(topic, "key-" + std::to_string(i),
                         "t" + std::to_string(t) + "-" + std::to_string(i), {});
      }
      producer.commit_transaction(30s);
    }
  }
  kafka::Consumer reader({{"bootstrap.servers", brokers}, {"isolation.level", "read_uncommitted"}});
  const std::int64_t end0 = reader.watermarks(topic, 0, 10s).second;
  const std::int64_t end1 = reader.watermarks(topic, 1, 10s).second;

  const auto group = testing::unique_kafka_name("gc-group");
  int assigned = 0, revoked = 0;
  kafka::GroupConsumer::Callbacks cb;
  cb.on_assign = [&](const std::vector<kafka::TopicPartition>& parts) {
    ++assigned;
    std::vector<kafka::TopicPartitionOffset> out;
    for (const auto& p : parts) {
      out.push_back(
          {p.topic, p.partition, p.partition == 0 ? 3 : kafka::GroupConsumer::kBeginning});
    }
    return out;
  };
  cb.on_revoke = [&](const std::vector<kafka::TopicPartition>&) { ++revoked; };
  kafka::GroupConsumer member({{"bootstrap.servers", brokers}, {"group.id", group}}, cb);
  member.subscribe({"^" + topic + "$"});
  std::vector<kafka::Message> got;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (member.consumed_to({topic, 0}) < end0 || member.consumed_to({topic, 1}) < end1) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << member.consumed_to({topic, 0}) << "/" << end0 << " " << member.consumed_to({topic, 1})
        << "/" << end1;
    for (auto& m : member.poll(100ms, 100)) got.push_back(std::move(m));
  }
  EXPECT_EQ(assigned, 1);
  std::map<int, std::int64_t> first;
  for (const auto& m : got) {
    if (!first.count(m.partition)) first[m.partition] = m.offset;
  }
  EXPECT_GE(first[0], 3);
  EXPECT_EQ(first[1], 0);
  // Every committed message once, except those of partition 0 below offset 3.
  std::size_t skipped = 0;
  kafka::Consumer committed({{"bootstrap.servers", brokers}});
  kafka::read_to_end(
      committed, {{topic, 0, 0}}, [&](const kafka::Message& m) { skipped += m.offset < 3 ? 1 : 0; },
      30s);
  EXPECT_EQ(got.size() + skipped, 30u);

  // A second member: everything is revoked, then shared.
  kafka::GroupConsumer::Callbacks cb2;
  cb2.on_assign = [&](const std::vector<kafka::TopicPartition>& parts) {
    std::vector<kafka::TopicPartitionOffset> out;
    for (const auto& p : parts)
      out.push_back({p.topic, p.partition, kafka::GroupConsumer::kBeginning});
    return out;
  };
  kafka::GroupConsumer second({{"bootstrap.servers", brokers}, {"group.id", group}}, cb2);
  second.subscribe({"^" + topic + "$"});
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (member.assignment().size() + second.assignment().size() < 2 || revoked == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "no rebalance";
    member.poll(50ms, 100);
    second.poll(50ms, 100);
  }
  EXPECT_EQ(member.assignment().size(), 1u);
  EXPECT_EQ(second.assignment().size(), 1u);
  EXPECT_GE(assigned, 2);
  testing::delete_test_topic(topic);
}

TEST_F(ProjectorKafkaTest, TwoMembersBuildTheReadModelsTheStoreDrivenProjectorBuilds) {
  testing::Scenario scenario(*service_, 7);
  scenario.setup();
  scenario.run(300);
  scenario.finish();
  const std::string reference = store_projection();
  testing::reset_read_models(*conn_);

  // The members start before the relay has created any topic.
  {
    Running a(url_, kafka_options());
    Running b(url_, kafka_options());
    std::this_thread::sleep_for(1s);
    publish_all();
    wait_until_projected();
  }
  EXPECT_EQ(testing::dump_read_models(*conn_), reference);

  pqxx::work tx(*conn_);
  // The checkpoint the query API reads: the last event, with the greatest position.
  EXPECT_EQ(
      tx.exec("SELECT max_position = (SELECT max(position) FROM events) FROM rm_checkpoints")[0][0]
          .as<bool>(),
      true);
  // Every partition of every topic has its row, and each message was applied once: the stored
  // offsets are the ends of the partitions.
  auto rows = tx.exec_params(
      "SELECT topic, partition, coalesce(next_offset, 0) FROM rm_kafka_offsets "
      "WHERE consumer_group = $1 ORDER BY topic, partition",
      group_);
  EXPECT_EQ(rows.size(), events::all_categories().size() * 3u);  // every category has events
  kafka::Consumer consumer({{"bootstrap.servers", brokers_}});
  std::int64_t messages = 0;
  for (const auto& r : rows) {
    const auto [low, high] = consumer.watermarks(r[0].c_str(), r[1].as<int>(), 10s);
    EXPECT_LE(r[2].as<std::int64_t>(), high);
    EXPECT_GE(r[2].as<std::int64_t>() + 1, high) << r[0].c_str() << " [" << r[1].c_str() << "]";
    messages += r[2].as<std::int64_t>() > 0 ? 1 : 0;
  }
  EXPECT_GT(messages, 6);
}

// A member whose partition was taken over (and moved on) by another member, without having
// noticed: its batch fails the offset check, is rolled back, and it reads on from the offset
// the other member stored. Nothing is applied twice or lost.
TEST_F(ProjectorKafkaTest, ABatchStartingFromAnOffsetThatMovedIsRolledBackAndReadAgain) {
  testing::Scenario scenario(*service_, 11);
  scenario.setup();
  scenario.run(150);
  publish_all();
  KafkaProjector p(url_, kafka_options());
  const auto done = [&] { return checkpoint() == last_event(); };
  until(
      done, [&] { p.run_once(); }, 120s, "the first projection");

  scenario.run(200);
  publish_all();
  // The partition with the most new messages: another member applies half of them and stores
  // its offset, while `p` still has its own idea of the offset.
  kafka::Consumer consumer({{"bootstrap.servers", brokers_}});
  std::string topic;
  int partition = -1;
  std::int64_t from = 0, pending = 0;
  {
    pqxx::work tx(*conn_);
    for (const auto& r : tx.exec_params("SELECT topic, partition, coalesce(next_offset, 0) "
                                        "FROM rm_kafka_offsets WHERE consumer_group = $1",
                                        group_)) {
      const auto high = consumer.watermarks(r[0].c_str(), r[1].as<int>(), 10s).second;
      if (high - r[2].as<std::int64_t>() > pending) {
        pending = high - r[2].as<std::int64_t>();
        topic = r[0].c_str();
        partition = r[1].as<int>();
        from = r[2].as<std::int64_t>();
      }
    }
  }
  ASSERT_GT(pending, 10) << "no partition with new messages";
  std::vector<kafka::Message> taken;
  kafka::read_to_end(
      consumer, {{topic, partition, from}},
      [&](const kafka::Message& m) {
        if (static_cast<std::int64_t>(taken.size()) < pending / 3) taken.push_back(m);
      },
      60s);
  ASSERT_FALSE(taken.empty());
  {
    pqxx::work tx(*conn_);
    prepare_statements(tx.conn());
    std::vector<events::RecordedEvent> evs;
    for (const auto& m : taken) evs.push_back(event_from_envelope(m.value));
    apply_batch(tx, evs);
    EXPECT_EQ(tx.exec_params("UPDATE rm_kafka_offsets SET next_offset = $4 WHERE consumer_group = "
                             "$1 AND topic = $2 AND partition = $3 AND next_offset = $5",
                             group_, topic, partition, taken.back().offset + 1, from)
                  .affected_rows(),
              1u);
    tx.commit();
  }
  until(
      done, [&] { p.run_once(); }, 120s, "the projection after the takeover");
  EXPECT_GE(p.fenced_batches(), 1);
  const std::string projected = testing::dump_read_models(*conn_);
  EXPECT_EQ(projected, store_projection());
}

TEST_F(ProjectorKafkaTest, RefusesReadModelsProjectedFromTheStore) {
  service_->create_category({new_uuid(), "Cables", std::nullopt},
                            command::Context::make(std::nullopt));
  store_projection();
  KafkaProjector p(url_, kafka_options());
  try {
    p.run_once();
    ADD_FAILURE() << "projected from Kafka into read models built from the store";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("event store"), std::string::npos) << e.what();
  }
}

// Two projector processes in one consumer group; one or the other is killed with SIGKILL every
// few seconds (a batch may be cut anywhere, partitions move at every kill and restart) while
// commands keep coming and the relay keeps publishing. In the end the read models equal a
// projection from scratch out of the store. Meanwhile the checkpoint never covers an event whose
// effect is not visible.
TEST_F(ProjectorKafkaTest, TwoMembersKilledAgainAndAgainApplyEveryEventOnce) {
  testing::Scenario scenario(*service_, 23);
  scenario.setup();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      scenario.step();
      std::this_thread::sleep_for(2ms);
    }
  });
  std::atomic<bool> relay_stop{false};
  std::thread relay([&] {
    command::Relay r(relay_options());
    r.run(relay_stop);
  });
  // Read-your-writes: whenever the checkpoint covers an event that creates a row, the row is
  // there (the checkpoint is read first, the rows after: they only grow).
  std::atomic<int> checks{0}, violations{0};
  std::string violation;
  std::thread checker([&] {
    pqxx::connection c(url_);
    std::string last;
    while (!stop.load() || !relay_stop.load()) {
      try {
        pqxx::work tx(c);
        auto cp = tx.exec(
            "SELECT last_tx::text, last_position FROM rm_checkpoints "
            "WHERE name = 'read_models'");
        if (!cp.empty()) {
          auto missing = tx.exec_params(
              "SELECT e.position, e.type FROM events e WHERE (e.tx_id, e.position) <= ($1::xid8, "
              "$2::bigint) AND ((e.type = 'OrderPlaced' AND NOT EXISTS (SELECT 1 FROM rm_orders o "
              "WHERE o.id = (e.data->>'order_id')::uuid)) OR (e.type = 'PaymentInitiated' AND NOT "
              "EXISTS (SELECT 1 FROM rm_payments p WHERE p.payment_id = "
              "(e.data->>'payment_id')::uuid)) OR (e.type = 'UserRegistered' AND NOT EXISTS "
              "(SELECT 1 FROM rm_users u WHERE u.id = (e.data->>'user_id')::uuid)) OR (e.type = "
              "'OrderPaid' AND NOT EXISTS (SELECT 1 FROM rm_orders o WHERE o.id = "
              "(e.data->>'order_id')::uuid AND o.status_history @> '[{\"status\": \"paid\"}]'))) "
              "LIMIT 1",
              cp[0][0].c_str(), cp[0][1].as<std::int64_t>());
          ++checks;
          if (!missing.empty() && violations++ == 0) {
            violation = std::string(missing[0][1].c_str()) + " at position " +
                        missing[0][0].c_str() + " under checkpoint " + cp[0][0].c_str() + "/" +
                        cp[0][1].c_str();
            for (const auto& r : tx.exec(
                     "SELECT topic || '[' || partition || '] next ' || coalesce(next_offset::text, "
                     "'-') || ' covered ' || covered_tx::text || '/' || covered_position || ' at ' "
                     "|| updated_at::text FROM rm_kafka_offsets ORDER BY topic, partition")) {
              violation += std::string("\n") + r[0].c_str();
            }
            for (const auto& r :
                 tx.exec("SELECT tx_id::text, stream_id FROM events WHERE position = " +
                         std::string(missing[0][0].c_str()))) {
              violation += std::string("\nevent tx ") + r[0].c_str() + " stream " + r[1].c_str();
            }
          }
        }
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(30ms);
    }
  });

  const std::map<std::string, std::string> env = {{"DATABASE_URL", url_},
                                                  {"KAFKA_BROKERS", brokers_},
                                                  {"KAFKA_TOPIC_PREFIX", prefix_},
                                                  {"KAFKA_CONSUMER_GROUP", group_},
                                                  {"PROJECTOR_BATCH_SIZE", "30"},
                                                  {"PROJECTOR_KAFKA_SESSION_TIMEOUT_MS", "6000"},
                                                  {"LOG_LEVEL", "info"}};
  const std::string log = ::testing::TempDir() + prefix_ + ".log";
  auto start = [&] {
    return std::make_unique<testing::ChildProcess>(SHOP_PROJECTOR_BIN, std::vector<std::string>{},
                                                   env, log);
  };
  std::unique_ptr<testing::ChildProcess> members[2] = {start(), start()};
  // A killed member keeps its partitions until its session times out (6 s), then the group
  // rebalances: kill after that, while both members are applying batches.
  std::minstd_rand rng(5);
  for (int round = 0; round < 6; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(7500 + rng() % 4000));
    auto& victim = members[round % 2];
    ASSERT_TRUE(victim->running()) << victim->log();
    victim->kill();
    victim = start();
  }
  stop = true;
  writer.join();
  const auto logs = [&] { return members[0]->log(); };
  wait_until_projected(logs);
  members[0]->terminate();
  members[1]->terminate();
  relay_stop = true;
  relay.join();
  checker.join();
  EXPECT_GT(checks.load(), 20);
  EXPECT_EQ(violations.load(), 0) << "the checkpoint covered an event whose effect was not "
                                     "visible: "
                                  << violation;

  const std::string projected = testing::dump_read_models(*conn_);
  EXPECT_EQ(projected, store_projection());
}

}  // namespace
}  // namespace shop::projector
