// The projector against a real PostgreSQL: read models follow the events, and a batch and its
// checkpoint are applied together or not at all.
#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include "shop/command/service.h"
#include "shop/infra/crypto.h"
#include "shop/projector/projector.h"
#include "support/pg_fixture.h"

namespace shop::projector {
namespace {

class ProjectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("projector");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(std::string(40, 'k'), "shop");
    service_ = std::make_unique<command::CommandService>(*store_, *jwt_, clock_,
                                                         command::ServiceOptions{});
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }
  static command::Context ctx() { return command::Context::make(std::nullopt); }
  pqxx::result query(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    return tx.exec(sql);
  }
  // Projects until the checkpoint covers the newest event. (A pass may find nothing while a
  // transaction elsewhere on the cluster holds the readers' horizon back, so wait for the head.)
  int drain(Projector& p) {
    const auto head = query("SELECT coalesce(max(position), 0) FROM events")[0][0].as<std::int64_t>();
    int total = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const int n = p.run_once();
      total += n;
      auto cp = query("SELECT max_position FROM rm_checkpoints");
      if (!cp.empty() && cp[0][0].as<std::int64_t>() >= head) break;
      if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return total;
  }
  // Runs the projector until it fails (true) or the time is up (false).
  bool fails_eventually(Projector& p) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        p.run_once();
      } catch (const std::exception&) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  SystemClock clock_;
  std::string url_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<command::CommandService> service_;
};

TEST_F(ProjectorTest, ReadModelsFollowTheStorefrontFlow) {
  const auto cat = new_uuid(), sub = new_uuid(), prod = new_uuid();
  service_->create_category({cat, "Computers", std::nullopt}, ctx());
  service_->create_category({sub, "Laptops", cat}, ctx());
  service_->create_product({prod, "Aero", "light", "AERO", sub, 129999, 5}, ctx());
  auto user = service_->register_user("p@example.com", "long password", "Pat", {"customer"}, ctx());
  service_->add_cart_item(user.id, prod, 2, ctx());
  service_->update_product(prod, {.price = 119999}, std::nullopt, std::nullopt, ctx());
  auto order = service_->place_order(user.id, std::nullopt, ctx());
  auto pay = service_->start_payment(order.order_id, user.id, false, "sandbox", ctx());
  service_->settle_payment(pay.payment_id, {true, ""}, ctx());
  service_->ship_order(order.order_id, {"UPS", "1Z999"}, ctx());

  Projector p(url_, {.batch_size = 3});  // small batches: several checkpoints on the way
  EXPECT_GT(drain(p), 8);

  auto products = query("SELECT name, price, stock, category_id::text FROM rm_products");
  ASSERT_EQ(products.size(), 1u);
  EXPECT_EQ(products[0][1].as<std::int64_t>(), 119999);
  EXPECT_EQ(products[0][2].as<std::int64_t>(), 3);
  EXPECT_EQ(products[0][3].c_str(), sub);
  EXPECT_EQ(query("SELECT parent_id::text FROM rm_categories WHERE id = '" + sub + "'")[0][0]
                .c_str(),
            cat);
  EXPECT_EQ(query("SELECT count(*) FROM rm_cart_items")[0][0].as<int>(), 0);
  auto orders = query(
      "SELECT status, total, jsonb_array_length(status_history), payment->>'status', "
      "shipment->>'tracking_number', items->0->>'unit_price' FROM rm_orders");
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_STREQ(orders[0][0].c_str(), "shipped");
  EXPECT_EQ(orders[0][1].as<std::int64_t>(), 2 * 119999);
  EXPECT_EQ(orders[0][2].as<int>(), 3);
  EXPECT_STREQ(orders[0][3].c_str(), "captured");
  EXPECT_STREQ(orders[0][4].c_str(), "1Z999");
  EXPECT_STREQ(orders[0][5].c_str(), "119999");
  auto users = query("SELECT email, roles::text FROM rm_users");
  ASSERT_EQ(users.size(), 1u);
  EXPECT_STREQ(users[0][1].c_str(), "{customer}");
  auto cp = query("SELECT last_position, max_position FROM rm_checkpoints");
  EXPECT_EQ(cp[0][1].as<std::int64_t>(), order.position + 4);
}

TEST_F(ProjectorTest, CartShowsTheCurrentPrice) {
  const auto cat = new_uuid(), prod = new_uuid(), user = new_uuid();
  service_->create_category({cat, "Mice", std::nullopt}, ctx());
  service_->create_product({prod, "Mouse", "", "M1", cat, 5000, 10}, ctx());
  service_->add_cart_item(user, prod, 3, ctx());
  service_->update_product(prod, {.name = "Mouse II", .price = 4500}, std::nullopt, std::nullopt,
                           ctx());
  Projector p(url_, {});
  drain(p);
  auto r = query("SELECT name, unit_price, quantity FROM rm_cart_items");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_STREQ(r[0][0].c_str(), "Mouse II");
  EXPECT_EQ(r[0][1].as<int>(), 4500);
  EXPECT_EQ(r[0][2].as<int>(), 3);
}

TEST_F(ProjectorTest, ABatchAndItsCheckpointCommitTogether) {
  const auto cat = new_uuid();
  service_->create_category({cat, "Monitors", std::nullopt}, ctx());
  Projector p(url_, {.batch_size = 100});
  drain(p);
  const auto before = p.checkpoint();
  {
    // A good event and one the projector cannot apply, committed together (so that they are
    // always read in one batch).
    pqxx::connection c(url_);
    pqxx::work tx(c);
    const std::string insert =
        "INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, "
        "occurred_at, correlation_id, causation_id, data) VALUES (gen_random_uuid(), $1, 1, "
        "'ProductCreated', 1, now(), gen_random_uuid(), gen_random_uuid(), $2::jsonb)";
    const std::string good = new_uuid();
    tx.exec_params(insert, "product-" + good,
                   R"({"product_id":")" + good + R"(","name":"Screen","description":"",)" +
                       R"("sku":"S1","category_id":")" + cat + R"(","price":100,"stock":1})");
    tx.exec_params(insert, "product-x", R"({"product_id": 42})");
    tx.commit();
  }
  EXPECT_TRUE(fails_eventually(p));
  // Neither the good event's effect nor the checkpoint moved: the batch is all or nothing.
  EXPECT_EQ(query("SELECT count(*) FROM rm_products")[0][0].as<int>(), 0);
  EXPECT_EQ(p.checkpoint().position, before.position);
  EXPECT_ANY_THROW(p.run_once());  // and it stops rather than skipping the bad event
  EXPECT_EQ(query("SELECT count(*) FROM rm_products")[0][0].as<int>(), 0);
}

}  // namespace
}  // namespace shop::projector
