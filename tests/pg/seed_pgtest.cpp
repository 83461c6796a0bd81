// shopctl seed-demo against a real PostgreSQL, through the functions shopctl's main() calls: the
// small demo catalog, and seeding at scale. A small run writes exactly the events its report
// accounts for, of every kind; each one decodes and matches its JSON Schema; stock never goes
// below zero; every cart ends empty; the seeded customers can sign in; and the same seed gives
// the same data, with any number of threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

#include "demo.h"
#include "seed.h"
#include "seed_data.h"
#include "shop/command/service.h"
#include "shop/domain/aggregates.h"
#include "shop/events/events.h"
#include "shop/events/json.h"
#include "shop/infra/crypto.h"
#include "shop/infra/event_store.h"
#include "shop/infra/pg.h"
#include "shop/infra/schema.h"
#include "support/pg_fixture.h"

namespace shop::tools {
namespace {

namespace ev = shop::events;

// A database of its own; dropped after everything that uses it (a base class is destroyed last).
struct Database {
  explicit Database(const std::string& name) : url(testing::create_test_database(name)) {}
  ~Database() { testing::drop_test_database(url); }
  std::string url;
};

// One database with a command service on it, as shopctl builds them.
struct Shop : Database {
  explicit Shop(const std::string& name)
      : Database(name),
        pool(url, 9, infra::prepare_event_store),
        store(pool),
        jwt(std::string(40, 'k'), "shop"),
        service(store, jwt, clock, command::ServiceOptions{}) {}

  std::vector<ev::RecordedEvent> events() {
    pqxx::connection c(url);
    pqxx::work tx(c);
    std::vector<ev::RecordedEvent> out;
    for (const auto& row : tx.exec(std::string("SELECT ") + infra::kEventColumns +
                                   " FROM events ORDER BY position")) {
      out.push_back(infra::event_from_row(row));
    }
    return out;
  }
  std::int64_t count(const std::string& sql) {
    pqxx::connection c(url);
    pqxx::work tx(c);
    return tx.exec(sql)[0][0].as<std::int64_t>();
  }

  SystemClock clock;
  infra::ConnectionPool pool;
  infra::EventStore store;
  infra::JwtCodec jwt;
  command::CommandService service;
};

class SeedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { infra::crypto_init(); }
};

// The store folded into the states the domain keeps, per stream.
struct Folded {
  std::map<std::string, domain::UserState> users;
  std::map<std::string, domain::ProductState> products;
  std::map<std::string, domain::CartState> carts;
  std::map<std::string, domain::OrderState> orders;
  std::map<std::string, domain::PaymentState> payments;
  std::map<std::string, int> types;
};

Folded fold(const std::vector<ev::RecordedEvent>& events) {
  Folded f;
  for (const auto& r : events) {
    const ev::Event e = r.decode();
    ++f.types[r.type];
    const std::string category = r.stream_id.substr(0, r.stream_id.find('-'));
    if (category == "user") f.users[r.stream_id] = domain::evolve(f.users[r.stream_id], e);
    if (category == "product") {
      f.products[r.stream_id] = domain::evolve(f.products[r.stream_id], e);
    }
    if (category == "cart") f.carts[r.stream_id] = domain::evolve(f.carts[r.stream_id], e);
    if (category == "order") f.orders[r.stream_id] = domain::evolve(f.orders[r.stream_id], e);
    if (category == "payment") {
      f.payments[r.stream_id] = domain::evolve(f.payments[r.stream_id], e);
    }
  }
  return f;
}

// What the data is, without what differs from run to run by nature: ids, order numbers,
// positions and times. Products by SKU, customers by e-mail, orders by customer, lines by SKU.
std::multiset<std::string> shape(const std::vector<ev::RecordedEvent>& events) {
  const Folded f = fold(events);
  std::multiset<std::string> out;
  std::map<std::string, std::string> sku_of, email_of;
  for (const auto& [stream, p] : f.products) {
    sku_of[p.id] = p.sku;
    out.insert("product " + p.sku + " | " + p.name + " | " + p.description + " | " +
               std::to_string(p.price) + " | stock " + std::to_string(p.stock) +
               (p.discontinued ? " | discontinued" : ""));
  }
  for (const auto& [stream, u] : f.users) {
    email_of[u.id] = u.email;
    out.insert("user " + u.email + " | " + u.name);
  }
  std::map<std::string, std::vector<std::string>> payments_of;
  for (const auto& [stream, p] : f.payments) {
    payments_of[p.order_id].push_back(p.status + " " + std::to_string(p.amount));
  }
  for (const auto& [stream, o] : f.orders) {
    std::vector<std::string> lines;
    for (const auto& l : o.lines) {
      lines.push_back(sku_of.at(l.product_id) + " x" + std::to_string(l.quantity) + " @" +
                      std::to_string(l.unit_price));
    }
    std::sort(lines.begin(), lines.end());
    auto pays = payments_of[o.id];
    std::sort(pays.begin(), pays.end());
    std::string text = "order of " + email_of.at(o.user_id) + " | " + o.status + " | " +
                       std::to_string(o.total) + " |";
    for (const auto& l : lines) text += " " + l;
    text += " | payments:";
    for (const auto& p : pays) text += " " + p;
    out.insert(text);
  }
  for (const auto& [type, n] : f.types) out.insert("type " + type + " " + std::to_string(n));
  return out;
}

std::vector<std::string> validate(const std::string& schema, const std::string& text) {
  json::Document doc;
  const std::string err = json::parse(text, doc);
  if (!err.empty()) return {"not JSON: " + err};
  return infra::SchemaRegistry::instance().validate(schema, doc);
}

std::string quoted(const std::string& s) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.String(s);
  return {buf.GetString(), buf.GetSize()};
}

