// As-of views of the query API (GET /api/orders/{id}?as_of=, GET /api/cart?as_of=) against a real
// PostgreSQL: the command service writes events, the projector builds the read models in-process,
// and QueryApp::handle answers as the server would. The main check is an equivalence: a
// storefront scenario is run step by step, every live view is recorded with the store's head
// position and the time after each step, and at the end every recorded view is asked for again
// as of that position and as of that time and must come back byte for byte.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "pg/read_models_support.h"
#include "shop/command/service.h"
#include "shop/events/json.h"
#include "shop/infra/crypto.h"
#include "shop/infra/event_store.h"
#include "shop/projector/projector.h"
#include "shop/query/app.h"
#include "support/pg_fixture.h"

namespace shop::query {
namespace {

using namespace std::chrono_literals;

const std::string kSecret(40, 's');

// The command service's clock: every reading is 1 ms after the one before, so that every command
// has a time of its own and a time read between two commands lies strictly between them.
class TickingClock final : public Clock {
 public:
  Timestamp now() const override { return Timestamp(std::chrono::microseconds(micros_ += 1000)); }
  // The last time handed out: every event written so far occurred at or before it, every later
  // one after it.
  Timestamp last() const { return Timestamp(std::chrono::microseconds(micros_.load())); }

 private:
  mutable std::atomic<std::int64_t> micros_{
      std::chrono::duration_cast<std::chrono::microseconds>(
          (std::chrono::sys_days{std::chrono::year{2026} / 11 / 21} + 9h).time_since_epoch())
          .count()};
};

struct Reply {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  json::Document doc;

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
  std::string error_code() const {
    const json::Value* e = json::member(doc, "error");
    return e ? json::get_string(*e, "code") : std::string();
  }
  std::vector<std::string> error_details() const {
    std::vector<std::string> out;
    const json::Value* e = json::member(doc, "error");
    const json::Value* d = e ? json::member(*e, "details") : nullptr;
    if (d && d->IsArray()) {
      for (const auto& v : d->GetArray()) out.emplace_back(v.IsString() ? v.GetString() : "?");
    }
    return out;
  }
};

// A time as RFC 3339 in a query string: UTC with Z, or the same instant at another offset
// (`+` sent as %2B, as a query string needs).
std::string time_param(Timestamp t, int offset_hours = 0) {
  if (offset_hours == 0) return format_time(t);
  std::string text = format_time(t + std::chrono::hours(offset_hours));
  text.pop_back();  // the Z
  const int hours = offset_hours > 0 ? offset_hours : -offset_hours;
  text += offset_hours > 0 ? "%2B" : "-";
  if (hours < 10) text += '0';
  return text + std::to_string(hours) + ":00";
}

class AsOfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("as_of");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(std::string(40, 'k'), "shop");
    service_ = std::make_unique<command::CommandService>(*store_, *jwt_, clock_,
                                                         command::ServiceOptions{});
    projector_ = std::make_unique<projector::Projector>(url_, projector::Options{});
    Options o;
    o.database_url = url_;
    o.jwt_secret = kSecret;
    o.threads = 2;
    o.read_your_writes_timeout = 300ms;
    o.checkpoint_refresh = 0ms;
    app_ = std::make_unique<QueryApp>(std::move(o), system_clock_);
  }
  void TearDown() override {
    app_.reset();
    projector_.reset();
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  static command::Context ctx() { return command::Context::make(std::nullopt); }

  pqxx::result sql(const std::string& text) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    auto r = tx.exec(text);
    tx.commit();
    return r;
  }

  std::int64_t head() {
    return sql("SELECT coalesce(max(position), 0) FROM events")[0][0].as<std::int64_t>();
  }

