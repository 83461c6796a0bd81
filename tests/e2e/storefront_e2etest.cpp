// End to end: the three real binaries on a throwaway database, driven over HTTP as a storefront
// and an admin would.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "shop/events/events.h"
#include "shop/events/types.h"
#include "shop/infra/crypto.h"
#include "shop/infra/schema.h"
#include "support/http_client.h"
#include "support/pg_fixture.h"
#include "support/processes.h"

namespace shop::testing {
namespace {

const std::string kWebhookSecret = "whsec_e2e_0123456789";

std::string field(const json::Value& v, const char* name) { return json::get_string(v, name); }
long long num(const json::Value& v, const char* name) { return json::get_int(v, name, -1); }

class Stack {
 public:
  Stack() {
    infra::crypto_init();
    url_ = create_test_database("e2e");
    dir_ = std::filesystem::temp_directory_path() / ("shop-e2e-" + new_uuid().substr(0, 8));
    std::filesystem::create_directories(dir_);
    cmd_port_ = free_port();
    query_port_ = free_port();
    env_ = {{"DATABASE_URL", url_},
            {"JWT_SECRET", "e2e-secret-0123456789-0123456789-0123456789"},
            {"PAYMENT_WEBHOOK_SECRET", kWebhookSecret},
            {"COMMAND_API_PORT", std::to_string(cmd_port_)},
            {"QUERY_API_PORT", std::to_string(query_port_)},
            {"ENV_FILE", (dir_ / "none.env").string()},
            // Reads wait for the writes they name; a loaded CI machine (sanitizer builds, tests
            // in parallel) may need longer than the default 3 s.
            {"READ_YOUR_WRITES_TIMEOUT_MS", "30000"},
            {"LOG_LEVEL", "warn"}};
    std::string out;
    if (run_command(SHOP_SHOPCTL_BIN,
                    {"create-admin", "--email", "admin@e2e.test", "--password", "admin-password"},
                    env_, out) != 0) {
      throw std::runtime_error("create-admin failed: " + out);
    }
    if (run_command(SHOP_SHOPCTL_BIN, {"seed-demo"}, env_, out) != 0) {
      throw std::runtime_error("seed-demo failed: " + out);
    }
    start_projector();
    command_ = std::make_unique<ChildProcess>(SHOP_COMMAND_API_BIN, std::vector<std::string>{},
                                              env_, (dir_ / "command-api.log").string());
    query_ = std::make_unique<ChildProcess>(SHOP_QUERY_API_BIN, std::vector<std::string>{}, env_,
                                            (dir_ / "query-api.log").string());
    if (!wait_for_port(cmd_port_, 30000) || !wait_for_port(query_port_, 30000)) {
      throw std::runtime_error("services did not start:\n" + command_->log() + query_->log());
    }
  }
  ~Stack() {
    command_.reset();
    query_.reset();
    projector_.reset();
    drop_test_database(url_);
  }

  void start_projector() {
    projector_ = std::make_unique<ChildProcess>(SHOP_PROJECTOR_BIN, std::vector<std::string>{},
                                                env_, (dir_ / "projector.log").string());
  }
  ChildProcess& projector() { return *projector_; }
  bool services_alive() { return command_->running() && query_->running() && projector_->running(); }
  std::string logs() { return command_->log() + query_->log() + projector_->log(); }

  HttpClient cmd() { return HttpClient("127.0.0.1", cmd_port_); }
  HttpClient query() { return HttpClient("127.0.0.1", query_port_); }
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::filesystem::path dir_;
  unsigned short cmd_port_ = 0, query_port_ = 0;
  std::map<std::string, std::string> env_;
  std::unique_ptr<ChildProcess> projector_, command_, query_;
};

class StorefrontE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { stack_ = new Stack(); }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  void TearDown() override {
    EXPECT_TRUE(stack_->services_alive()) << stack_->logs();
    check_stored_events();
  }