// With this seed a run of 20 products, 30 customers and 50 orders has every kind of event.
constexpr std::uint64_t kSmallSeed = 42;
SeedOptions small(std::uint64_t seed = kSmallSeed, int threads = 4) {
  return {.products = 20, .users = 30, .orders = 50, .seed = seed, .threads = threads};
}

// ----------------------------------------------------------------------------------------------

TEST_F(SeedTest, PlainSeedDemoLoadsTheSmallCatalogOnlyIntoAnEmptyCatalog) {
  Shop shop("seed_plain");
  EXPECT_EQ(seed_demo(shop.service, shop.store), 12);
  EXPECT_EQ(seed_demo(shop.service, shop.store), 0);
  const auto f = fold(shop.events());
  EXPECT_EQ(f.types, (std::map<std::string, int>{{"CategoryCreated", 7}, {"ProductCreated", 12}}));
  // The categories are found again, none made twice.
  const auto categories = demo_categories(shop.service, shop.store);
  EXPECT_EQ(categories.size(), 7u);
  EXPECT_EQ(shop.count("SELECT count(*) FROM events"), 19);
}

TEST_F(SeedTest, ASmallRunWritesEveryKindOfEventAndExactlyWhatItReports) {
  Shop shop("seed_small");
  const SeedReport report = seed_at_scale(shop.service, shop.store, small());
  EXPECT_EQ(report.users, 30);
  EXPECT_EQ(report.products, 20);
  EXPECT_EQ(report.orders, 50);
  EXPECT_EQ(report.demo_products, 12);
  EXPECT_GT(report.seconds, 0);

  const auto events = shop.events();
  EXPECT_EQ(static_cast<std::int64_t>(events.size()), report.events);
  const Folded f = fold(events);

  // Every kind of event, in the numbers the run accounts for; but sessions and account changes:
  // the seeder signs nobody in and changes no profile, password or role.
  for (auto type : ev::all_types()) {
    if (type == "SessionStarted" || type == "RefreshTokenRotated" || type == "SessionRevoked" ||
        type == "UserProfileChanged" || type == "UserPasswordChanged" ||
        type == "UserRolesChanged") {
      EXPECT_FALSE(f.types.count(std::string(type))) << type;
      continue;
    }
    EXPECT_TRUE(f.types.count(std::string(type))) << type;
  }
  auto n = [&](const char* type) {
    auto it = f.types.find(type);
    return it == f.types.end() ? 0 : it->second;
  };
  EXPECT_EQ(n("UserRegistered"), 30);
  EXPECT_EQ(n("CategoryCreated"), 7);
  EXPECT_EQ(n("ProductCreated"), 12 + 20);
  EXPECT_EQ(n("ProductUpdated"), report.price_changes);
  EXPECT_EQ(n("StockAdjusted"), report.restocks);
  EXPECT_EQ(n("ProductDiscontinued"), report.discontinued);
  EXPECT_EQ(n("CartItemAdded") + n("CartItemQuantityChanged") + n("CartItemRemoved"),
            report.cart_steps);
  EXPECT_EQ(n("OrderPlaced"), 50);
  EXPECT_EQ(n("CartCheckedOut"), 50);
  EXPECT_EQ(n("PaymentInitiated"), report.payments);
  EXPECT_EQ(n("PaymentFailed"), report.payments_declined);
  EXPECT_EQ(n("PaymentCaptured"), report.orders_paid);
  EXPECT_EQ(n("OrderPaid"), report.orders_paid);
  EXPECT_EQ(n("OrderCancelled"), report.orders_cancelled);
  EXPECT_EQ(n("OrderShipped"), report.orders_shipped);
  EXPECT_EQ(n("OrderDelivered"), report.orders_delivered);
  int lines = 0, released = 0;
  std::map<std::string, int> statuses;
  for (const auto& [stream, o] : f.orders) {
    lines += static_cast<int>(o.lines.size());
    if (o.status == "cancelled") released += static_cast<int>(o.lines.size());
    ++statuses[o.status];
  }
  EXPECT_EQ(n("StockReserved"), lines);
  EXPECT_EQ(n("StockReleased"), released);  // the lines of an order are different products
  EXPECT_EQ(statuses["cancelled"], report.orders_cancelled);
  EXPECT_EQ(statuses["delivered"], report.orders_delivered);
  EXPECT_EQ(statuses["shipped"], report.orders_shipped - report.orders_delivered);
  EXPECT_EQ(statuses["paid"], report.orders_paid - report.orders_shipped);
  EXPECT_EQ(statuses["pending"], 50 - report.orders_cancelled - report.orders_paid);
  EXPECT_GT(statuses["pending"], 0);

  // Every event decodes (fold did) and matches its schema; its envelope is complete; every
  // stream is in version order in the global order readers follow.
  for (const auto& r : events) {
    const auto problems = validate("events/" + r.type, r.data);
    EXPECT_TRUE(problems.empty()) << r.position << " " << r.type << " " << r.data << ": "
                                  << (problems.empty() ? "" : problems[0]);
    EXPECT_EQ(r.schema_version, 1);
    EXPECT_TRUE(is_uuid(r.event_id) && is_uuid(r.correlation_id) && is_uuid(r.causation_id));
  }
  EXPECT_EQ(shop.count("SELECT count(*) FROM (SELECT stream_version, lag(stream_version) OVER "
                       "(PARTITION BY stream_id ORDER BY tx_id, position) AS prev FROM events) v "
                       "WHERE coalesce(prev, 0) <> stream_version - 1"),
            0);

  // Stock: every change follows from the one before, and none goes below zero.
  std::map<std::string, std::int64_t> stock;
  for (const auto& r : events) {
    const ev::Event e = r.decode();
    if (const auto* c = std::get_if<ev::ProductCreated>(&e)) stock[c->product_id] = c->stock;
    if (const auto* a = std::get_if<ev::StockAdjusted>(&e)) {
      EXPECT_GT(a->delta, 0);  // deliveries
      EXPECT_EQ(a->stock_after, stock[a->product_id] + a->delta);
      stock[a->product_id] = a->stock_after;
    }
    if (const auto* s = std::get_if<ev::StockReserved>(&e)) {
      EXPECT_EQ(s->stock_after, stock[s->product_id] - s->quantity);
      stock[s->product_id] = s->stock_after;
    }
    if (const auto* s = std::get_if<ev::StockReleased>(&e)) {
      EXPECT_EQ(s->stock_after, stock[s->product_id] + s->quantity);
      stock[s->product_id] = s->stock_after;
    }
  }
  for (const auto& [id, units] : stock) EXPECT_GE(units, 0) << id;
  for (const auto& [stream, p] : f.products) EXPECT_GE(p.stock, 0) << p.sku;

  // Every session ended in a checkout; every payment was settled.
  for (const auto& [stream, c] : f.carts) EXPECT_TRUE(c.lines.empty()) << stream;
  for (const auto& [stream, p] : f.payments) EXPECT_NE(p.status, "initiated") << stream;

  // Customers: unique addresses, each a body the register command would accept; one signs in
  // with the demo password. Products: bodies the create-product command would accept.
  std::set<std::string> emails;
  for (const auto& [stream, u] : f.users) {
    EXPECT_TRUE(emails.insert(u.email).second) << u.email;
    EXPECT_EQ(u.roles, std::vector<std::string>{"customer"});
    const auto problems =
        validate("commands/register", R"({"email":)" + quoted(u.email) + R"(,"password":)" +
                                          quoted(std::string(kDemoCustomerPassword)) +
                                          R"(,"name":)" + quoted(u.name) + "}");
    EXPECT_TRUE(problems.empty()) << u.email << ": " << (problems.empty() ? "" : problems[0]);
  }
  for (const auto& [stream, p] : f.products) {
    const auto problems = validate(
        "commands/create_product",
        R"({"name":)" + quoted(p.name) + R"(,"description":)" + quoted(p.description) +
            R"(,"price":")" + format_money(p.price, 2) + R"(","stock":)" + std::to_string(p.stock) +
            R"(,"category_id":)" + quoted(p.category_id) + R"(,"sku":)" + quoted(p.sku) + "}");
    EXPECT_TRUE(problems.empty()) << p.sku << ": " << (problems.empty() ? "" : problems[0]);
  }
  const auto& someone = f.users.begin()->second;
  EXPECT_NO_THROW(shop.service.login(someone.email, std::string(kDemoCustomerPassword)));
  EXPECT_THROW(shop.service.login(someone.email, "not the password"), command::CommandRejected);
}