  // Runs the projector until the read models include every event written so far.
  void catch_up() {
    const std::int64_t target = head();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
      const int n = projector_->run_once();
      const auto r =
          sql("SELECT coalesce(bool_and((e.tx_id, e.position) <= (c.last_tx, c.last_position)), "
              "false) FROM events e JOIN rm_checkpoints c ON c.name = 'read_models' "
              "WHERE e.position = " +
              std::to_string(target));
      if (target == 0 || r[0][0].as<bool>()) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the projector did not catch up";
      if (n == 0) std::this_thread::sleep_for(2ms);
    }
  }

  std::string token(const std::string& user_id,
                    std::vector<std::string> roles = {"customer"}) const {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return infra::JwtCodec(kSecret, "shop")
        .sign({user_id, std::move(roles), "access", new_uuid(), now + 3600, new_uuid()});
  }

  Reply get(const std::string& target, const std::string& bearer,
            std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request req;
    req.method = "GET";
    req.target = target;
    req.headers = std::move(headers);
    if (!bearer.empty()) req.headers.emplace_back("Authorization", "Bearer " + bearer);
    QueryApp* app = app_.get();
    const auto res = http::dispatch([app](http::Request& r) { return app->handle(r); }, req,
                                    app->server_options());
    Reply out{res.status, res.body, res.headers, {}};
    EXPECT_EQ(json::parse(res.body, out.doc), "") << target << ": " << res.body;
    EXPECT_EQ(res.content_type, "application/json");
    return out;
  }

  // --- a small shop, written through the command service ----------------------------------
  std::string customer(const std::string& name) {
    return service_
        ->register_user(name + "-" + new_uuid() + "@example.com", "long password", name,
                        {"customer"}, ctx())
        .id;
  }
  std::string product(const std::string& name, std::int64_t price, std::int64_t stock = 100) {
    if (category_.empty()) {
      category_ = new_uuid();
      service_->create_category({category_, "Computers", std::nullopt}, ctx());
    }
    const auto id = new_uuid();
    service_->create_product(
        {id, name, "about " + name, "SKU-" + id.substr(0, 8), category_, price, stock}, ctx());
    return id;
  }

  TickingClock clock_;
  SystemClock system_clock_;
  std::string url_;
  std::string category_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<command::CommandService> service_;
  std::unique_ptr<projector::Projector> projector_;
  std::unique_ptr<QueryApp> app_;
};

// --- equivalence with the live views -------------------------------------------------------------

struct Moment {
  std::int64_t position = 0;
  Timestamp time;
  std::map<std::string, std::string> carts;   // user id -> live body
  std::map<std::string, std::string> orders;  // order id -> live body
};

