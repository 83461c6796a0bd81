// The command service against a real PostgreSQL: the rules that only hold under concurrency.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <pqxx/pqxx>
#include <thread>

#include "shop/command/service.h"
#include "shop/infra/crypto.h"
#include "support/pg_fixture.h"

namespace shop::command {
namespace {

class CommandServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("commands");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 24, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(std::string(40, 'k'), "shop");
    service_ = std::make_unique<CommandService>(*store_, *jwt_, clock_, ServiceOptions{});
    category_ = new_uuid();
    service_->create_category({category_, "Laptops", std::nullopt}, ctx());
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }
  static Context ctx() { return Context::make(std::nullopt); }
  std::string product(std::int64_t stock, std::int64_t price = 10000) {
    const std::string id = new_uuid();
    service_->create_product({id, "Laptop", "", "SKU-" + id.substr(0, 8), category_, price, stock},
                             ctx());
    return id;
  }
  std::int64_t stock_of(const std::string& product_id) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    auto r = tx.exec_params(
        "SELECT (data->>'stock_after')::bigint FROM events WHERE stream_id = $1 AND "
        "data ? 'stock_after' ORDER BY stream_version DESC LIMIT 1",
        "product-" + product_id);
    if (!r.empty()) return r[0][0].as<std::int64_t>();
    return tx.exec_params("SELECT (data->>'stock')::bigint FROM events WHERE stream_id = $1 AND "
                          "stream_version = 1",
                          "product-" + product_id)[0][0]
        .as<std::int64_t>();
  }
  std::int64_t count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    return tx.exec(sql)[0][0].as<std::int64_t>();
  }

  SystemClock clock_;
  std::string url_, category_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<CommandService> service_;
};

