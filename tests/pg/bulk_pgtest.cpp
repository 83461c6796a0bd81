// The bulk builder of the read models (projector/bulk.h) against a real PostgreSQL: from the same
// events it writes exactly the rows the SQL projector writes (every column of every table, and
// the checkpoint), whether it runs in one go, flushes often, is interrupted and called again, or
// hands over to the per-event path (apply_batch) and takes over again from what that wrote.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <ostream>
#include <pqxx/pqxx>
#include <thread>

#include "pg/read_models_support.h"
#include "shop/command/service.h"
#include "shop/infra/crypto.h"
#include "shop/infra/event_store.h"
#include "shop/infra/pg.h"
#include "shop/projector/bulk.h"
#include "shop/projector/projector.h"
#include "support/pg_fixture.h"

namespace shop::projector {
namespace {

// What a progress callback throws to stand for a build killed between two flushes.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

struct Checkpoint {
  std::string tx;
  std::int64_t position = 0, max_position = 0;
  bool operator==(const Checkpoint&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Checkpoint& c) {
  return os << "(" << c.tx << ", " << c.position << ", max " << c.max_position << ")";
}

class BulkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("bulk");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(std::string(40, 'k'), "shop");
    service_ = std::make_unique<command::CommandService>(*store_, *jwt_, clock_,
                                                         command::ServiceOptions{});
    conn_ = std::make_unique<pqxx::connection>(url_);
    pqxx::nontransaction(*conn_).exec("SET TIME ZONE 'UTC'");
  }
  void TearDown() override {
    conn_.reset();
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  // A new, empty version of the read models, as a rebuild makes one.
  void create_version(const std::string& schema) {
    pqxx::work tx(*conn_);
    infra::create_read_model_tables(tx, schema);
    tx.commit();
  }

  std::string live_schema() {
    pqxx::work tx(*conn_);
    return tx
        .exec(
            "SELECT schema_prefix || live_version FROM projections WHERE name = "
            "'read_models'")[0][0]
        .c_str();
  }

  std::int64_t head_position() {
    pqxx::work tx(*conn_);
    return tx.exec("SELECT coalesce(max(position), 0) FROM events")[0][0].as<std::int64_t>();
  }

  std::optional<Checkpoint> checkpoint(const std::string& schema) {
    pqxx::work tx(*conn_);
    auto r = tx.exec_params("SELECT last_tx::text, last_position, max_position FROM " +
                                tx.quote_name(schema) + ".rm_checkpoints WHERE name = $1",
                            kCheckpointName);
    if (r.empty()) return std::nullopt;
    return Checkpoint{r[0][0].c_str(), r[0][1].as<std::int64_t>(), r[0][2].as<std::int64_t>()};
  }

  // The read models as the SQL projector builds them (in the live version), up to every event.
  std::string project_with_sql() {
    Projector p(url_, {.batch_size = 50});
    const auto head = head_position();
    const auto schema = live_schema();
    // A pass may find nothing while a transaction elsewhere on the cluster holds the readers'
    // horizon back: wait for every event.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto cp = checkpoint(schema);
      if (cp && cp->max_position >= head) break;
      if (p.run_once() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_GE(checkpoint(schema).value_or(Checkpoint{}).max_position, head);
    return testing::dump_read_models_in(*conn_, schema);
  }

  // The per-event path in `schema` (search_path set to it in each transaction), from its
  // checkpoint up to every event, as a rebuild continues after bulk_build.
  void apply_in(const std::string& schema) {
    pqxx::connection c(url_);
    pqxx::nontransaction(c).exec("SET TIME ZONE 'UTC'");
    prepare_statements(c);
    const auto head = head_position();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto stored = checkpoint(schema);
      if (stored && stored->max_position >= head) return;
      infra::GlobalCheckpoint from;
      if (stored) from = {stored->tx, stored->position};
      pqxx::work tx(c);
      tx.exec("SET LOCAL search_path TO " + tx.quote_name(schema) + ", public");
      auto batch = infra::read_global(tx, from, 37);
      if (batch.events.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      std::int64_t max_position = 0;
      for (const auto& e : batch.events) max_position = std::max(max_position, e.position);
      apply_batch(tx, batch.events);
      tx.exec_prepared("rm_checkpoint_save", kCheckpointName, batch.next.tx, batch.next.position,
                       max_position);
      tx.commit();
    }
    ADD_FAILURE() << "the per-event path did not reach position " << head;
  }

  std::int64_t count(const std::string& schema, const std::string& table,
                     const std::string& where = "true") {
    pqxx::work tx(*conn_);
    return tx
        .exec("SELECT count(*) FROM " + tx.quote_name(schema) + "." + table + " WHERE " +
              where)[0][0]
        .as<std::int64_t>();
  }

  // Appends one event as stored, bypassing the command side (for values it would never make).
  void append(const std::string& stream, const std::string& type, const std::string& data) {
    auto& version = versions_[stream];
    store_->append({{stream, version, {{new_uuid(), type, 1, data}}}},
                   {new_uuid(), new_uuid(), std::nullopt, format_time(clock_.now())});
    ++version;
  }

  static command::Context ctx() { return command::Context::make(std::nullopt); }

  SystemClock clock_;
  std::string url_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<command::CommandService> service_;
  std::unique_ptr<pqxx::connection> conn_;
  std::map<std::string, std::int64_t> versions_;
};

TEST_F(BulkTest, BuildsExactlyTheRowsOfTheSqlProjector) {
  testing::Scenario scenario(*service_, 20240917);
  scenario.setup(12, 8);
  scenario.run(1200);
  scenario.finish();
  const std::string reference = project_with_sql();
  const auto live = live_schema();
  // The scenario reached the cases that matter.
  EXPECT_GT(count(live, "rm_payments"), 3);
  EXPECT_GT(count(live, "rm_orders", "payment->>'status' = 'captured'"), 0);
  EXPECT_GT(count(live, "rm_orders", "status = 'cancelled'"), 0);
  EXPECT_GT(count(live, "rm_orders", "shipment IS NOT NULL"), 0);
  EXPECT_GT(count(live, "rm_products", "discontinued"), 0);
  EXPECT_GT(count(live, "rm_cart_items", "price_position <> name_position"), 0);
  EXPECT_EQ(count(live, "rm_sessions"), 24);
  EXPECT_GT(count(live, "rm_sessions", "refresh_count > 0 AND revoked_at IS NULL"), 0);
  for (const char* reason :
       {"logout", "logout_all", "reuse_detected", "password_changed", "roles_changed"}) {
    EXPECT_GT(count(live, "rm_sessions", std::string("revoke_reason = '") + reason + "'"), 0)
        << reason;
  }
  EXPECT_GT(count(live, "rm_users", "phone IS NOT NULL"), 0);
  EXPECT_GT(count(live, "rm_users", "name LIKE 'Renamed %'"), 0);
  EXPECT_GT(count(live, "rm_users", "'staff' = ANY (roles)"), 0);

  create_version("rm_v2");
  std::vector<BulkProgress> calls;
  const auto cp = bulk_build(url_, "rm_v2", {}, [&](const BulkProgress& p) { calls.push_back(p); });
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v2"), reference);
  EXPECT_EQ(checkpoint("rm_v2"), checkpoint(live));
  EXPECT_EQ(cp.tx, checkpoint(live)->tx);
  EXPECT_EQ(cp.position, checkpoint(live)->position);

  // One batch: one progress call, with every event.
  ASSERT_EQ(calls.size(), 1u);
  pqxx::work tx(*conn_);
  EXPECT_EQ(calls[0].events, tx.exec("SELECT count(*) FROM events")[0][0].as<std::int64_t>());
  EXPECT_EQ(calls[0].position, cp.position);
  EXPECT_EQ(calls[0].head_position, cp.position);
}

TEST_F(BulkTest, SmallBatchesAndFlushesGiveTheSameRows) {
  testing::Scenario scenario(*service_, 77);
  scenario.setup(6, 4);
  scenario.run(600);
  scenario.finish();
  const std::string reference = project_with_sql();

  create_version("rm_v2");
  std::int64_t calls = 0, last_events = 0;
  bulk_build(url_, "rm_v2", {.flush_every = 25, .batch_size = 9}, [&](const BulkProgress& p) {
    ++calls;
    EXPECT_GT(p.events, last_events);
    last_events = p.events;
  });
  EXPECT_GT(calls, 20);
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v2"), reference);
  EXPECT_EQ(checkpoint("rm_v2"), checkpoint(live_schema()));
}

TEST_F(BulkTest, InterruptedBetweenFlushesAndCalledAgainGivesTheSameRows) {
  testing::Scenario scenario(*service_, 4242);
  scenario.setup(8, 5);
  scenario.run(700);
  scenario.finish();
  const std::string reference = project_with_sql();

  create_version("rm_v2");
  const BulkOptions options{.flush_every = 40, .batch_size = 16};
  int interruptions = 0;
  std::int64_t before = 0;
  for (int call = 0; call < 100; ++call) {
    // Each call is killed after another 70 to 130 events (a flush every 48): what it flushed
    // stays, what it folded since is lost.
    const std::int64_t stop_after = 70 + (call * 37) % 61;
    try {
      bulk_build(url_, "rm_v2", options, [&](const BulkProgress& p) {
        if (p.events >= stop_after) throw Interrupted();
      });
      break;
    } catch (const Interrupted&) {
      ++interruptions;
      const auto now = checkpoint("rm_v2");
      ASSERT_TRUE(now.has_value());
      EXPECT_GT(now->max_position, before) << "an interrupted call flushed nothing";
      before = now->max_position;
      // The tables hold what the checkpoint says, no more: a call started now continues there.
    }
  }
  EXPECT_GT(interruptions, 3);
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v2"), reference);
  EXPECT_EQ(checkpoint("rm_v2"), checkpoint(live_schema()));

  // Called again with nothing new: nothing to do, the same checkpoint.
  const auto again = bulk_build(url_, "rm_v2", options,
                                [](const BulkProgress&) { ADD_FAILURE() << "nothing to fold"; });
  EXPECT_EQ(again.position, checkpoint("rm_v2")->position);
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v2"), reference);
}

TEST_F(BulkTest, HandsOverToApplyBatchAndTakesOverAgain) {
  testing::Scenario scenario(*service_, 99);
  scenario.setup(8, 6);
  scenario.run(300);
  create_version("rm_v2");
  bulk_build(url_, "rm_v2", {.flush_every = 100, .batch_size = 64});

  // Later events through the per-event path, in the new version.
  scenario.run(300);
  apply_in("rm_v2");
  // Later still, the bulk builder again: it continues from what apply_batch wrote.
  scenario.run(300);
  scenario.finish();
  bulk_build(url_, "rm_v2", {.flush_every = 120, .batch_size = 50});
  // And the per-event path once more, for the last events.
  scenario.run(100);
  apply_in("rm_v2");

  const std::string reference = project_with_sql();
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v2"), reference);
  EXPECT_EQ(checkpoint("rm_v2"), checkpoint(live_schema()));
}

TEST_F(BulkTest, EmptyStore) {
  create_version("rm_v2");
  const auto cp =
      bulk_build(url_, "rm_v2", {}, [](const BulkProgress&) { ADD_FAILURE() << "no events"; });
  EXPECT_EQ(cp.tx, "0");
  EXPECT_EQ(cp.position, 0);
  EXPECT_FALSE(checkpoint("rm_v2").has_value());
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v2"),
            testing::dump_read_models_in(*conn_, live_schema()));
  for (const char* t :
       {"rm_users", "rm_categories", "rm_products", "rm_cart_items", "rm_orders", "rm_payments"}) {
    EXPECT_EQ(count("rm_v2", t), 0) << t;
  }
}

// Values the command side never writes but the store may hold: text that needs escaping in
// every layer (COPY, arrays, JSON), UUIDs in every spelling PostgreSQL accepts, events about
// rows that do not exist, repeated creations, a payment before its order.
TEST_F(BulkTest, UnusualValuesAndEventsGiveTheSameRows) {
  const auto cat = new_uuid(), sub = new_uuid(), other = new_uuid();
  const auto p1 = new_uuid(), p2 = new_uuid(), u1 = new_uuid(), u2 = new_uuid();
  const auto o1 = new_uuid(), o2 = new_uuid(), pay0 = new_uuid(), pay1 = new_uuid();
  auto upper = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  };
  auto bare = [](std::string s) {
    std::erase(s, '-');
    return s;
  };
  const std::string odd =
      R"(Tab\there, new\nline\r\n, \b\f\u0001\u007f, back\\slash, \"quoted\", \\N, NULL, é ✓ \ud83d\ude00)";