TEST_F(SeedTest, TheSameSeedGivesTheSameDataWhateverTheThreads) {
  std::multiset<std::string> first, again, other;
  {
    Shop shop("seed_same_a");
    seed_at_scale(shop.service, shop.store, small(kSmallSeed, 4));
    first = shape(shop.events());
  }
  {
    Shop shop("seed_same_b");
    seed_at_scale(shop.service, shop.store, small(kSmallSeed, 1));
    again = shape(shop.events());
  }
  {
    Shop shop("seed_same_c");
    seed_at_scale(shop.service, shop.store, small(kSmallSeed + 1, 4));
    other = shape(shop.events());
  }
  EXPECT_EQ(std::count_if(first.begin(), first.end(),
                          [](const std::string& s) { return s.starts_with("order of "); }),
            50);
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
}

TEST_F(SeedTest, ASecondRunAddsMoreWithNewSkusAndAddresses) {
  Shop shop("seed_twice");
  const SeedOptions options{.products = 5, .users = 6, .orders = 8, .seed = 3, .threads = 3};
  const auto one = seed_at_scale(shop.service, shop.store, options);
  const auto two = seed_at_scale(shop.service, shop.store, options);
  EXPECT_EQ(one.demo_products, 12);
  EXPECT_EQ(two.demo_products, 0);
  EXPECT_EQ(shop.count("SELECT count(*) FROM unique_claims WHERE scope = 'sku'"), 12 + 5 + 5);
  EXPECT_EQ(shop.count("SELECT count(*) FROM unique_claims WHERE scope = 'email'"), 6 + 6);
  EXPECT_EQ(shop.count("SELECT count(*) FROM events WHERE type = 'CategoryCreated'"), 7);
  EXPECT_EQ(shop.count("SELECT count(*) FROM events WHERE type = 'OrderPlaced'"), 16);
  EXPECT_EQ(shop.count("SELECT count(*) FROM events"), one.events + two.events);
}