TEST_F(AsOfTest, EveryRecordedLiveViewComesBackAsOfItsPositionAndItsTime) {
  testing::Scenario scenario(*service_, 20261121);
  scenario.setup(5, 5);
  std::map<std::string, std::string> tokens;  // user id -> token
  std::map<std::string, std::string> owners;  // order id -> user id
  std::vector<Moment> moments;
  auto record = [&] {
    catch_up();
    Moment m;
    m.position = head();
    m.time = clock_.last();
    for (const auto& row : sql("SELECT id::text FROM rm_users")) {
      const std::string user = row[0].c_str();
      if (!tokens.count(user)) tokens[user] = token(user);
      const auto r = get("/api/cart", tokens[user]);
      ASSERT_EQ(r.status, 200) << r.body;
      m.carts[user] = r.body;
    }
    for (const auto& row : sql("SELECT id::text, user_id::text FROM rm_orders")) {
      const std::string user = row[1].c_str();
      if (!tokens.count(user)) tokens[user] = token(user);
      owners[row[0].c_str()] = user;
      const auto r = get("/api/orders/" + std::string(row[0].c_str()), tokens[user]);
      ASSERT_EQ(r.status, 200) << r.body;
      m.orders[row[0].c_str()] = r.body;
    }
    moments.push_back(std::move(m));
  };
  record();
  for (int i = 0; i < 150; ++i) {
    if (scenario.step() != 0) record();
  }
  scenario.finish();
  record();
  // Every order still pending: a failed attempt, a captured one, shipping, delivery for some.
  int n = 0;
  for (const auto& row : sql("SELECT id::text, user_id::text FROM rm_orders WHERE status = "
                             "'pending' ORDER BY order_number")) {
    const std::string order = row[0].c_str(), user = row[1].c_str();
    const auto failed = service_->start_payment(order, user, false, "sandbox", ctx());
    service_->settle_payment(failed.payment_id, {false, "declined"}, ctx());
    record();
    const auto paid = service_->start_payment(order, user, false, "sandbox", ctx());
    record();
    service_->settle_payment(paid.payment_id, {true, ""}, ctx());
    record();
    service_->ship_order(order, {"DHL", "JD" + std::to_string(++n)}, ctx());
    record();
    if (n % 2 == 0) {
      service_->deliver_order(order, ctx());
      record();
    }
  }

  // The scenario covered what the views show: payments of every outcome, shipments, carts whose
  // lines show a later rename or price change.
  EXPECT_GT(sql("SELECT count(*) FROM rm_payments WHERE status = 'captured'")[0][0].as<int>(), 0);
  EXPECT_GT(sql("SELECT count(*) FROM rm_payments WHERE status = 'failed'")[0][0].as<int>(), 0);
  EXPECT_GT(sql("SELECT count(*) FROM rm_orders WHERE shipment IS NOT NULL")[0][0].as<int>(), 0);
  EXPECT_GT(sql("SELECT count(*) FROM rm_orders WHERE status = 'cancelled'")[0][0].as<int>(), 0);
  EXPECT_GT(sql("SELECT count(*) FROM rm_orders WHERE status = 'delivered'")[0][0].as<int>(), 0);
  EXPECT_GT(sql("SELECT count(*) FROM rm_cart_items c JOIN events e ON e.position = "
                "c.price_position WHERE e.type = 'ProductUpdated'")[0][0]
                .as<int>(),
            0);

  const auto& last = moments.back();
  std::size_t compared = 0;
  for (std::size_t i = 0; i < moments.size(); ++i) {
    const Moment& m = moments[i];
    const int offset = i % 3 == 0 ? 0 : (i % 3 == 1 ? 2 : -5);
    const std::string bounds[] = {std::to_string(m.position), time_param(m.time, offset)};
    for (const auto& bound : bounds) {
      for (const auto& [user, body] : m.carts) {
        const auto r = get("/api/cart?as_of=" + bound, tokens[user]);
        EXPECT_EQ(r.status, 200) << bound;
        EXPECT_EQ(r.body, body) << "cart of " << user << " as of " << bound;
        ++compared;
      }
      for (const auto& [order, body] : last.orders) {
        const auto r = get("/api/orders/" + order + "?as_of=" + bound, tokens[owners[order]]);
        if (auto it = m.orders.find(order); it != m.orders.end()) {
          EXPECT_EQ(r.status, 200) << bound;
          EXPECT_EQ(r.body, it->second) << "order " << order << " as of " << bound;
        } else {
          // Placed later: it did not exist yet.
          EXPECT_EQ(r.status, 404) << "order " << order << " as of " << bound << ": " << r.body;
          EXPECT_EQ(r.error_code(), "not_found");
        }
        ++compared;
      }
    }
  }
  EXPECT_GT(moments.size(), 100u);
  EXPECT_GT(last.orders.size(), 5u);
  EXPECT_GT(compared, 1000u);
}

// --- the as_of parameter -------------------------------------------------------------------------

TEST_F(AsOfTest, MalformedAsOfIsBadRequestNamingTheParameter) {
  const auto ann = customer("Ann");
  service_->add_cart_item(ann, product("Aero", 1000), 1, ctx());
  const auto order = service_->place_order(ann, std::nullopt, ctx()).order_id;
  const auto t = token(ann);
  for (const std::string& bad :
       std::vector<std::string>{"-1",
                                "abc",
                                "1.5",
                                "1e3",
                                "0x10",
                                "%2B5",
                                "%205",
                                "5%20",
                                "2026-11-21",
                                "2026-11-21T09:00:00",
                                "2026-11-21T09:00:00+02:00" /* '+' unencoded: a space */,
                                "2026-11-21T09:00:00%2B2",
                                "2026-13-01T00:00:00Z",
                                "2026-11-21T25:00:00Z",
                                "2026-11-21T09:00:00Zjunk",
                                "99999999999999999999",
                                "9223372036854775808",
                                "now",
                                "%FF",
                                std::string(65, '1')}) {
    for (const auto& target :
         {"/api/cart?as_of=" + bad, "/api/orders/" + order + "?as_of=" + bad}) {
      const auto r = get(target, t);
      EXPECT_EQ(r.status, 400) << target << ": " << r.body;
      EXPECT_EQ(r.error_code(), "invalid_parameter") << target;
      EXPECT_EQ(r.error_details(), std::vector<std::string>{"as_of"}) << target;
    }
  }
  // Accepted: the largest position, a lower-case t and z, a fraction of any length, an offset.
  for (const std::string& good :
       std::vector<std::string>{"9223372036854775807", "0", "2026-11-21t09:00:00z",
                                "2026-11-21T09:00:00.123456789Z", "2026-11-21T11:00:00%2B02:00",
                                "0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-01:00"}) {
    EXPECT_EQ(get("/api/cart?as_of=" + good, t).status, 200) << good;
  }
  // An empty value is no value: the live view.
  catch_up();
  const auto live = get("/api/orders/" + order + "?as_of=", t);
  EXPECT_EQ(live.status, 200) << live.body;
  EXPECT_NE(live.header("X-Position"), "");
  // Without a token, 401 first.
  EXPECT_EQ(get("/api/cart?as_of=abc", "").status, 401);
}