  // Every event stored so far matches its JSON Schema and has a complete envelope, and in the
  // global order that readers follow every stream is in version order. Returns the event types.
  static std::set<std::string> check_stored_events() {
    pqxx::connection conn(stack_->url());
    pqxx::work tx(conn);
    auto rows = tx.exec(
        "SELECT position, type, schema_version, data::text, event_id::text, "
        "correlation_id::text, causation_id::text, stream_id FROM events ORDER BY position");
    const auto& registry = infra::SchemaRegistry::instance();
    std::set<std::string> types;
    for (const auto& row : rows) {
      const std::string type = row[1].c_str();
      types.insert(type);
      json::Document doc;
      EXPECT_TRUE(json::parse(row[3].c_str(), doc).empty());
      auto problems = registry.validate("events/" + type, doc);
      EXPECT_TRUE(problems.empty()) << "event " << row[0].c_str() << " " << type << ": "
                                    << (problems.empty() ? "" : problems[0]);
      EXPECT_EQ(row[2].as<int>(), 1);
      EXPECT_TRUE(is_uuid(row[4].c_str()) && is_uuid(row[5].c_str()) && is_uuid(row[6].c_str()));
      const std::string stream = row[7].c_str();
      EXPECT_TRUE(is_uuid(stream.substr(stream.find('-') + 1))) << stream;
    }
    auto disorder = tx.exec(
        "SELECT count(*) FROM (SELECT stream_version, lag(stream_version) OVER (PARTITION BY "
        "stream_id ORDER BY tx_id, position) AS prev FROM events) v WHERE prev >= stream_version");
    EXPECT_EQ(disorder[0][0].as<int>(), 0);
    return types;
  }

  static std::string login(HttpClient& c, const std::string& email, const std::string& password) {
    auto r = c.post("/api/auth/login",
                    R"({"email":")" + email + R"(","password":")" + password + R"("})");
    EXPECT_EQ(r.status, 200) << r.body;
    return field(r.json(), "access");
  }
  static std::string new_customer(HttpClient& c, const std::string& name) {
    const std::string email = name + "-" + new_uuid().substr(0, 8) + "@e2e.test";
    auto r = c.post("/api/auth/register",
                    R"({"email":")" + email + R"(","password":"customer-password","name":")" +
                        name + R"("})");
    EXPECT_EQ(r.status, 201) << r.body;
    return login(c, email, "customer-password");
  }
  static std::vector<std::pair<std::string, std::string>> at(long long position) {
    return {{"X-Min-Position", std::to_string(position)}};
  }
  static HttpResult pay(HttpClient& c, const std::string& payment_id, const std::string& status) {
    const std::string body =
        R"({"payment_id":")" + payment_id + R"(","status":")" + status + R"("})";
    return c.post("/api/payments/sandbox/webhook", body, "",
                  {{"X-Sandbox-Signature", infra::hmac_sha256_hex(kWebhookSecret, body)}});
  }
  // The first product of the demo catalog whose SKU starts with `sku_prefix`.
  static json::Document product(HttpClient& q, const std::string& sku) {
    auto r = q.get("/api/products?q=" + sku + "&limit=5");
    EXPECT_EQ(r.status, 200) << r.body;
    auto d = r.json();
    for (const auto& item : d["items"].GetArray()) {
      if (field(item, "sku") == sku) {
        json::Document out;
        out.CopyFrom(item, out.GetAllocator());
        return out;
      }
    }
    ADD_FAILURE() << "no product " << sku << ": " << r.body;
    return {};
  }

  static Stack* stack_;
};
Stack* StorefrontE2E::stack_ = nullptr;