TEST_F(SeedTest, OptionsThatMakeNoSenseAreRefusedBeforeAnythingIsWritten) {
  EXPECT_EQ(seed_options_problem({.products = 1, .users = 1, .orders = 1}), "");
  EXPECT_EQ(seed_options_problem({.users = 3}), "");
  EXPECT_NE(seed_options_problem({.users = 1, .orders = 1}), "");
  EXPECT_NE(seed_options_problem({.products = 1, .orders = 1}), "");
  EXPECT_NE(seed_options_problem({.products = -1}), "");
  EXPECT_NE(seed_options_problem({.products = 1, .threads = 0}), "");
  EXPECT_NE(seed_options_problem({.products = 1, .threads = 257}), "");
  Shop shop("seed_refused");
  EXPECT_THROW(seed_at_scale(shop.service, shop.store, {.products = 1, .orders = 5}),
               std::invalid_argument);
  EXPECT_EQ(shop.count("SELECT count(*) FROM events"), 0);
}

TEST_F(SeedTest, RegistrationWithAPrecomputedHashTakesOnlyArgon2idHashes) {
  Shop shop("seed_hash");
  const auto ctx = command::Context::make(std::nullopt);
  EXPECT_THROW(shop.service.register_user_with_password_hash("a@example.com", "plain text", "A",
                                                             {"customer"}, ctx),
               std::invalid_argument);
  const auto hash = infra::hash_password("another password");
  const auto w =
      shop.service.register_user_with_password_hash(" B@Example.com", hash, "B", {"customer"}, ctx);
  EXPECT_TRUE(is_uuid(w.id));
  EXPECT_NO_THROW(shop.service.login("b@example.com", "another password"));
  EXPECT_EQ(shop.count("SELECT count(*) FROM events WHERE type = 'UserRegistered'"), 1);
}