// --- access --------------------------------------------------------------------------------------

TEST_F(AsOfTest, OrdersAsOfAreTheOwnersAndStaffsOnly) {
  const auto ann = customer("Ann"), bob = customer("Bob");
  service_->add_cart_item(ann, product("Aero", 129999), 2, ctx());
  const auto placed = service_->place_order(ann, std::nullopt, ctx());
  const std::string as_of = "?as_of=" + std::to_string(placed.position);
  const std::string path = "/api/orders/" + placed.order_id;

  const auto own = get(path + as_of, token(ann));
  ASSERT_EQ(own.status, 200) << own.body;
  EXPECT_EQ(json::get_string(own.doc, "status"), "pending");
  EXPECT_EQ(json::get_string(own.doc, "total"), "2599.98");

  // Someone else's order does not exist, as of any time.
  for (const auto& bound :
       {as_of, std::string("?as_of=9223372036854775807"), "?as_of=" + format_time(clock_.last())}) {
    const auto other = get(path + bound, token(bob));
    EXPECT_EQ(other.status, 404) << other.body;
    EXPECT_EQ(other.error_code(), "not_found");
  }
  // Nor does an unknown or malformed id.
  EXPECT_EQ(get("/api/orders/" + new_uuid() + as_of, token(ann)).status, 404);
  EXPECT_EQ(get("/api/orders/not-an-id" + as_of, token(ann)).status, 404);

  // Staff and admins read any order as of any time, the same view as its owner's.
  for (const auto& role : {"staff", "admin"}) {
    const auto staff = get(path + as_of, token(new_uuid(), {role}));
    EXPECT_EQ(staff.status, 200) << role << ": " << staff.body;
    EXPECT_EQ(staff.body, own.body) << role;
  }
  // Upper-case ids are the same order.
  std::string upper = placed.order_id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(get("/api/orders/" + upper + as_of, token(ann)).body, own.body);
}

TEST_F(AsOfTest, BeforeTheOrderExistedItIsNotFound) {
  const auto ann = customer("Ann");
  service_->add_cart_item(ann, product("Aero", 1000), 1, ctx());
  const auto before_time = clock_.last();
  const auto placed = service_->place_order(ann, std::nullopt, ctx());
  // The order's first event is OrderPlaced; the checkout's other events follow it.
  const auto placed_at =
      sql("SELECT position FROM events WHERE stream_id = 'order-" + placed.order_id + "'")[0][0]
          .as<std::int64_t>();
  const std::string path = "/api/orders/" + placed.order_id + "?as_of=";
  for (const auto& who : {token(ann), token(new_uuid(), {"admin"})}) {
    for (const auto& bound :
         {std::string("0"), std::to_string(placed_at - 1), time_param(before_time),
          time_param(before_time, -5), std::string("0001-01-01T00:00:00Z")}) {
      const auto r = get(path + bound, who);
      EXPECT_EQ(r.status, 404) << bound << ": " << r.body;
      EXPECT_EQ(r.error_code(), "not_found") << bound;
    }
    EXPECT_EQ(get(path + std::to_string(placed_at), who).status, 200);
    EXPECT_EQ(get(path + time_param(clock_.last()), who).status, 200);
  }
}

// --- what the order view shows ------------------------------------------------------------------

