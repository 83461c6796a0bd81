// The read models do not depend on the interleaving of different streams' events. A projector
// reading Kafka gets each partition in order (and a stream stays in one partition), but the
// partitions in any interleaving: an order's payment may come before the order, a cart line
// after a price change it predates. Here a scenario's events are applied once in the store's
// global order (the store-driven projector) and then in many random interleavings that keep
// each stream's order, through the same apply function; every read-model table must come out
// the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "pg/read_models_support.h"
#include "shop/command/service.h"
#include "shop/infra/crypto.h"
#include "shop/infra/event_store.h"
#include "shop/projector/projector.h"
#include "support/pg_fixture.h"

namespace shop::projector {
namespace {

class ProjectorOrderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("projector_order");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(std::string(40, 'k'), "shop");
    service_ = std::make_unique<command::CommandService>(*store_, *jwt_, clock_,
                                                         command::ServiceOptions{});
    conn_ = std::make_unique<pqxx::connection>(url_);
    pqxx::nontransaction(*conn_).exec("SET TIME ZONE 'UTC'");
    prepare_statements(*conn_);
  }
  void TearDown() override {
    conn_.reset();
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }
  static command::Context ctx() { return command::Context::make(std::nullopt); }

  // Every stored event, in the global order.
  std::vector<events::RecordedEvent> stored() {
    pqxx::work tx(*conn_);
    std::vector<events::RecordedEvent> out;
    for (const auto& row : tx.exec(std::string("SELECT ") + infra::kEventColumns +
                                   " FROM events ORDER BY tx_id, position")) {
      out.push_back(infra::event_from_row(row));
    }
    return out;
  }