  append("category-" + cat, "CategoryCreated",
         R"({"category_id": ")" + upper(cat) + R"(", "name": ")" + odd + R"("})");
  append("category-" + sub, "CategoryCreated",
         R"({"category_id": ")" + sub + R"(", "name": "Sub", "parent_id": "{)" + cat + R"(}"})");
  append("category-" + other, "CategoryCreated",
         R"({"category_id": ")" + other + R"(", "name": "Other", "parent_id": ""})");
  append("category-" + cat, "CategoryCreated",
         R"({"category_id": ")" + cat + R"(", "name": "again"})");
  append(
      "user-" + u1, "UserRegistered",
      R"({"user_id": ")" + u1 + R"(", "email": "a@b.c", "name": ")" + odd +
          R"(", "roles": ["customer", "a,b", "q\"uote", "back\\slash", "{brace}", "NULL", "", " x "]})");
  append("user-" + u2, "UserRegistered",
         R"({"user_id": ")" + bare(u2) + R"(", "email": "e@f.g", "name": "N", "roles": []})");
  append("user-" + u1, "UserRegistered",
         R"({"user_id": ")" + u1 + R"(", "email": "x@y.z", "name": "again", "roles": []})");
  // Profiles and roles: of users that exist (in other spellings of their ids), and of one that
  // does not; a number set, replaced, removed, and set again; odd text everywhere.
  append("user-" + u1, "UserProfileChanged",
         R"({"user_id": ")" + upper(u1) + R"(", "name": ")" + odd +
             R"(", "phone": "+4917012345678", "phone_removed": false})");
  append("user-" + u2, "UserProfileChanged",
         R"({"user_id": ")" + bare(u2) + R"(", "phone": "+1\t\"2\"", "phone_removed": false})");
  append("user-" + u2, "UserProfileChanged",
         R"({"user_id": ")" + u2 + R"(", "name": "Only the name", "phone_removed": false})");
  append("user-" + u2, "UserProfileChanged",
         R"({"user_id": ")" + u2 + R"(", "phone": null, "phone_removed": true})");
  append("user-" + u1, "UserProfileChanged",
         R"({"user_id": ")" + u1 +
             R"(", "name": null, "phone": "+14155550123", "phone_removed": false})");
  append("user-" + u1, "UserPasswordChanged", R"({"user_id": ")" + u1 + R"("})");
  append(
      "user-" + u1, "UserRolesChanged",
      R"({"user_id": ")" + u1 + R"(", "roles": ["staff", "a,b", "q\"uote", "{x}", "NULL", ""]})");
  append("user-" + u2, "UserRolesChanged", R"({"user_id": ")" + u2 + R"(", "roles": []})");
  append("user-" + new_uuid(), "UserRolesChanged",
         R"({"user_id": ")" + new_uuid() + R"(", "roles": ["admin"]})");
  append("user-" + new_uuid(), "UserProfileChanged",
         R"({"user_id": ")" + new_uuid() + R"(", "name": "nobody", "phone_removed": false})");
  append("product-" + p1, "ProductCreated",
         R"({"product_id": ")" + upper(p1) + R"(", "name": ")" + odd + R"(", "description": ")" +
             odd + R"(", "sku": "S\t1", "category_id": "{)" + upper(sub) +
             R"(}", "price": 1999, "stock": 5})");
  append("product-" + p2, "ProductCreated",
         R"({"product_id": ")" + p2 +
             R"(", "name": "Two", "description": "", "sku": "S2", "category_id": ")" + cat +
             R"(", "price": 500, "stock": 1})");
  append("product-" + p2, "ProductCreated",
         R"({"product_id": ")" + p2 +
             R"(", "name": "again", "description": "", "sku": "S3", )"
             R"("category_id": ")" +
             cat + R"(", "price": 1, "stock": 1})");
  append("cart-" + u1, "CartItemAdded",
         R"({"user_id": ")" + bare(upper(u1)) + R"(", "product_id": ")" + p1 +
             R"(", "name": "snap\\shot", "unit_price": 1999, "quantity": 2, "line_quantity": 2})");
  append("cart-" + u1, "CartItemAdded",
         R"({"user_id": ")" + u1 + R"(", "product_id": ")" + p2 +
             R"(", "name": "Two", "unit_price": 500, "quantity": 1, "line_quantity": 1})");
  append("cart-" + u2, "CartItemAdded",
         R"({"user_id": ")" + u2 + R"(", "product_id": ")" + p1 +
             R"(", "name": "other", "unit_price": 1, "quantity": 1, "line_quantity": 1})");
  append("cart-" + u1, "CartItemQuantityChanged",
         R"({"user_id": ")" + u1 + R"(", "product_id": ")" + p2 + R"(", "quantity": 5})");
  append("cart-" + u2, "CartItemQuantityChanged",
         R"({"user_id": ")" + u2 + R"(", "product_id": ")" + p2 + R"(", "quantity": 5})");
  append("product-" + p1, "ProductUpdated",
         R"({"product_id": ")" + p1 + R"(", "name": "Renamed\t\"x\"", "price": 1500})");
  append("product-" + p1, "ProductUpdated",
         R"({"product_id": ")" + p1 +
             R"(", "description": "only", "sku": "S\\1", "category_id": ")" + cat + R"("})");
  append("product-" + p1, "ProductUpdated",
         R"({"product_id": ")" + p1 + R"(", "name": null, "price": 1400})");
  append("cart-" + u1, "CartItemRemoved",
         R"({"user_id": ")" + u1 + R"(", "product_id": ")" + p2 + R"("})");
  append("cart-" + u1, "CartItemRemoved",
         R"({"user_id": ")" + u1 + R"(", "product_id": ")" + p2 + R"("})");
  append("cart-" + u1, "CartItemAdded",
         R"({"user_id": ")" + u1 + R"(", "product_id": ")" + p2 +
             R"(", "name": "Two again", "unit_price": 501, "quantity": 3, "line_quantity": 3})");
  append("cart-" + u1, "CartItemAdded",
         R"({"user_id": ")" + u1 + R"(", "product_id": ")" + p1 +
             R"(", "name": "newer", "unit_price": 1300, "quantity": 1, "line_quantity": 3})");
  append("product-" + p2, "StockAdjusted",
         R"({"product_id": ")" + p2 + R"(", "delta": 4, "stock_after": 5})");
  append("product-" + new_uuid(), "StockReserved",
         R"({"product_id": ")" + new_uuid() + R"(", "order_id": ")" + o1 +
             R"(", "quantity": 1, "stock_after": 0})");
  append("product-" + p2, "ProductDiscontinued", R"({"product_id": ")" + p2 + R"("})");
  append("product-" + p2, "StockReleased",
         R"({"product_id": ")" + p2 + R"(", "order_id": ")" + o1 +
             R"(", "quantity": 1, "stock_after": 6})");
  // A payment before its order, then the order, then more attempts.
  append("payment-" + pay0, "PaymentInitiated",
         R"({"payment_id": ")" + pay0 + R"(", "order_id": ")" + upper(o1) + R"(", "user_id": ")" +
             u1 + R"(", "provider": "sand\"box", "amount": 2999, "currency": "USD"})");
  append(
      "order-" + o1, "OrderPlaced",
      R"({"order_id": ")" + o1 + R"(", "order_number": "SO-1\t", "user_id": ")" + u1 +
          R"(", "lines": [{"product_id": ")" + p1 + R"(", "name": ")" + odd +
          R"(", "unit_price": 1500, "quantity": 2, "line_total": 3000}], "total": 2999, "currency": "USD"})");
  append("order-" + o1, "OrderPlaced",
         R"({"order_id": ")" + o1 + R"(", "order_number": "SO-2", "user_id": ")" + u1 +
             R"(", "lines": [], "total": 1, "currency": "EUR"})");
  append("payment-" + pay0, "PaymentFailed",
         R"({"payment_id": ")" + pay0 + R"(", "order_id": ")" + o1 + R"(", "reason": "no"})");
  append("payment-" + pay1, "PaymentInitiated",
         R"({"payment_id": ")" + pay1 + R"(", "order_id": ")" + o1 + R"(", "user_id": ")" + u1 +
             R"(", "provider": "sandbox", "amount": 2999, "currency": "USD"})");
  append("payment-" + pay1, "PaymentCaptured",
         R"({"payment_id": ")" + pay1 + R"(", "order_id": ")" + o1 + R"(", "amount": 2999})");
  append("payment-" + pay1, "PaymentCaptured",
         R"({"payment_id": ")" + pay1 + R"(", "order_id": ")" + o1 + R"(", "amount": 2999})");
  append("payment-" + pay1, "PaymentInitiated",
         R"({"payment_id": ")" + pay1 + R"(", "order_id": ")" + o1 + R"(", "user_id": ")" + u1 +
             R"(", "provider": "again", "amount": 1, "currency": "USD"})");
  append("order-" + o1, "OrderPaid",
         R"({"order_id": ")" + o1 + R"(", "payment_id": ")" + pay1 + R"(", "amount": 2999})");
  append(
      "order-" + o1, "OrderShipped",
      R"({"order_id": ")" + o1 + R"(", "carrier": "DHL\t\"Express\"", "tracking_number": "\\1Z"})");
  append("order-" + o1, "OrderDelivered", R"({"order_id": ")" + o1 + R"("})");
  append("order-" + o2, "OrderPlaced",
         R"({"order_id": ")" + o2 + R"(", "order_number": "SO-3", "user_id": ")" + u2 +
             R"(", "lines": [], "total": 0, "currency": "JPY"})");
  // A payment event naming an order that has no payment: the order's copy becomes null.
  append("payment-" + new_uuid(), "PaymentCaptured",
         R"({"payment_id": ")" + new_uuid() + R"(", "order_id": ")" + o2 + R"(", "amount": 1})");
  append("order-" + o2, "OrderCancelled", R"({"order_id": ")" + o2 + R"(", "reason": "r"})");
  append("order-" + new_uuid(), "OrderPaid",
         R"({"order_id": ")" + new_uuid() + R"(", "payment_id": ")" + pay1 + R"(", "amount": 1})");
  append("cart-" + u1, "CartCheckedOut",
         R"({"user_id": ")" + u1 + R"(", "order_id": ")" + o1 + R"("})");
  append("cart-" + u1, "CartItemAdded",
         R"({"user_id": ")" + u1 + R"(", "product_id": ")" + p2 +
             R"(", "name": "after", "unit_price": 5, "quantity": 1, "line_quantity": 1})");

  const std::string reference = project_with_sql();
  EXPECT_EQ(count(live_schema(), "rm_users"), 2);
  EXPECT_EQ(count(live_schema(), "rm_cart_items"), 2);

  // In one go, and flushing after every event (every row written, then rewritten).
  create_version("rm_v2");
  bulk_build(url_, "rm_v2");
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v2"), reference);
  create_version("rm_v3");
  bulk_build(url_, "rm_v3", {.flush_every = 1, .batch_size = 1});
  EXPECT_EQ(testing::dump_read_models_in(*conn_, "rm_v3"), reference);
  EXPECT_EQ(checkpoint("rm_v3"), checkpoint(live_schema()));
}