TEST_F(StorefrontE2E, ABuyerGoesFromRegistrationToDelivery) {
  auto c = stack_->cmd();
  auto q = stack_->query();
  ASSERT_EQ(c.get("/health").status, 200);
  ASSERT_EQ(q.get("/health").status, 200);

  // Browse and filter the catalog.
  auto cats = q.get("/api/categories", "", at(1));
  ASSERT_EQ(cats.status, 200) << cats.body;
  std::string laptops;
  const auto cats_doc = cats.json();
  for (const auto& cat : cats_doc["items"].GetArray()) {
    if (field(cat, "name") == "Laptops") laptops = field(cat, "id");
  }
  ASSERT_FALSE(laptops.empty()) << cats.body;
  auto list = q.get("/api/products?category_id=" + laptops + "&sort=price&limit=2");
  ASSERT_EQ(list.status, 200) << list.body;
  auto page = list.json();
  ASSERT_EQ(page["items"].Size(), 2u);
  EXPECT_EQ(field(page["items"][0], "name"), "Note 13 Chromebook");  // the cheapest laptop
  EXPECT_EQ(field(page["items"][0], "price"), "449.00");
  ASSERT_TRUE(page["next_cursor"].IsString());
  auto next = q.get("/api/products?category_id=" + laptops + "&sort=price&limit=2&cursor=" +
                    field(page, "next_cursor"));
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(next.json()["items"].Size(), 1u);
  EXPECT_EQ(q.get("/api/products?max_price=100.00&in_stock=true").json()["items"].Size(), 4u);
  EXPECT_EQ(q.get("/api/products?q=ultrawide").json()["items"].Size(), 1u);

  // Register, sign in, fill the cart.
  const std::string token = new_customer(c, "ann");
  auto monitor = product(q, "MON-27-4K");
  const std::string monitor_id = field(monitor, "id");
  const long long stock_before = num(monitor, "stock");
  auto add = c.post("/api/cart/items", R"({"product_id":")" + monitor_id + R"(","quantity":2})",
                    token);
  ASSERT_EQ(add.status, 200) << add.body;
  auto cart = q.get("/api/cart", token, at(num(add.json(), "position")));
  ASSERT_EQ(cart.status, 200) << cart.body;
  EXPECT_EQ(field(cart.json(), "total"), "899.98");
  EXPECT_EQ(num(cart.json(), "item_count"), 2);

  // Place the order (twice with one key: one order).
  auto placed = c.post("/api/orders", "", token, {{"Idempotency-Key", "checkout-ann-1"}});
  ASSERT_EQ(placed.status, 201) << placed.body;
  auto again = c.post("/api/orders", "", token, {{"Idempotency-Key", "checkout-ann-1"}});
  ASSERT_EQ(again.status, 201) << again.body;
  auto order = placed.json();
  const std::string order_id = field(order, "order_id");
  EXPECT_EQ(field(again.json(), "order_id"), order_id);
  EXPECT_EQ(field(order, "status"), "pending");
  EXPECT_EQ(field(order, "total"), "899.98");
  auto seen = q.get("/api/orders/" + order_id, token, at(num(order, "position")));
  ASSERT_EQ(seen.status, 200) << seen.body;
  EXPECT_EQ(field(seen.json(), "status"), "pending");
  auto after = q.get("/api/products/" + monitor_id, "", at(num(order, "position")));
  EXPECT_EQ(num(after.json(), "stock"), stock_before - 2);
  EXPECT_EQ(q.get("/api/cart", token).json()["items"].Size(), 0u);

  // Pay through the signed sandbox webhook; a replay changes nothing.
  auto payment = c.post("/api/orders/" + order_id + "/payments", R"({"provider":"sandbox"})", token);
  ASSERT_EQ(payment.status, 201) << payment.body;
  const std::string payment_id = field(payment.json(), "payment_id");
  EXPECT_EQ(field(payment.json(), "amount"), "899.98");
  EXPECT_EQ(c.post("/api/payments/sandbox/webhook",
                   R"({"payment_id":")" + payment_id + R"(","status":"succeeded"})", "",
                   {{"X-Sandbox-Signature", std::string(64, '0')}})
                .status,
            401);
  auto paid = pay(c, payment_id, "succeeded");
  ASSERT_EQ(paid.status, 200) << paid.body;
  auto replay = pay(c, payment_id, "succeeded");
  ASSERT_EQ(replay.status, 200) << replay.body;
  EXPECT_EQ(num(replay.json(), "position"), num(paid.json(), "position"));
  auto view = q.get("/api/orders/" + order_id, token, at(num(paid.json(), "position")));
  EXPECT_EQ(field(view.json(), "status"), "paid");
  EXPECT_EQ(field(view.json()["payment"], "status"), "captured");

  // Staff ship and deliver.
  const std::string admin = login(c, "admin@e2e.test", "admin-password");
  EXPECT_EQ(c.post("/api/admin/orders/" + order_id + "/ship",
                   R"({"carrier":"UPS","tracking_number":"1Z999"})", token)
                .status,
            403);
  auto shipped = c.post("/api/admin/orders/" + order_id + "/ship",
                        R"({"carrier":"UPS","tracking_number":"1Z999"})", admin);
  ASSERT_EQ(shipped.status, 200) << shipped.body;
  auto delivered = c.post("/api/admin/orders/" + order_id + "/deliver", "", admin);
  ASSERT_EQ(delivered.status, 200) << delivered.body;
  EXPECT_EQ(c.post("/api/orders/" + order_id + "/cancel", "", token).status, 409);
  auto final_view = q.get("/api/orders/" + order_id, token, at(num(delivered.json(), "position")));
  auto fv = final_view.json();
  EXPECT_EQ(field(fv, "status"), "delivered");
  ASSERT_EQ(fv["status_history"].Size(), 4u);
  EXPECT_EQ(field(fv["status_history"][1], "status"), "paid");
  EXPECT_EQ(field(fv["shipment"], "tracking_number"), "1Z999");
  auto mine = q.get("/api/orders", token);
  EXPECT_EQ(mine.json()["items"].Size(), 1u);
  auto all = q.get("/api/admin/orders", admin);
  EXPECT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(q.get("/api/admin/orders", token).status, 403);

  // Another order, cancelled: the stock comes back.
  add = c.post("/api/cart/items", R"({"product_id":")" + monitor_id + R"(","quantity":3})", token);
  ASSERT_EQ(add.status, 200) << add.body;
  auto second = c.post("/api/orders", "", token);
  ASSERT_EQ(second.status, 201) << second.body;
  const std::string second_id = field(second.json(), "order_id");
  auto reserved = q.get("/api/products/" + monitor_id, "", at(num(second.json(), "position")));
  EXPECT_EQ(num(reserved.json(), "stock"), stock_before - 5);
  auto cancelled = c.post("/api/orders/" + second_id + "/cancel", "", token);
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  auto restored = q.get("/api/products/" + monitor_id, "", at(num(cancelled.json(), "position")));
  EXPECT_EQ(num(restored.json(), "stock"), stock_before - 2);
  auto cv = q.get("/api/orders/" + second_id, token, at(num(cancelled.json(), "position")));
  EXPECT_EQ(field(cv.json(), "status"), "cancelled");

  // Cart edits: change a quantity, remove a line.
  auto keyboard = product(q, "KBD-SLIM-BT");
  const std::string keyboard_id = field(keyboard, "id");
  ASSERT_EQ(c.post("/api/cart/items", R"({"product_id":")" + keyboard_id + R"(","quantity":1})",
                   token).status,
            200);
  ASSERT_EQ(c.post("/api/cart/items", R"({"product_id":")" + monitor_id + R"(","quantity":1})",
                   token).status,
            200);
  auto changed = c.patch("/api/cart/items/" + keyboard_id, R"({"quantity":4})", token);
  ASSERT_EQ(changed.status, 200) << changed.body;
  auto removed = c.del("/api/cart/items/" + monitor_id, token);
  ASSERT_EQ(removed.status, 200) << removed.body;
  auto edited = q.get("/api/cart", token, at(num(removed.json(), "position")));
  ASSERT_EQ(edited.json()["items"].Size(), 1u) << edited.body;
  EXPECT_EQ(num(edited.json()["items"][0], "quantity"), 4);
  EXPECT_EQ(field(edited.json(), "total"), "199.96");

  // A declined payment leaves the order pending.
  auto third = c.post("/api/orders", "", token);
  ASSERT_EQ(third.status, 201) << third.body;
  const std::string third_id = field(third.json(), "order_id");
  auto attempt = c.post("/api/orders/" + third_id + "/payments", R"({"provider":"sandbox"})", token);
  ASSERT_EQ(attempt.status, 201) << attempt.body;
  auto declined = pay(c, field(attempt.json(), "payment_id"), "failed");
  ASSERT_EQ(declined.status, 200) << declined.body;
  EXPECT_EQ(field(declined.json(), "status"), "failed");
  auto tv = q.get("/api/orders/" + third_id, token, at(num(declined.json(), "position")));
  EXPECT_EQ(field(tv.json(), "status"), "pending");
  EXPECT_EQ(field(tv.json()["payment"], "status"), "failed");

  // Staff manage the catalog: price change (with If-Match), stock, soft delete.
  auto kb = q.get("/api/products/" + keyboard_id, "", at(num(declined.json(), "position")));
  const long long kb_stock = num(kb.json(), "stock");
  auto stale = c.patch("/api/admin/products/" + keyboard_id, R"({"price":"44.99"})", admin,
                       {{"If-Match", "\"999\""}});
  EXPECT_EQ(stale.status, 412) << stale.body;
  auto repriced = c.patch("/api/admin/products/" + keyboard_id, R"({"price":"44.99"})", admin);
  ASSERT_EQ(repriced.status, 200) << repriced.body;
  auto restocked = c.post("/api/admin/products/" + keyboard_id + "/stock", R"({"delta":5})", admin);
  ASSERT_EQ(restocked.status, 200) << restocked.body;
  EXPECT_EQ(num(restocked.json(), "stock"), kb_stock + 5);
  EXPECT_EQ(c.post("/api/admin/products/" + keyboard_id + "/stock", R"({"delta":-100000})", admin)
                .status,
            409);
  auto kb2 = q.get("/api/products/" + keyboard_id, "", at(num(restocked.json(), "position")));
  EXPECT_EQ(field(kb2.json(), "price"), "44.99");
  auto gone = c.del("/api/admin/products/" + keyboard_id, admin);
  ASSERT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(q.get("/api/products/" + keyboard_id, "", at(num(gone.json(), "position"))).status,
            404);
  EXPECT_EQ(c.post("/api/cart/items", R"({"product_id":")" + keyboard_id + R"(","quantity":1})",
                   token).status,
            404);

  // Nobody else sees Ann's orders.
  const std::string bob = new_customer(c, "bob");
  EXPECT_EQ(q.get("/api/orders/" + order_id, bob).status, 404);
  EXPECT_EQ(q.get("/api/orders", bob).json()["items"].Size(), 0u);
  EXPECT_EQ(c.post("/api/orders/" + second_id + "/cancel", "", bob).status, 404);
  EXPECT_EQ(c.post("/api/orders/" + order_id + "/payments", R"({"provider":"sandbox"})", bob).status,
            404);

  // Sessions: rotation, reuse of a spent refresh token, logout; an ended session's access token
  // gets 401 from the command API at once and from the query API once projected (plus at most
  // REVOCATION_REFRESH_MS).
  {
    const std::string email = "carol-" + new_uuid().substr(0, 8) + "@e2e.test";
    auto reg =
        c.post("/api/auth/register",
               R"({"email":")" + email + R"(","password":"customer-password","name":"Carol"})");
    ASSERT_EQ(reg.status, 201) << reg.body;
    const std::string first_refresh = field(reg.json(), "refresh");
    auto rotated = c.post("/api/auth/refresh", R"({"refresh":")" + first_refresh + "\"}");
    ASSERT_EQ(rotated.status, 200) << rotated.body;
    const std::string carol = field(rotated.json(), "access");
    EXPECT_EQ(q.get("/api/users/me", carol, at(num(rotated.json(), "position"))).status, 200);
    auto reused = c.post("/api/auth/refresh", R"({"refresh":")" + first_refresh + "\"}");
    EXPECT_EQ(reused.status, 401) << reused.body;
    EXPECT_EQ(
        c.post("/api/cart/items", R"({"product_id":")" + keyboard_id + R"(","quantity":1})", carol)
            .status,
        401);
    auto relogin =
        c.post("/api/auth/login", R"({"email":")" + email + R"(","password":"customer-password"})");
    ASSERT_EQ(relogin.status, 200) << relogin.body;
    const std::string fresh = field(relogin.json(), "access");
    auto out =
        c.post("/api/auth/logout", R"({"refresh":")" + field(relogin.json(), "refresh") + "\"}");
    ASSERT_EQ(out.status, 200) << out.body;
    EXPECT_EQ(c.post("/api/auth/logout-all", "", fresh).status, 401);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    do {
      status = q.get("/api/users/me", fresh, at(num(out.json(), "position"))).status;
      if (status != 401) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (status != 401 && std::chrono::steady_clock::now() < deadline);
    EXPECT_EQ(status, 401);
    EXPECT_EQ(q.get("/api/users/me", carol).status, 401);
  }

  // Accounts: Dave gives a name and a mobile number, removes the number, changes his password
  // (his other session ends); an admin makes him staff, then takes it away (his sessions end).
  {
    const std::string email = "dave-" + new_uuid().substr(0, 8) + "@e2e.test";
    auto reg =
        c.post("/api/auth/register",
               R"({"email":")" + email + R"(","password":"customer-password","name":"Dave"})");
    ASSERT_EQ(reg.status, 201) << reg.body;
    const std::string dave = field(reg.json(), "access");
    const std::string dave_id = field(reg.json(), "user_id");
    const std::string other = login(c, email, "customer-password");
    auto profile =
        c.patch("/api/users/me", R"({"name":"Dave D.","phone":"+49 151 1234-5678"})", dave);
    ASSERT_EQ(profile.status, 200) << profile.body;
    auto me = q.get("/api/users/me", dave, at(num(profile.json(), "position")));
    ASSERT_EQ(me.status, 200) << me.body;
    EXPECT_EQ(field(me.json(), "name"), "Dave D.");
    EXPECT_EQ(field(me.json(), "phone"), "+4915112345678");
    EXPECT_EQ(c.patch("/api/users/me", R"({"phone":null})", dave).status, 200);
    EXPECT_EQ(c.patch("/api/users/me", R"({"roles":["admin"]})", dave).status, 400);

    auto changed_password = c.post(
        "/api/users/me/password",
        R"({"current_password":"customer-password","new_password":"a new customer password"})",
        dave);
    ASSERT_EQ(changed_password.status, 200) << changed_password.body;
    EXPECT_EQ(num(changed_password.json(), "revoked_sessions"), 1);
    EXPECT_EQ(c.patch("/api/users/me", R"({"name":"Dave"})", other).status, 401);
    EXPECT_EQ(
        c.post("/api/auth/login", R"({"email":")" + email + R"(","password":"customer-password"})")
            .status,
        401);
    const std::string signed_in_again = login(c, email, "a new customer password");

    const std::string roles = "/api/admin/users/" + dave_id + "/roles";
    EXPECT_EQ(c.post(roles, R"({"roles":["customer","staff"]})", dave).status, 403);
    auto granted = c.post(roles, R"({"roles":["customer","staff"]})", admin);
    ASSERT_EQ(granted.status, 200) << granted.body;
    auto taken = c.post(roles, R"({"roles":["customer"]})", admin);
    ASSERT_EQ(taken.status, 200) << taken.body;
    EXPECT_EQ(num(taken.json(), "revoked_sessions"), 2);  // the registration's and the new one
    EXPECT_EQ(c.patch("/api/users/me", R"({"name":"Dave"})", signed_in_again).status, 401);
    auto listed =
        q.get("/api/admin/users?email=" + email, admin, at(num(taken.json(), "position")));
    ASSERT_EQ(listed.status, 200) << listed.body;
    const auto listed_doc = listed.json();
    ASSERT_EQ(listed_doc["items"].Size(), 1u) << listed.body;
    EXPECT_EQ(field(listed_doc["items"][0], "id"), dave_id);
    EXPECT_EQ(listed_doc["items"][0]["roles"].Size(), 1u);
    EXPECT_TRUE(listed_doc["items"][0]["phone"].IsNull());
  }

  // This journey produced every kind of event there is.
  EXPECT_EQ(check_stored_events().size(), events::all_types().size());
}