TEST_F(AsOfTest, OrderHistoryPaymentsAndShipmentAsTheyWereThen) {
  const auto ann = customer("Ann");
  service_->add_cart_item(ann, product("Aero", 1000), 3, ctx());
  const auto placed = service_->place_order(ann, std::nullopt, ctx());
  const auto failed = service_->start_payment(placed.order_id, ann, false, "sandbox", ctx());
  const auto failed_at =
      service_->settle_payment(failed.payment_id, {false, "declined"}, ctx()).position;
  const auto second = service_->start_payment(placed.order_id, ann, false, "sandbox", ctx());
  service_->settle_payment(second.payment_id, {true, ""}, ctx());
  const auto paid_at = head();  // the order's OrderPaid comes after the payment's capture
  const auto shipped_at = service_->ship_order(placed.order_id, {"UPS", "1Z999"}, ctx()).position;
  const auto t = token(ann);
  auto as_of = [&](std::int64_t position) {
    auto r = get("/api/orders/" + placed.order_id + "?as_of=" + std::to_string(position), t);
    EXPECT_EQ(r.status, 200) << r.body;
    return r;
  };

  auto r = as_of(placed.position);
  EXPECT_EQ(json::get_string(r.doc, "status"), "pending");
  EXPECT_TRUE(r.doc["payment"].IsNull());
  EXPECT_TRUE(r.doc["shipment"].IsNull());
  EXPECT_EQ(r.doc["status_history"].Size(), 1u);
  EXPECT_EQ(json::get_string(r.doc, "total"), "30.00");
  EXPECT_EQ(r.doc["items"].Size(), 1u);
  EXPECT_EQ(json::get_string(r.doc["items"][0], "line_total"), "30.00");

  r = as_of(failed.position);
  EXPECT_EQ(json::get_string(r.doc["payment"], "payment_id"), failed.payment_id);
  EXPECT_EQ(json::get_string(r.doc["payment"], "status"), "initiated");
  EXPECT_EQ(json::get_string(r.doc["payment"], "amount"), "30.00");
  EXPECT_EQ(json::get_string(r.doc["payment"], "provider"), "sandbox");
  r = as_of(failed_at);
  EXPECT_EQ(json::get_string(r.doc["payment"], "status"), "failed");
  EXPECT_EQ(json::get_string(r.doc, "status"), "pending");
  // The latest attempt is the order's payment.
  r = as_of(second.position);
  EXPECT_EQ(json::get_string(r.doc["payment"], "payment_id"), second.payment_id);
  EXPECT_EQ(json::get_string(r.doc["payment"], "status"), "initiated");
  r = as_of(paid_at);
  EXPECT_EQ(json::get_string(r.doc["payment"], "status"), "captured");
  EXPECT_EQ(json::get_string(r.doc, "status"), "paid");
  EXPECT_EQ(r.doc["status_history"].Size(), 2u);
  EXPECT_TRUE(r.doc["shipment"].IsNull());
  r = as_of(shipped_at);
  EXPECT_EQ(json::get_string(r.doc, "status"), "shipped");
  EXPECT_EQ(json::get_string(r.doc["shipment"], "carrier"), "UPS");
  EXPECT_EQ(json::get_string(r.doc["shipment"], "tracking_number"), "1Z999");
  EXPECT_EQ(json::get_string(r.doc["shipment"], "shipped_at"),
            json::get_string(r.doc, "updated_at"));
  EXPECT_EQ(r.doc["status_history"].Size(), 3u);

  // The live view, once projected, is the view as of now.
  catch_up();
  EXPECT_EQ(get("/api/orders/" + placed.order_id, t).body, as_of(shipped_at).body);
}

// --- carts --------------------------------------------------------------------------------------

TEST_F(AsOfTest, CartBeforeAnyEventIsTheEmptyCart) {
  const auto ann = customer("Ann");
  const auto t = token(ann);
  catch_up();
  const auto live = get("/api/cart", t);
  ASSERT_EQ(live.status, 200);
  EXPECT_EQ(live.body, R"({"items":[],"total":"0.00","currency":"USD","item_count":0})");
  const auto before = clock_.last();
  service_->add_cart_item(ann, product("Aero", 1000), 1, ctx());
  for (const auto& bound : {std::string("0"), time_param(before), time_param(before, 2),
                            std::string("0001-01-01T00:00:00Z")}) {
    const auto r = get("/api/cart?as_of=" + bound, t);
    EXPECT_EQ(r.status, 200) << bound;
    EXPECT_EQ(r.body, live.body) << bound;
  }
  // A user who never had a cart (nor exists) has the empty cart as of any time.
  EXPECT_EQ(get("/api/cart?as_of=9223372036854775807", token(new_uuid())).body, live.body);
}

