// shopctl replay --source kafka against the store replay: for the same events, the same bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>

#include "analyst.h"
#include "shop/command/relay.h"
#include "shop/events/types.h"
#include "shop/infra/config.h"
#include "shop/infra/event_store.h"
#include "support/kafka_fixture.h"
#include "support/pg_fixture.h"

namespace shop::tools {
namespace {

class KafkaReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    brokers_ = testing::test_kafka_brokers();
    url_ = testing::create_test_database("kafka_replay");
    prefix_ = testing::unique_kafka_name("replay");
    infra::ConnectionPool pool(url_, 2, infra::prepare_event_store);
    infra::EventStore store(pool);
    // Events of several categories and types, with payloads that need escaping, several per
    // transaction, one stream written more than once.
    const std::vector<std::pair<std::string, std::string>> payloads = {
        {"OrderPlaced", R"({"note": "a \"quoted\", comma\nnew line", "total": 129999})"},
        {"CartItemAdded", R"({"name": "Écran 27\" — 4K", "quantity": 2})"},
        {"PaymentInitiated",
         R"({"amount": 1.50, "tags": ["a", "b"], "nested": {"z": 1, "a": null}})"},
    };
    for (int i = 0; i < 30; ++i) {
      const auto& [type, data] = payloads[static_cast<std::size_t>(i) % payloads.size()];
      const std::string category = type == "OrderPlaced"     ? "order"
                                   : type == "CartItemAdded" ? "cart"
                                                             : "payment";
      const std::string stream = category + "-" + std::to_string(i % 4);
      auto s = store.begin();
      s->lock_stream(stream);
      const auto version = s->stream_version(stream);
      s->append({{stream, version, {{new_uuid(), type, 1, data}, {new_uuid(), type, 1, data}}}},
                {new_uuid(), new_uuid(),
                 i % 3 == 0 ? std::optional<std::string>() : std::optional<std::string>(new_uuid()),
                 format_time(SystemClock().now())});
      s->commit();
    }
    command::RelayOptions o;
    o.database_url = url_;
    o.brokers = brokers_;
    o.topic_prefix = prefix_;
    o.batch_size = 7;
    command::Relay relay(o);
    // Publishes until the relay's checkpoint is the last stored event, not until a read comes
    // back empty: the store's read horizon is cluster-wide, so another test's open transaction
    // can hide the newest events for a moment.
    std::string last;
    {
      pqxx::connection c(url_);
      pqxx::work tx(c);
      last = tx.exec(
                   "SELECT tx_id::text || '/' || position FROM events "
                   "ORDER BY tx_id DESC, position DESC LIMIT 1")[0][0]
                 .c_str();
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (;;) {
      while (relay.run_once() > 0) {
      }
      const auto cp = relay.checkpoint();
      if (cp.tx + "/" + std::to_string(cp.position) == last) break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the relay never reached " << last;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void TearDown() override { testing::drop_test_database(url_); }

  std::string replay(std::vector<std::string> args) {
    const std::string file = ::testing::TempDir() + testing::unique_kafka_name("replay") + ".out";
    args.insert(args.begin(), "replay");
    args.push_back("--output");
    args.push_back(file);
    std::ostringstream out, err;
    Console console{1, &out, &err, false};
    const auto config = infra::Config::from_map(
        {{"DATABASE_URL", url_}, {"KAFKA_BROKERS", brokers_}, {"KAFKA_TOPIC_PREFIX", prefix_}});
    EXPECT_EQ(run_analyst_command_line(args, config, console), 0) << err.str();
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    std::remove(file.c_str());
    return text.str();
  }

  std::string brokers_, url_, prefix_;
};

TEST_F(KafkaReplayTest, BothSourcesPrintTheSameBytes) {
  const std::vector<std::vector<std::string>> filters = {
      {},
      {"--format", "csv"},
      {"--category", "order"},
      {"--type", "CartItemAdded", "--type", "PaymentInitiated"},
      {"--from-position", "10", "--to-position", "40"},
      {"--stream", "payment-2", "--format", "csv"},
      {"--since", "2000-01-01T00:00:00Z", "--until", "2100-01-01T00:00:00Z"},
  };
  for (const auto& f : filters) {
    auto kafka = f;
    kafka.insert(kafka.end(), {"--source", "kafka"});
    const auto from_store = replay(f);
    const auto from_kafka = replay(kafka);
    std::string label;
    for (const auto& a : f) label += a + " ";
    EXPECT_FALSE(from_store.empty()) << label;
    EXPECT_EQ(from_kafka, from_store) << label;
  }
  // All 60 events, one line each.
  const auto all = replay({"--source", "kafka"});
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 60);
}

TEST_F(KafkaReplayTest, KafkaSourceNeedsBrokers) {
  std::ostringstream out, err;
  Console console{1, &out, &err, false};
  const auto config = infra::Config::from_map({{"DATABASE_URL", url_}});
  EXPECT_EQ(run_analyst_command_line({"replay", "--source", "kafka"}, config, console), kExitUsage);
  EXPECT_NE(err.str().find("KAFKA_BROKERS"), std::string::npos) << err.str();
}

}  // namespace
}  // namespace shop::tools