TEST_F(StorefrontE2E, FiftyConcurrentCheckoutsOfTenInStock) {
  auto c = stack_->cmd();
  auto q = stack_->query();
  const std::string admin = login(c, "admin@e2e.test", "admin-password");
  auto cats = q.get("/api/categories");
  const std::string category = field(cats.json()["items"][0], "id");
  auto created = c.post("/api/admin/products",
                        R"({"name":"Limited Edition Keyboard","description":"only ten made",)"
                        R"("price":"199.00","stock":10,"category_id":")" +
                            category + R"(","sku":"KBD-LIMITED-10"})",
                        admin);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string product_id = field(created.json(), "id");

  constexpr int kBuyers = 50;
  std::vector<std::string> tokens(kBuyers);
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < 5; ++t) {
      threads.emplace_back([&, t] {
        auto client = stack_->cmd();
        for (int i = t; i < kBuyers; i += 5) {
          tokens[i] = new_customer(client, "buyer" + std::to_string(i));
          auto r = client.post("/api/cart/items",
                               R"({"product_id":")" + product_id + R"(","quantity":1})", tokens[i]);
          EXPECT_EQ(r.status, 200) << r.body;
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::atomic<long long> last_position{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kBuyers; ++i) {
    threads.emplace_back([&, i] {
      auto client = stack_->cmd();
      client.get("/health");  // connect before the start signal
      while (!go.load()) std::this_thread::yield();
      auto r = client.post("/api/orders", "", tokens[i]);
      if (r.status == 201) {
        ++ok;
        long long p = num(r.json(), "position");
        long long cur = last_position.load();
        while (p > cur && !last_position.compare_exchange_weak(cur, p)) {
        }
      } else if (r.status == 409) {
        EXPECT_EQ(field(r.json()["error"], "code"), "insufficient_stock") << r.body;
        ++refused;
      } else {
        ++other;
        ADD_FAILURE() << r.status << " " << r.body;
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 10);
  EXPECT_EQ(refused.load(), 40);
  EXPECT_EQ(other.load(), 0);
  auto p = q.get("/api/products/" + product_id, "", at(last_position.load()));
  ASSERT_EQ(p.status, 200) << p.body << "\n" << stack_->logs();
  EXPECT_EQ(num(p.json(), "stock"), 0);
  EXPECT_FALSE(json::get_bool(p.json(), "in_stock", true));
}

TEST_F(StorefrontE2E, BadInputGetsAClearJsonErrorAndNothingBreaks) {
  auto c = stack_->cmd();
  auto q = stack_->query();
  const std::string token = new_customer(c, "mallory");
  struct Case {
    std::string method, target, body, content_type;
    int status;
    std::string code;
    bool auth;
  };
  const std::string pid = new_uuid();
  const std::vector<Case> cases = {
      {"POST", "/api/auth/register", "{", "application/json", 400, "invalid_json", false},
      {"POST", "/api/auth/register", "[]", "application/json", 400, "validation_failed", false},
      {"POST", "/api/auth/register", R"({"email":"a@b.co","password":"x"})", "application/json",
       400, "validation_failed", false},
      {"POST", "/api/auth/register",
       R"({"email":"a@b.co","password":"long enough pw","name":"A","roles":["admin"]})",
       "application/json", 400, "validation_failed", false},
      {"POST", "/api/auth/register", R"({"email":1,"password":"long enough pw","name":"A"})",
       "application/json", 400, "validation_failed", false},
      {"POST", "/api/auth/register", R"({"email":"a@b.co"})", "text/plain", 415,
       "unsupported_media_type", false},
      {"POST", "/api/cart/items", R"({"product_id":")" + pid + R"(","quantity":1})",
       "application/json", 401, "unauthenticated", false},
      {"POST", "/api/cart/items", R"({"product_id":"not-a-uuid","quantity":1})",
       "application/json", 400, "validation_failed", true},
      {"POST", "/api/cart/items", R"({"product_id":")" + pid + R"(","quantity":1.5})",
       "application/json", 400, "validation_failed", true},
      {"POST", "/api/cart/items", R"({"product_id":")" + pid + R"(","quantity":99999999999999999999})",
       "application/json", 400, "validation_failed", true},
      {"POST", "/api/cart/items", R"({"product_id":")" + pid + R"(","quantity":1})",
       "application/json", 404, "not_found", true},
      {"POST", "/api/admin/categories", R"({"name":"X"})", "application/json", 403, "forbidden",
       true},
      {"DELETE", "/api/cart/items/%zz", "", "", 400, "bad_request", true},
      {"PATCH", "/api/cart/items/" + pid, R"({"quantity":-1})", "application/json", 400,
       "validation_failed", true},
      {"POST", "/api/orders", "", "", 409, "cart_empty", true},
      {"POST", "/api/orders/" + pid + "/cancel", "", "", 404, "not_found", true},
      {"POST", "/api/nope", "{}", "application/json", 404, "not_found", false},
      {"PUT", "/api/orders", "{}", "application/json", 405, "method_not_allowed", true},
      {"POST", "/api/payments/sandbox/webhook", "{}", "application/json", 401,
       "invalid_signature", false},
  };
  for (const auto& k : cases) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (k.auth) headers.emplace_back("Authorization", "Bearer " + token);
    auto r = c.request(k.method, k.target, k.body, headers, k.content_type);
    EXPECT_EQ(r.status, k.status) << k.method << " " << k.target << " " << k.body << " -> " << r.body;
    auto d = r.json();
    ASSERT_TRUE(d.IsObject() && d.HasMember("error")) << r.body;
    EXPECT_EQ(field(d["error"], "code"), k.code) << k.target << " " << r.body;
    EXPECT_FALSE(field(d["error"], "message").empty());
  }
  // Tokens: tampered, wrong scheme, garbage.
  std::string tampered = token;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(q.get("/api/cart", tampered).status, 401);
  EXPECT_EQ(q.get("/api/cart", "", {{"Authorization", "Basic YTpi"}}).status, 401);
  EXPECT_EQ(q.get("/api/cart", "not.a.jwt").status, 401);
  EXPECT_EQ(q.get("/api/cart").status, 401);
  // Oversized body, malformed HTTP.
  auto big = c.post("/api/auth/register", std::string(2 << 20, 'x'));
  EXPECT_EQ(big.status, 413) << big.body;
  EXPECT_NE(c.raw("GARBAGE\r\n\r\n").find(" 400 "), std::string::npos);
  // Query parameters.
  EXPECT_EQ(q.get("/api/products?limit=0").status, 400);
  EXPECT_EQ(q.get("/api/products?limit=abc").status, 400);
  EXPECT_EQ(q.get("/api/products?min_price=-1").status, 400);
  EXPECT_EQ(q.get("/api/products?sort=price;DROP").status, 400);
  EXPECT_EQ(q.get("/api/products?cursor=AAAA").status, 400);
  EXPECT_EQ(q.get("/api/products?q=%27%3B%20DROP%20TABLE%20events%3B--").status, 200);
  EXPECT_EQ(q.get("/api/products/not-a-uuid").status, 404);
  EXPECT_EQ(q.get("/api/products", "", {{"X-Min-Position", "soon"}}).status, 400);
  // And the services are all still up.
  EXPECT_EQ(c.get("/health").status, 200);
  EXPECT_EQ(q.get("/health").status, 200);
}

// kill -9 the projector again and again while commands flow; the read models must end up exactly
// as a projection from scratch makes them: nothing lost, nothing applied twice.
TEST_F(StorefrontE2E, ProjectorKilledMidStreamLosesAndDuplicatesNothing) {
  auto c = stack_->cmd();
  auto q = stack_->query();
  const std::string token = new_customer(c, "kim");
  auto mouse = product(q, "MSE-PRO-WL");
  const std::string mouse_id = field(mouse, "id");
  std::atomic<bool> stop{false};
  std::atomic<int> cycles{0};
  std::thread writer([&] {
    auto client = stack_->cmd();
    while (!stop.load()) {
      auto r = client.post("/api/cart/items",
                           R"({"product_id":")" + mouse_id + R"(","quantity":1})", token);
      if (r.status != 200) continue;
      auto o = client.post("/api/orders", "", token);
      if (o.status == 201) {
        client.post("/api/orders/" + field(o.json(), "order_id") + "/cancel", "", token);
      }
      ++cycles;
    }
  });
  // At least six kills, and enough commands in between that every kill lands mid-stream,
  // however slow the machine.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (int kills = 0; (kills < 6 || cycles.load() < 60) &&
                      std::chrono::steady_clock::now() < deadline;
       ++kills) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    stack_->projector().kill();
    stack_->start_projector();
  }
  stop = true;
  writer.join();

  // Let the projector catch up, then compare with a projection from scratch.
  long long head = 0;
  {
    pqxx::connection conn(stack_->url());
    pqxx::work tx(conn);
    head = tx.exec("SELECT max(position) FROM events")[0][0].as<long long>();
  }
  auto caught_up = [&] {
    for (int i = 0; i < 20; ++i) {
      if (q.get("/api/products/" + mouse_id, "", at(head)).status == 200) return true;
    }
    return false;
  };
  ASSERT_TRUE(caught_up()) << stack_->logs();
  const std::string dump =
      "SELECT (SELECT jsonb_agg(p ORDER BY id) FROM (SELECT id, stock, price FROM rm_products) p)"
      "::text, (SELECT jsonb_agg(o ORDER BY id) FROM (SELECT id, status, total, status_history, "
      "payment FROM rm_orders) o)::text, (SELECT jsonb_agg(ci ORDER BY user_id, product_id) FROM "
      "rm_cart_items ci)::text";
  pqxx::connection conn(stack_->url());
  std::string live;
  {
    pqxx::work tx(conn);
    auto r = tx.exec(dump);
    for (const auto& f : r[0]) live += std::string(f.is_null() ? "null" : f.c_str()) + "\n";
  }
  stack_->projector().terminate();
  {
    pqxx::work tx(conn);
    tx.exec("SELECT projection_reset('read_models')");
    tx.commit();
  }
  stack_->start_projector();
  ASSERT_TRUE(caught_up()) << stack_->logs();
  std::string rebuilt;
  {
    pqxx::work tx(conn);
    auto r = tx.exec(dump);
    for (const auto& f : r[0]) rebuilt += std::string(f.is_null() ? "null" : f.c_str()) + "\n";
  }
  EXPECT_EQ(live, rebuilt);
  EXPECT_GE(cycles.load(), 60);
}

}  // namespace
}  // namespace shop::testing