TEST_F(CommandServiceTest, TwentyParallelRegistrationsOfOneEmailHaveOneWinner) {
  std::atomic<int> won{0}, taken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      try {
        service_->register_user(i % 2 ? "Same@Example.com" : "same@example.com ", "long password",
                                "Same", {"customer"}, ctx());
        ++won;
      } catch (const CommandRejected& e) {
        if (e.error.code == "email_taken") ++taken;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(taken.load(), 19);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'UserRegistered'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM user_credentials"), 1);
  // The winner can sign in, with any case of the address; a wrong password cannot.
  EXPECT_FALSE(service_->login("SAME@example.com", "long password").access.empty());
  EXPECT_THROW(service_->login("same@example.com", "wrong password"), CommandRejected);
  EXPECT_THROW(service_->login("nobody@example.com", "long password"), CommandRejected);
}

TEST_F(CommandServiceTest, AWeakPasswordRegistersNothing) {
  for (const char* weak : {"Password123", "bob@example.com", "short"}) {
    try {
      service_->register_user("bob@example.com", weak, "Bob", {"customer"}, ctx());
      FAIL() << "accepted " << weak;
    } catch (const CommandRejected& e) {
      EXPECT_EQ(e.error.code, "weak_password") << weak;
    }
  }
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'UserRegistered'"), 0);
  EXPECT_NO_THROW(service_->register_user("bob@example.com", "a sound passphrase", "Bob",
                                          {"customer"}, ctx()));
}

TEST_F(CommandServiceTest, FiftyConcurrentCheckoutsOfTenInStockSellExactlyTen) {
  const auto laptop = product(10);
  std::vector<std::string> users;
  for (int i = 0; i < 50; ++i) {
    users.push_back(new_uuid());
    service_->add_cart_item(users.back(), laptop, 1, ctx());
  }
  std::atomic<int> placed{0}, refused{0};
  std::vector<std::thread> threads;
  for (const auto& u : users) {
    threads.emplace_back([&, u] {
      try {
        service_->place_order(u, std::nullopt, ctx());
        ++placed;
      } catch (const CommandRejected& e) {
        EXPECT_EQ(e.error.code, "insufficient_stock");
        ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(placed.load(), 10);
  EXPECT_EQ(refused.load(), 40);
  EXPECT_EQ(stock_of(laptop), 0);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'OrderPlaced'"), 10);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'StockReserved'"), 10);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'CartCheckedOut'"), 10);
  // Readers follow (transaction id, position): there, too, every stream is in version order.
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT stream_version, lag(stream_version) OVER "
                  "(PARTITION BY stream_id ORDER BY tx_id, position) AS prev FROM events) v "
                  "WHERE prev >= stream_version"),
            0);
}

TEST_F(CommandServiceTest, CheckoutIsOneAtomicAppendAndKeepsTheCartWhenRefused) {
  const auto a = product(5, 1000), b = product(1, 2500);
  const auto user = new_uuid();
  service_->add_cart_item(user, a, 2, ctx());
  service_->add_cart_item(user, b, 1, ctx());
  service_->adjust_stock(b, -1, ctx());  // b sells out after it was put in the cart
  try {
    service_->place_order(user, std::nullopt, ctx());
    FAIL() << "expected insufficient_stock";
  } catch (const CommandRejected& e) {
    EXPECT_EQ(e.error.code, "insufficient_stock");
  }
  EXPECT_EQ(stock_of(a), 5);  // nothing reserved
  service_->adjust_stock(b, 3, ctx());
  auto o = service_->place_order(user, std::nullopt, ctx());
  EXPECT_EQ(o.total, 2 * 1000 + 2500);
  pqxx::connection c(url_);
  pqxx::work tx(c);
  // The order, both reservations and the checkout share one transaction.
  auto r = tx.exec_params(
      "SELECT count(DISTINCT tx_id), count(*) FROM events WHERE position > $1 - 4 AND position <= $1",
      o.position);
  EXPECT_EQ(r[0][0].as<int>(), 1);
  EXPECT_EQ(r[0][1].as<int>(), 4);
  EXPECT_EQ(stock_of(a), 3);
  EXPECT_EQ(stock_of(b), 2);
  EXPECT_THROW(service_->place_order(user, std::nullopt, ctx()), CommandRejected);  // cart_empty
}

TEST_F(CommandServiceTest, SameIdempotencyKeyPlacesOneOrderEvenConcurrently) {
  const auto a = product(100);
  const auto user = new_uuid();
  service_->add_cart_item(user, a, 1, ctx());
  std::vector<OrderPlacedResult> results(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = service_->place_order(user, "key-1", ctx()); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r.order_id, results[0].order_id);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'OrderPlaced'"), 1);
  // Another user's identical key is theirs alone.
  const auto other = new_uuid();
  service_->add_cart_item(other, a, 1, ctx());
  EXPECT_NE(service_->place_order(other, "key-1", ctx()).order_id, results[0].order_id);
}

TEST_F(CommandServiceTest, CancelReleasesStockAndOnlyTheOwnerMayCancel) {
  const auto a = product(3);
  const auto user = new_uuid(), stranger = new_uuid();
  service_->add_cart_item(user, a, 2, ctx());
  auto o = service_->place_order(user, std::nullopt, ctx());
  EXPECT_EQ(stock_of(a), 1);
  try {
    service_->cancel_order(o.order_id, stranger, false, "", ctx());
    FAIL() << "a stranger cancelled";
  } catch (const CommandRejected& e) {
    EXPECT_EQ(e.error.code, "not_found");
  }
  service_->cancel_order(o.order_id, user, false, "changed my mind", ctx());
  EXPECT_EQ(stock_of(a), 3);
  EXPECT_THROW(service_->cancel_order(o.order_id, user, false, "", ctx()), CommandRejected);
}

TEST_F(CommandServiceTest, WebhookReplayChangesNothing) {
  const auto a = product(3);
  const auto user = new_uuid();
  service_->add_cart_item(user, a, 1, ctx());
  auto o = service_->place_order(user, std::nullopt, ctx());
  auto p = service_->start_payment(o.order_id, user, false, "sandbox", ctx());
  auto first = service_->settle_payment(p.payment_id, {true, ""}, ctx());
  auto again = service_->settle_payment(p.payment_id, {true, ""}, ctx());
  EXPECT_EQ(first.status, "captured");
  EXPECT_EQ(again.status, "captured");
  EXPECT_EQ(again.position, first.position);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type IN ('PaymentCaptured', 'OrderPaid')"), 2);
  EXPECT_THROW(service_->start_payment(o.order_id, user, false, "sandbox", ctx()),
               CommandRejected);  // already paid
}

TEST_F(CommandServiceTest, SkuIsUniqueAcrossProducts) {
  service_->create_product({new_uuid(), "A", "", "DUP-1", category_, 100, 1}, ctx());
  try {
    service_->create_product({new_uuid(), "B", "", "DUP-1", category_, 100, 1}, ctx());
    FAIL() << "duplicate SKU accepted";
  } catch (const CommandRejected& e) {
    EXPECT_EQ(e.error.code, "sku_taken");
  }
}

// Two command services over one store, as two command-api processes would be: each keeps its
// own cache of stream states, which the other's writes make stale.
class TwoServicesTest : public CommandServiceTest {
 protected:
  void SetUp() override {
    CommandServiceTest::SetUp();
    other_ = std::make_unique<CommandService>(*store_, *jwt_, clock_, ServiceOptions{});
  }
  void TearDown() override {
    other_.reset();
    CommandServiceTest::TearDown();
  }
  std::unique_ptr<CommandService> other_;
};

TEST_F(TwoServicesTest, AStaleCachedStateIsNeverWrittenOver) {
  const auto a = product(100), b = product(100);
  const auto user = new_uuid();
  service_->add_cart_item(user, a, 1, ctx());  // this service caches the cart at version 1
  other_->add_cart_item(user, b, 2, ctx());    // the other moves it to version 2
  auto w = service_->add_cart_item(user, a, 1, ctx());
  EXPECT_EQ(w.version, 3);
  auto o = service_->place_order(user, std::nullopt, ctx());
  EXPECT_EQ(o.total, 2 * 10000 + 2 * 10000);  // both lines, the other service's one included
  EXPECT_EQ(stock_of(a), 98);
  EXPECT_EQ(stock_of(b), 98);
}

TEST_F(TwoServicesTest, ARefusalOnAStaleCachedStateIsDecidedAgainOnTheStoredOne) {
  const auto a = product(5);
  service_->adjust_stock(a, -5, ctx());  // this service caches a stock of 0
  other_->adjust_stock(a, 10, ctx());    // the other restocks
  std::int64_t after = 0;
  EXPECT_NO_THROW(service_->adjust_stock(a, -3, ctx(), &after));  // not insufficient_stock
  EXPECT_EQ(after, 7);
  EXPECT_EQ(stock_of(a), 7);
}

TEST_F(TwoServicesTest, AProductChangedSinceItWasReadFailsTheCartAppend) {
  const auto a = product(5);
  const auto user = new_uuid();
  service_->add_cart_item(user, a, 1, ctx());  // caches the product as on sale
  other_->discontinue_product(a, std::nullopt, ctx());
  try {
    service_->add_cart_item(user, a, 1, ctx());
    FAIL() << "a discontinued product went into the cart";
  } catch (const CommandRejected& e) {
    EXPECT_NE(e.error.code, "concurrency_conflict");
  }
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'CartItemAdded'"), 1);
}

TEST_F(TwoServicesTest, OrderNumbersAreUniqueAcrossServices) {
  const auto a = product(1000);
  std::set<std::string> numbers;
  for (int i = 0; i < 40; ++i) {
    auto& svc = i % 2 ? *service_ : *other_;
    const auto user = new_uuid();
    svc.add_cart_item(user, a, 1, ctx());
    EXPECT_TRUE(numbers.insert(svc.place_order(user, std::nullopt, ctx()).order_number).second);
  }
  EXPECT_EQ(count("SELECT count(DISTINCT data->>'order_number') FROM events "
                  "WHERE type = 'OrderPlaced'"),
            40);
}

}  // namespace
}  // namespace shop::command