  // The read models as the store-driven projector builds them.
  std::string project_from_store() {
    testing::reset_read_models(*conn_);
    Projector p(url_, {.batch_size = 7});
    // A pass may find nothing while a transaction elsewhere on the cluster holds the readers'
    // horizon back: wait for every event.
    const auto head = stored().size();
    std::size_t applied = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (applied < head && std::chrono::steady_clock::now() < deadline) {
      const int n = p.run_once();
      applied += static_cast<std::size_t>(n);
      if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(applied, head);
    return testing::dump_read_models(*conn_);
  }

  // Applies the events in the given order, in transactions of random sizes.
  std::string project(const std::vector<events::RecordedEvent>& order, std::mt19937& rng) {
    testing::reset_read_models(*conn_);
    for (std::size_t i = 0; i < order.size();) {
      const std::size_t n = std::min<std::size_t>(order.size() - i, 1 + rng() % 40);
      pqxx::work tx(*conn_);
      apply_batch(tx, {order.begin() + static_cast<std::ptrdiff_t>(i),
                       order.begin() + static_cast<std::ptrdiff_t>(i + n)});
      tx.commit();
      i += n;
    }
    return testing::dump_read_models(*conn_);
  }

  SystemClock clock_;
  std::string url_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<command::CommandService> service_;
  std::unique_ptr<pqxx::connection> conn_;
};

using Streams = std::map<std::string, std::vector<events::RecordedEvent>>;

Streams by_stream(const std::vector<events::RecordedEvent>& events) {
  Streams out;
  for (const auto& e : events) out[e.stream_id].push_back(e);
  return out;
}

// Picks the next event from a random stream each time: streams interleaved at random.
std::vector<events::RecordedEvent> random_merge(const Streams& streams, std::mt19937& rng) {
  std::vector<std::pair<const std::vector<events::RecordedEvent>*, std::size_t>> open;
  for (const auto& [id, evs] : streams) open.push_back({&evs, 0});
  std::vector<events::RecordedEvent> out;
  while (!open.empty()) {
    const std::size_t i = rng() % open.size();
    out.push_back((*open[i].first)[open[i].second++]);
    if (open[i].second == open[i].first->size())
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return out;
}

// Whole categories one after another, in a random order of categories (all payments before
// any order, say), each category's streams interleaved at random: partitions drained one by one.
std::vector<events::RecordedEvent> by_category(const Streams& streams, std::mt19937& rng) {
  std::map<std::string, Streams> categories;
  for (const auto& [id, evs] : streams) categories[std::string(events::category_of(id))][id] = evs;
  std::vector<std::string> names;
  for (const auto& [name, s] : categories) names.push_back(name);
  std::shuffle(names.begin(), names.end(), rng);
  std::vector<events::RecordedEvent> out;
  for (const auto& name : names) {
    auto part = random_merge(categories[name], rng);
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

// Each stream whole, the streams in a random order.
std::vector<events::RecordedEvent> stream_by_stream(const Streams& streams, std::mt19937& rng) {
  std::vector<const std::vector<events::RecordedEvent>*> order;
  for (const auto& [id, evs] : streams) order.push_back(&evs);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<events::RecordedEvent> out;
  for (const auto* evs : order) out.insert(out.end(), evs->begin(), evs->end());
  return out;
}

// Global order backwards, each stream still in its own order: every cross-stream dependency
// arrives the wrong way round where it can.
std::vector<events::RecordedEvent> latest_streams_first(
    const std::vector<events::RecordedEvent>& global) {
  std::map<std::string, std::size_t> last_seen;  // stream -> index of its last event
  for (std::size_t i = 0; i < global.size(); ++i) last_seen[global[i].stream_id] = i;
  std::vector<std::pair<std::size_t, std::string>> order;
  for (const auto& [id, at] : last_seen) order.push_back({at, id});
  std::sort(order.rbegin(), order.rend());
  const auto streams = by_stream(global);
  std::vector<events::RecordedEvent> out;
  for (const auto& [at, id] : order) {
    const auto& evs = streams.at(id);
    out.insert(out.end(), evs.begin(), evs.end());
  }
  return out;
}

TEST_F(ProjectorOrderTest, AnyInterleavingOfStreamsGivesTheReadModelsOfTheGlobalOrder) {
  testing::Scenario scenario(*service_, 20240601);
  scenario.setup();
  scenario.run(400);
  scenario.finish();
  const auto global = stored();
  ASSERT_GT(global.size(), 300u);
  const auto streams = by_stream(global);

  const std::string reference = project_from_store();
  // The scenario reached the cases that matter.
  {
    pqxx::work tx(*conn_);
    EXPECT_GT(tx.exec("SELECT count(*) FROM rm_payments")[0][0].as<int>(), 3);
    EXPECT_GT(tx.exec("SELECT count(*) FROM rm_orders WHERE payment->>'status' = 'captured'")[0][0]
                  .as<int>(),
              0);
    // Cart lines whose price came from a product change after they were added.
    EXPECT_GT(tx.exec("SELECT count(*) FROM rm_cart_items c JOIN rm_products p ON p.id = "
                      "c.product_id WHERE c.price_position = p.price_position")[0][0]
                  .as<int>(),
              3);
    EXPECT_GT(tx.exec("SELECT count(*) FROM rm_orders WHERE status = 'cancelled'")[0][0].as<int>(),
              0);
  }
  // Applied in global order through apply_batch directly: the same as the projector.
  std::mt19937 rng(1);
  EXPECT_EQ(project(global, rng), reference);

  for (unsigned seed = 1; seed <= 12; ++seed) {
    std::mt19937 r(seed);
    std::vector<events::RecordedEvent> order;
    const char* how = "";
    switch (seed % 3) {
      case 0:
        order = random_merge(streams, r);
        how = "streams interleaved at random";
        break;
      case 1:
        order = by_category(streams, r);
        how = "categories one after another";
        break;
      default:
        order = stream_by_stream(streams, r);
        how = "streams one after another";
    }
    ASSERT_EQ(order.size(), global.size());
    EXPECT_EQ(project(order, r), reference) << how << ", seed " << seed;
  }
  EXPECT_EQ(project(latest_streams_first(global), rng), reference) << "latest streams first";
}

// The cases one by one, each in the most unfavourable order.
TEST_F(ProjectorOrderTest, PaymentsBeforeTheirOrderAndCartLinesAfterLaterPriceChanges) {
  const auto cat = new_uuid(), prod = new_uuid(), user = new_uuid();
  service_->create_category({cat, "Mice", std::nullopt}, ctx());
  service_->create_product({prod, "Mouse", "", "M1", cat, 5000, 10}, ctx());
  service_->add_cart_item(user, prod, 3, ctx());
  service_->update_product(prod, {.name = "Mouse II", .price = 4500}, std::nullopt, std::nullopt,
                           ctx());
  auto order = service_->place_order(user, std::nullopt, ctx());
  auto first = service_->start_payment(order.order_id, user, false, "sandbox", ctx());
  service_->settle_payment(first.payment_id, {false, "declined"}, ctx());
  auto second = service_->start_payment(order.order_id, user, false, "sandbox", ctx());
  service_->settle_payment(second.payment_id, {true, ""}, ctx());
  service_->add_cart_item(user, prod, 1, ctx());
  service_->update_product(prod, {.price = 4000}, std::nullopt, std::nullopt, ctx());
  const auto global = stored();
  const std::string reference = project_from_store();

  // Payments before their order, and carts before the product changes they predate; then
  // the product's changes before the cart lines added earlier or later.
  std::mt19937 rng(3);
  for (const auto& categories :
       {std::vector<std::string>{"payment", "cart", "order", "product", "category"},
        std::vector<std::string>{"product", "category", "payment", "order", "cart"}}) {
    std::vector<events::RecordedEvent> order_of_arrival;
    for (const auto& category : categories) {
      for (const auto& e : global) {
        if (events::category_of(e.stream_id) == category) order_of_arrival.push_back(e);
      }
    }
    EXPECT_EQ(project(order_of_arrival, rng), reference) << "first: " << categories[0];
  }

  pqxx::work tx(*conn_);
  auto o = tx.exec_params(
      "SELECT status, payment->>'payment_id', payment->>'status', (payment->>'amount')::bigint, "
      "jsonb_array_length(status_history) FROM rm_orders WHERE id = $1",
      order.order_id);
  ASSERT_EQ(o.size(), 1u);
  EXPECT_STREQ(o[0][0].c_str(), "paid");
  EXPECT_EQ(o[0][1].c_str(), second.payment_id);  // the latest attempt
  EXPECT_STREQ(o[0][2].c_str(), "captured");
  EXPECT_EQ(o[0][3].as<std::int64_t>(), 3 * 4500);
  EXPECT_EQ(o[0][4].as<int>(), 2);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM rm_payments")[0][0].as<int>(), 2);
  // The new cart line was added at 4500 and the product then went to 4000.
  auto line = tx.exec("SELECT name, unit_price, quantity FROM rm_cart_items");
  ASSERT_EQ(line.size(), 1u);
  EXPECT_STREQ(line[0][0].c_str(), "Mouse II");
  EXPECT_EQ(line[0][1].as<std::int64_t>(), 4000);
  EXPECT_EQ(line[0][2].as<std::int64_t>(), 1);
}

TEST_F(ProjectorOrderTest, TheStoreDrivenProjectorRefusesReadModelsProjectedFromKafka) {
  {
    pqxx::work tx(*conn_);
    tx.exec(
        "INSERT INTO rm_kafka_offsets (consumer_group, topic, partition, next_offset) "
        "VALUES ('shop-projector', 'shop.order', 0, 12)");
    tx.commit();
  }
  service_->create_category({new_uuid(), "Cables", std::nullopt}, ctx());
  Projector p(url_, {});
  try {
    p.run_once();
    ADD_FAILURE() << "projected into read models that Kafka maintains";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("shop-projector"), std::string::npos) << e.what();
  }
  pqxx::work tx(*conn_);
  EXPECT_EQ(tx.exec("SELECT count(*) FROM rm_categories")[0][0].as<int>(), 0);
}

}  // namespace
}  // namespace shop::projector