TEST_F(BulkTest, AnEventTheProjectorCannotApplyStopsTheBuildToo) {
  const auto cat = new_uuid();
  service_->create_category({cat, "Computers", std::nullopt}, ctx());
  append("product-x", "ProductCreated",
         R"({"product_id": "not-a-uuid", "name": "X", "description": "", "sku": "X", )"
         R"("category_id": ")" +
             cat + R"(", "price": 1, "stock": 1})");
  create_version("rm_v2");
  // The store's horizon is the cluster's: a transaction of another database (tests running in
  // parallel) can keep the new events out of reach for a moment. Call again until they are read.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    try {
      bulk_build(url_, "rm_v2", {.flush_every = 1, .batch_size = 1});
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("uuid"), std::string::npos) << e.what();
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "built past an event the projector refuses";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // What came before it is flushed; the bad event is not passed.
  const auto cp = checkpoint("rm_v2");
  ASSERT_TRUE(cp.has_value());
  EXPECT_EQ(count("rm_v2", "rm_categories"), 1);
  EXPECT_LT(cp->max_position, head_position());

  Projector p(url_, {});
  EXPECT_ANY_THROW(for (int i = 0; i < 10; ++i) p.run_once());
}

TEST_F(BulkTest, RefusesTablesItCannotContinue) {
  testing::Scenario scenario(*service_, 5);
  scenario.setup(2, 2);
  create_version("rm_v2");
  {
    // Rows without a checkpoint: not built by this function, nothing to continue from.
    pqxx::work tx(*conn_);
    tx.exec("INSERT INTO rm_v2.rm_users VALUES (gen_random_uuid(), 'a@b.c', 'A', '{}', now())");
    tx.commit();
  }
  EXPECT_THROW(bulk_build(url_, "rm_v2"), std::runtime_error);

  create_version("rm_v3");
  {
    pqxx::work tx(*conn_);
    tx.exec(
        "INSERT INTO rm_v3.rm_kafka_offsets (consumer_group, topic, partition) "
        "VALUES ('g', 'shop.order', 0)");
    tx.commit();
  }
  EXPECT_THROW(bulk_build(url_, "rm_v3"), WrongSource);

  EXPECT_THROW(bulk_build(url_, "no_such_schema"), std::runtime_error);

  // Another process moved the checkpoint during the build: the flush refuses to write over it.
  create_version("rm_v4");
  EXPECT_THROW(bulk_build(url_, "rm_v4", {.flush_every = 1000, .batch_size = 2},
                          [&](const BulkProgress&) {
                            pqxx::connection other(url_);
                            pqxx::work tx(other);
                            tx.exec(
                                "INSERT INTO rm_v4.rm_checkpoints (name, last_tx, "
                                "last_position, max_position) VALUES ('read_models', '1', "
                                "1, 1) ON CONFLICT DO NOTHING");
                            tx.commit();
                          }),
               std::runtime_error);
  EXPECT_EQ(count("rm_v4", "rm_users"), 0);
}

}  // namespace
}  // namespace shop::projector