TEST_F(AsOfTest, CartLinesShowTheNameAndPriceOfTheirMoment) {
  const auto ann = customer("Ann");
  const auto aero = product("Aero", 1000), blade = product("Blade", 2000);
  const auto t = token(ann);
  auto cart_at = [&](std::int64_t position) {
    auto r = get("/api/cart?as_of=" + std::to_string(position), t);
    EXPECT_EQ(r.status, 200) << r.body;
    return r;
  };
  const auto added = service_->add_cart_item(ann, aero, 2, ctx()).position;
  service_->add_cart_item(ann, blade, 1, ctx());
  const auto repriced = service_
                            ->update_product(aero, {.name = "Aero 2", .price = 1500}, std::nullopt,
                                             std::nullopt, ctx())
                            .position;
  const auto readded = service_->add_cart_item(ann, aero, 1, ctx()).position;
  const auto cheaper =
      service_->update_product(blade, {.price = 1800}, std::nullopt, std::nullopt, ctx()).position;

  auto r = cart_at(added);
  ASSERT_EQ(r.doc["items"].Size(), 1u);
  EXPECT_EQ(json::get_string(r.doc["items"][0], "name"), "Aero");
  EXPECT_EQ(json::get_string(r.doc["items"][0], "unit_price"), "10.00");
  EXPECT_EQ(json::get_string(r.doc, "total"), "20.00");
  // After the change, the line shows the product's new name and price.
  r = cart_at(repriced);
  ASSERT_EQ(r.doc["items"].Size(), 2u);
  EXPECT_EQ(json::get_string(r.doc["items"][0], "name"), "Aero 2");
  EXPECT_EQ(json::get_string(r.doc["items"][0], "unit_price"), "15.00");
  EXPECT_EQ(json::get_string(r.doc, "total"), "50.00");
  EXPECT_EQ(json::get_int(r.doc, "item_count"), 3);
  r = cart_at(readded);
  EXPECT_EQ(json::get_int(r.doc["items"][0], "quantity"), 3);
  EXPECT_EQ(json::get_string(r.doc, "total"), "65.00");
  r = cart_at(cheaper);
  EXPECT_EQ(json::get_string(r.doc["items"][1], "unit_price"), "18.00");
  EXPECT_EQ(json::get_string(r.doc, "total"), "63.00");

  // After checkout the cart is empty again; as of before it, it was not.
  service_->place_order(ann, std::nullopt, ctx());
  catch_up();
  const auto live = get("/api/cart", t);
  EXPECT_EQ(get("/api/cart?as_of=" + std::to_string(head()), t).body, live.body);
  EXPECT_EQ(cart_at(cheaper).doc["items"].Size(), 2u);
}

// --- headers, and no dependence on the read models -----------------------------------------------

TEST_F(AsOfTest, AsOfViewsComeFromTheStoreNotTheReadModels) {
  const auto ann = customer("Ann");
  service_->add_cart_item(ann, product("Aero", 1000), 1, ctx());
  const auto placed = service_->place_order(ann, std::nullopt, ctx());
  const auto t = token(ann);
  // Nothing projected yet: the live views know nothing of the order, the as-of views do.
  EXPECT_EQ(get("/api/orders/" + placed.order_id, t).status, 404);
  const auto order =
      get("/api/orders/" + placed.order_id + "?as_of=" + std::to_string(placed.position), t);
  EXPECT_EQ(order.status, 200) << order.body;
  EXPECT_EQ(json::get_string(order.doc, "order_id"), placed.order_id);

  // X-Min-Position is not waited for (there is no read model to wait for); the live view would
  // time out on it.
  const std::vector<std::pair<std::string, std::string>> ahead = {
      {"X-Min-Position", std::to_string(placed.position + 1000)}};
  const auto lagging = get("/api/orders/" + placed.order_id, t, ahead);
  EXPECT_EQ(lagging.status, 503);
  EXPECT_EQ(lagging.error_code(), "projection_lagging");
  for (const auto& target :
       {"/api/orders/" + placed.order_id + "?as_of=" + std::to_string(placed.position),
        std::string("/api/cart?as_of=") + std::to_string(placed.position)}) {
    const auto r = get(target, t, ahead);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    // Private, like the live views; no X-Position, which tells how far the read models are.
    EXPECT_EQ(r.header("Cache-Control"), "private, no-store") << target;
    EXPECT_EQ(r.header("X-Position"), "") << target;
  }
}

}  // namespace
}  // namespace shop::query