// The generated data alone: deterministic, and within what the commands accept.
TEST(SeedDataTest, ProductsCustomersAndPlansDependOnTheSeedAlone) {
  std::vector<seed::ProductSpec> products;
  for (int i = 0; i < 200; ++i) {
    const auto p = seed::make_product(11, i, i + 1);
    const auto q = seed::make_product(11, i, i + 1);
    EXPECT_EQ(p.name, q.name);
    EXPECT_EQ(p.sku, q.sku);
    EXPECT_EQ(p.price, q.price);
    EXPECT_GT(p.price, 0);
    EXPECT_EQ(p.price % 100, 99) << p.name;  // price points: 1299.99
    EXPECT_GE(p.spare_stock, 3);
    EXPECT_FALSE(p.name.empty());
    EXPECT_LE(p.name.size(), 200u);
    products.push_back(p);
  }
  std::set<std::string> skus;
  for (const auto& p : products) EXPECT_TRUE(skus.insert(p.sku).second) << p.sku;
  const seed::OrderPlanner planner(11, 40, products);
  for (int i = 0; i < 500; ++i) {
    const auto o = planner.plan(i);
    EXPECT_EQ(o.user, planner.plan(i).user);
    ASSERT_GE(o.lines.size(), 1u);
    ASSERT_LE(o.lines.size(), 4u);
    // The steps leave the cart holding exactly the lines, and never ask for more than 3 of a
    // product beyond what the order ends up with (the spare stock covers that).
    std::map<int, std::int64_t> cart;
    for (const auto& s : o.steps) {
      if (s.kind == seed::CartStep::Kind::add) cart[s.product] += s.quantity;
      if (s.kind == seed::CartStep::Kind::change) cart[s.product] = s.quantity;
      if (s.kind == seed::CartStep::Kind::remove) cart[s.product] = 0;
      EXPECT_LE(cart[s.product], 4);
      EXPECT_GE(cart[s.product], 0);
    }
    std::erase_if(cart, [](const auto& kv) { return kv.second == 0; });
    std::map<int, std::int64_t> expected;
    for (const auto& l : o.lines) expected[l.product] = l.quantity;
    EXPECT_EQ(cart, expected);
    EXPECT_FALSE(o.paid && o.cancelled);
    EXPECT_TRUE(!o.shipped || o.paid);
    EXPECT_TRUE(!o.delivered || o.shipped);
  }
  EXPECT_NE(seed::make_customer(11, 0, 1).email, seed::make_customer(12, 0, 1).email);
  EXPECT_NE(seed::make_customer(11, 0, 1).email, seed::make_customer(11, 0, 2).email);
}

}  // namespace
}  // namespace shop::tools
