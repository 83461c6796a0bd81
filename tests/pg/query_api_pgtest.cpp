// The query API against a real PostgreSQL: read-model rows are written straight into the rm_*
// tables (as the projector would), requests go through QueryApp::handle the way the server sends
// them (http::dispatch), and the answers are checked: filters, sorts, keyset pages, money,
// tokens, owners, read-your-writes, X-Position, the response cache and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "shop/events/events.h"
#include "shop/events/json.h"
#include "shop/infra/crypto.h"
#include "shop/query/app.h"
#include "shop/query/cursor.h"
#include "shop/query/projection_state.h"
#include "support/http_client.h"
#include "support/pg_fixture.h"

namespace shop::query {
namespace {

const std::string kSecret(40, 's');

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
  const json::Value& items() const { return doc["items"]; }
  std::vector<std::string> ids(const char* field = "id") const {
    std::vector<std::string> out;
    for (const auto& item : items().GetArray()) out.push_back(json::get_string(item, field));
    return out;
  }
  std::string next_cursor() const { return json::get_string(doc, "next_cursor"); }
};

class QueryApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    infra::crypto_init();
    url_ = new std::string(testing::create_test_database("query"));
  }
  static void TearDownTestSuite() {
    testing::drop_test_database(*url_);
    delete url_;
    url_ = nullptr;
  }

  void SetUp() override {
    exec("SELECT projection_reset('read_models'); TRUNCATE events");
    app_ = make_app();
  }

  Options options() const {
    Options o;
    o.database_url = *url_;
    o.jwt_secret = kSecret;
    o.threads = 4;
    o.read_your_writes_timeout = std::chrono::milliseconds(300);
    o.checkpoint_refresh = std::chrono::milliseconds(0);  // see every checkpoint change at once
    return o;
  }
  std::unique_ptr<QueryApp> make_app(Options o) const {
    return std::make_unique<QueryApp>(std::move(o), clock_);
  }
  std::unique_ptr<QueryApp> make_app() const { return make_app(options()); }

  static pqxx::result exec(const std::string& sql) {
    pqxx::connection c(*url_);
    pqxx::work tx(c);
    auto r = tx.exec(sql);
    tx.commit();
    return r;
  }

  Reply get(const std::string& target,
            std::vector<std::pair<std::string, std::string>> headers = {},
            QueryApp* app = nullptr) {
    if (!app) app = app_.get();
    http::Request req;
    req.method = "GET";
    req.target = target;
    req.headers = std::move(headers);
    const auto res =
        http::dispatch([app](http::Request& r) { return app->handle(r); }, req,
                       app->server_options());
    Reply out{res.status, res.body, res.headers, {}};
    EXPECT_EQ(json::parse(res.body, out.doc), "") << target << ": " << res.body;
    EXPECT_EQ(res.content_type, "application/json");
    return out;
  }
  Reply get_as(const std::string& target, const std::string& token,
               std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("Authorization", "Bearer " + token);
    return get(target, std::move(headers));
  }

  std::string token(const std::string& user_id, std::vector<std::string> roles = {"customer"},
                    const std::string& type = "access", long long ttl_seconds = 3600) const {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return infra::JwtCodec(kSecret, "shop")
        .sign({user_id, std::move(roles), type, new_uuid(), now + ttl_seconds, new_uuid()});
  }

  // --- read-model rows, as the projector writes them ---------------------------------------
  static void checkpoint(std::int64_t tx, std::int64_t position, std::int64_t max_position) {
    exec("INSERT INTO rm_checkpoints (name, last_tx, last_position, max_position) VALUES "
         "('read_models', '" + std::to_string(tx) + "', " + std::to_string(position) + ", " +
         std::to_string(max_position) + ") ON CONFLICT (name) DO UPDATE SET last_tx = "
         "EXCLUDED.last_tx, last_position = EXCLUDED.last_position, max_position = "
         "EXCLUDED.max_position");
  }
  static void event(std::int64_t position, std::int64_t tx) {
    exec("INSERT INTO events (position, tx_id, event_id, stream_id, stream_version, type, "
         "schema_version, occurred_at, correlation_id, causation_id, data) OVERRIDING SYSTEM "
         "VALUE VALUES (" + std::to_string(position) + ", '" + std::to_string(tx) + "', '" +
         new_uuid() + "', 'test-" + std::to_string(position) + "', 1, 'Test', 1, now(), '" +
         new_uuid() + "', '" + new_uuid() + "', '{}')");
  }
  static std::string category(const std::string& name, const std::string& parent = "") {
    const auto id = new_uuid();
    exec("INSERT INTO rm_categories (id, name, parent_id, created_at) VALUES ('" + id + "', '" +
         name + "', " + (parent.empty() ? "NULL" : "'" + parent + "'") + ", now())");
    return id;
  }
  struct Product {
    std::string name;
    std::int64_t price = 1000;
    std::int64_t stock = 5;
    std::string category_id;
    int age_minutes = 0;  // created this long before 2026-01-01
    bool discontinued = false;
    std::string description = "a thing";
  };
  static std::string product(const Product& p) {
    const auto id = new_uuid();
    pqxx::connection c(*url_);
    pqxx::work tx(c);
    tx.exec_params(
        "INSERT INTO rm_products (id, name, description, sku, category_id, price, stock, "
        "discontinued, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "'2026-01-01T00:00:00Z'::timestamptz - $9 * interval '1 minute', now())",
        id, p.name, p.description, "SKU-" + id.substr(0, 8), p.category_id, p.price, p.stock,
        p.discontinued, p.age_minutes);
    tx.commit();
    return id;
  }

  static std::string* url_;
  SystemClock clock_;
  std::unique_ptr<QueryApp> app_;
};

std::string* QueryApiTest::url_ = nullptr;

// Follows next_cursor to the end, collecting ids; fails on a page that is not 200.
std::vector<std::string> all_pages(const std::string& base,
                                   const std::function<Reply(const std::string&)>& fetch,
                                   const char* id_field = "id") {
  std::vector<std::string> ids;
  std::string cursor;
  for (int page = 0; page < 100; ++page) {
    const auto r = fetch(base + (cursor.empty() ? "" : "&cursor=" + cursor));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) break;
    for (auto& id : r.ids(id_field)) ids.push_back(id);
    if (r.doc["next_cursor"].IsNull()) break;
    cursor = r.next_cursor();
  }
  return ids;
}

// --- health and position --------------------------------------------------------------------

TEST_F(QueryApiTest, HealthReportsTheProjectedPosition) {
  auto r = get("/health");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::get_string(r.doc, "status"), "ok");
  EXPECT_EQ(json::get_int(r.doc, "projected_position", -1), 0);
  EXPECT_EQ(r.header("X-Position"), "0");

  checkpoint(7, 41, 42);
  r = get("/health");
  EXPECT_EQ(json::get_int(r.doc, "projected_position", -1), 42);
  EXPECT_EQ(r.header("X-Position"), "42");
}

TEST_F(QueryApiTest, EveryResponseCarriesXPosition) {
  checkpoint(3, 9, 9);
  EXPECT_EQ(get("/api/categories").header("X-Position"), "9");
  EXPECT_EQ(get("/api/products").header("X-Position"), "9");
  auto missing = get("/api/products/" + new_uuid());
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.header("X-Position"), "9");
  auto bad = get("/api/products?limit=0");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.header("X-Position"), "9");
  auto unauthenticated = get("/api/cart");
  EXPECT_EQ(unauthenticated.status, 401);
  EXPECT_EQ(unauthenticated.header("X-Position"), "9");
  EXPECT_EQ(get("/nowhere").header("X-Position"), "9");
}

// --- products: filters ------------------------------------------------------------------------

TEST_F(QueryApiTest, ProductObjectAndMoneyFormatting) {
  const auto cat = category("Laptops");
  const auto id = product({.name = "Aero 15", .price = 129999, .stock = 3, .category_id = cat,
                           .description = "light"});
  auto r = get("/api/products/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::get_string(r.doc, "id"), id);
  EXPECT_EQ(json::get_string(r.doc, "name"), "Aero 15");
  EXPECT_EQ(json::get_string(r.doc, "description"), "light");
  EXPECT_EQ(json::get_string(r.doc, "price"), "1299.99");
  EXPECT_EQ(json::get_string(r.doc, "currency"), "USD");
  EXPECT_EQ(json::get_int(r.doc, "stock"), 3);
  EXPECT_TRUE(json::get_bool(r.doc, "in_stock"));
  EXPECT_EQ(json::get_string(r.doc, "category_id"), cat);
  EXPECT_EQ(json::get_string(r.doc, "sku"), "SKU-" + id.substr(0, 8));
  EXPECT_EQ(json::get_string(r.doc, "created_at"), "2026-01-01T00:00:00.000000Z");

  const auto cheap = product({.name = "Cable", .price = 5, .stock = 0, .category_id = cat});
  r = get("/api/products/" + cheap);
  EXPECT_EQ(json::get_string(r.doc, "price"), "0.05");
  EXPECT_FALSE(json::get_bool(r.doc, "in_stock", true));

  // Upper-case ids are the same ids.
  std::string upper = id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(get("/api/products/" + upper).status, 200);

  auto o = options();
  o.currency = "JPY";
  auto yen = make_app(o);
  r = get("/api/products/" + id, {}, yen.get());
  EXPECT_EQ(json::get_string(r.doc, "price"), "129999");
  EXPECT_EQ(json::get_string(r.doc, "currency"), "JPY");
  r = get("/api/products?min_price=129999", {}, yen.get());
  EXPECT_EQ(r.ids(), std::vector<std::string>{id});
}

TEST_F(QueryApiTest, UnknownDiscontinuedOrMalformedProductIsNotFound) {
  const auto cat = category("Misc");
  const auto gone = product({.name = "Old", .category_id = cat, .discontinued = true});
  for (const auto& id : {gone, new_uuid(), std::string("not-a-uuid"), std::string("1' OR '1")}) {
    auto r = get("/api/products/" + id);
    EXPECT_EQ(r.status, 404) << id;
    EXPECT_EQ(r.error_code(), "not_found");
  }
  EXPECT_TRUE(get("/api/products").ids().empty());
}

TEST_F(QueryApiTest, FiltersByCategoryTreePriceStockAndText) {
  const auto computers = category("Computers");
  const auto laptops = category("Laptops", computers);
  const auto ultrabooks = category("Ultrabooks", laptops);
  const auto garden = category("Garden");
  const auto desk = product({.name = "Tower", .price = 90000, .category_id = computers});
  const auto aero = product({.name = "Aero 15", .price = 129999, .category_id = laptops});
  const auto air = product({.name = "Air 13", .price = 99900, .stock = 0,
                            .category_id = ultrabooks});
  const auto hose = product({.name = "Hose 100% rubber", .price = 2500, .category_id = garden,
                             .description = "garden hose"});
  product({.name = "Hidden", .price = 100, .category_id = ultrabooks, .discontinued = true});

  auto ids = [&](const std::string& query) {
    auto r = get("/api/products?" + query);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    auto v = r.ids();
    return std::set<std::string>(v.begin(), v.end());
  };
  using Set = std::set<std::string>;
  EXPECT_EQ(ids(""), (Set{desk, aero, air, hose}));
  EXPECT_EQ(ids("category_id=" + computers), (Set{desk, aero, air}));
  EXPECT_EQ(ids("category_id=" + laptops), (Set{aero, air}));
  EXPECT_EQ(ids("category_id=" + ultrabooks), (Set{air}));
  EXPECT_EQ(ids("category_id=" + new_uuid()), Set{});
  EXPECT_EQ(ids("min_price=999&max_price=1299.99"), (Set{aero, air}));
  EXPECT_EQ(ids("min_price=900&max_price=1299.98"), (Set{air, desk}));
  EXPECT_EQ(ids("min_price=999.01"), (Set{aero}));
  EXPECT_EQ(ids("max_price=25"), (Set{hose}));
  EXPECT_EQ(ids("max_price=24.99"), Set{});
  EXPECT_EQ(ids("in_stock=true"), (Set{desk, aero, hose}));
  EXPECT_EQ(ids("in_stock=false"), (Set{air}));
  EXPECT_EQ(ids("in_stock=true&category_id=" + laptops), (Set{aero}));
  // Words (name, sku, description) and substrings of the name, case-insensitively.
  EXPECT_EQ(ids("q=aero"), (Set{aero}));
  EXPECT_EQ(ids("q=AER"), (Set{aero}));
  EXPECT_EQ(ids("q=garden"), (Set{hose}));
  EXPECT_EQ(ids("q=13"), (Set{air}));
  EXPECT_EQ(ids("q=" + std::string("SKU-") + aero.substr(0, 8)), (Set{aero}));
  // LIKE wildcards are plain characters.
  EXPECT_EQ(ids("q=%25"), (Set{hose}));
  EXPECT_EQ(ids("q=_"), Set{});
  EXPECT_EQ(ids("q=a%25b"), Set{});
  // Empty values count as absent; unknown parameters are ignored.
  EXPECT_EQ(ids("q=&category_id=&in_stock=&min_price=&sort=&limit=&colour=red"),
            (Set{desk, aero, air, hose}));
  EXPECT_EQ(ids("q=+++"), (Set{desk, aero, air, hose}));
}

// --- products: sorts and pages ----------------------------------------------------------------

TEST_F(QueryApiTest, EachSortOrdersAndPagesTheWholeList) {
  const auto cat = category("All");
  // Ties on every key, so that the id decides between equals.
  const auto a = product({.name = "Banana", .price = 300, .category_id = cat, .age_minutes = 1});
  const auto b = product({.name = "apple", .price = 100, .category_id = cat, .age_minutes = 3});
  const auto c = product({.name = "Cherry", .price = 300, .category_id = cat, .age_minutes = 2});
  const auto d = product({.name = "Banana", .price = 200, .category_id = cat, .age_minutes = 3});
  const auto e = product({.name = "Date", .price = 100, .category_id = cat, .age_minutes = 0});

  // The order PostgreSQL itself gives (collation of names included), then reversed.
  auto expected = [&](const std::string& order_by) {
    std::vector<std::string> out;
    for (const auto& row : exec("SELECT id::text FROM rm_products ORDER BY " + order_by)) {
      out.push_back(row[0].c_str());
    }
    return out;
  };
  const std::pair<std::string, std::string> sorts[] = {
      {"price", "price, id"},           {"-price", "price DESC, id DESC"},
      {"name", "name, id"},             {"-name", "name DESC, id DESC"},
      {"created_at", "created_at, id"}, {"-created_at", "created_at DESC, id DESC"},
  };
  for (const auto& [sort, order_by] : sorts) {
    const auto want = expected(order_by);
    ASSERT_EQ(want.size(), 5u);
    auto whole = get("/api/products?sort=" + sort);
    EXPECT_EQ(whole.ids(), want) << sort;
    EXPECT_TRUE(whole.doc["next_cursor"].IsNull());
    for (const std::string limit : {"1", "2", "3"}) {
      auto paged = all_pages("/api/products?sort=" + sort + "&limit=" + limit,
                             [&](const std::string& t) { return get(t); });
      EXPECT_EQ(paged, want) << sort << " limit " << limit;
    }
  }
  // The default is newest first.
  EXPECT_EQ(get("/api/products").ids(), expected("created_at DESC, id DESC"));
  (void)a, (void)b, (void)c, (void)d, (void)e;
}

TEST_F(QueryApiTest, PagesNeitherRepeatNorSkipWhenProductsArriveBetweenPages) {
  const auto cat = category("All");
  std::vector<std::string> before;
  for (int i = 0; i < 7; ++i) {
    before.push_back(product({.name = "P" + std::to_string(i), .price = 1000 + 100 * i,
                              .category_id = cat, .age_minutes = 10 + i}));
  }
  checkpoint(1, 1, 1);
  auto first = get("/api/products?sort=price&limit=3");
  ASSERT_EQ(first.status, 200);
  ASSERT_EQ(first.ids(), (std::vector<std::string>{before[0], before[1], before[2]}));

  // Arrivals: one that sorts before the page boundary (already passed), one after it.
  const auto early = product({.name = "Early", .price = 1050, .category_id = cat});
  const auto late = product({.name = "Late", .price = 1450, .category_id = cat});
  checkpoint(2, 3, 3);

  std::vector<std::string> seen = first.ids();
  std::string cursor = first.next_cursor();
  while (!cursor.empty()) {
    auto page = get("/api/products?sort=price&limit=3&cursor=" + cursor);
    ASSERT_EQ(page.status, 200) << page.body;
    for (auto& id : page.ids()) seen.push_back(id);
    cursor = page.doc["next_cursor"].IsNull() ? "" : page.next_cursor();
  }
  const std::vector<std::string> want = {before[0], before[1], before[2], before[3],
                                         before[4], late,      before[5], before[6]};
  EXPECT_EQ(seen, want);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
  EXPECT_EQ(std::count(seen.begin(), seen.end(), early), 0);
}

TEST_F(QueryApiTest, ForeignOrTamperedCursorsAreRefused) {
  const auto cat = category("All");
  for (int i = 0; i < 3; ++i) product({.name = "P" + std::to_string(i), .category_id = cat});
  const auto cursor = get("/api/products?sort=price&limit=1").next_cursor();
  ASSERT_FALSE(cursor.empty());
  EXPECT_EQ(get("/api/products?sort=price&limit=1&cursor=" + cursor).status, 200);

  std::string tampered = cursor;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  auto forged = [&] {
    // A well-formed cursor signed with another secret.
    return CursorCodec(std::string(40, 'x')).encode("products:price", {"100", new_uuid()});
  };
  for (const auto& target : {
           "/api/products?sort=-price&cursor=" + cursor,  // another sort
           "/api/products?cursor=" + cursor,              // the default sort
           "/api/products?sort=price&cursor=" + tampered,
           "/api/products?sort=price&cursor=" + cursor.substr(0, cursor.size() - 2),
           "/api/products?sort=price&cursor=" + forged(),
           std::string("/api/products?sort=price&cursor=!!!"),
           std::string("/api/products?sort=price&cursor=%27%3B--"),
           "/api/products?sort=price&cursor=" + std::string(5000, 'A'),
       }) {
    auto r = get(target);
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_EQ(r.error_code(), "invalid_cursor") << target;
  }
  // A product cursor is no order cursor.
  const auto user = new_uuid();
  auto r = get_as("/api/orders?cursor=" + cursor, token(user));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.error_code(), "invalid_cursor");
}

TEST_F(QueryApiTest, BadParametersAreInvalidParameter) {
  const std::pair<std::string, std::string> cases[] = {
      {"limit=0", "limit"},
      {"limit=101", "limit"},
      {"limit=-5", "limit"},
      {"limit=abc", "limit"},
      {"limit=99999999999999999999999", "limit"},
      {"sort=price;DROP", "sort"},
      {"sort=PRICE", "sort"},
      {"category_id=xyz", "category_id"},
      {"category_id=" + new_uuid() + "x", "category_id"},
      {"min_price=abc", "min_price"},
      {"min_price=-1", "min_price"},
      {"max_price=1.234", "max_price"},
      {"max_price=1e5", "max_price"},
      {"max_price=99999999999999999999999999", "max_price"},
      {"in_stock=yes", "in_stock"},
      {"q=%FF%FE", "q"},
      {"q=" + std::string(300, 'a'), "q"},
  };
  for (const auto& [query, name] : cases) {
    auto r = get("/api/products?" + query);
    EXPECT_EQ(r.status, 400) << query;
    EXPECT_EQ(r.error_code(), "invalid_parameter") << query;
    ASSERT_TRUE(r.doc["error"]["details"].IsArray());
    ASSERT_EQ(r.doc["error"]["details"].Size(), 1u) << query;
    EXPECT_EQ(std::string(r.doc["error"]["details"][0].GetString()), name) << query;
  }
}

TEST_F(QueryApiTest, HostileInputNeverBreaksTheServer) {
  const auto cat = category("All");
  product({.name = "Ünïcödé Lamp", .category_id = cat});
  const std::string targets[] = {
      "/api/products?q=%27%3B%20DROP%20TABLE%20rm_products%3B%20--",
      "/api/products?q=%22%20OR%201%3D1%20--",
      "/api/products?q=!!!%20%7C%20%26%20%3C-%3E%20(",
      "/api/products?q=%5C",
      "/api/products?q=%E2%80%AE%F0%9F%98%80",
      "/api/products?q=%C3%9Cn%C3%AFc%C3%B6d%C3%A9",
      "/api/products?" + std::string(20000, 'a') + "=1",
      "/api/products?q=" + std::string(250, '('),
      "/api/products/%27%20OR%201%3D1",
      "/api/products/" + std::string(5000, 'x'),
      "/api/products?sort=name&sort=-name&limit=5&limit=6",
      "/api/categories?x=%00",
      "/api/products?%ZZ",
      "/api//products",
  };
  for (const auto& t : targets) {
    auto r = get(t);
    EXPECT_LT(r.status, 500) << t << ": " << r.body;
  }
  EXPECT_EQ(get("/api/products?q=%C3%BCn%C3%AFc%C3%B6d%C3%A9").ids().size(), 1u);
  EXPECT_EQ(exec("SELECT count(*) FROM rm_products")[0][0].as<int>(), 1);
}

TEST_F(QueryApiTest, CategoriesAreListedByName) {
  const auto b = category("Books");
  const auto a = category("Audio");
  const auto c = category("Comics", b);
  auto r = get("/api/categories");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.ids(), (std::vector<std::string>{a, b, c}));
  EXPECT_TRUE(r.items()[0]["parent_id"].IsNull());
  EXPECT_EQ(json::get_string(r.items()[2], "parent_id"), b);
  EXPECT_EQ(json::get_string(r.items()[2], "name"), "Comics");
}

// --- the response cache -------------------------------------------------------------------------

TEST_F(QueryApiTest, CachedResponsesLastUntilTheCheckpointMoves) {
  const auto cat = category("All");
  const auto first = product({.name = "First", .category_id = cat});
  checkpoint(1, 1, 1);
  EXPECT_EQ(get("/api/products").ids().size(), 1u);
  EXPECT_EQ(get("/api/categories").ids().size(), 1u);
  EXPECT_EQ(json::get_string(get("/api/products/" + first).doc, "name"), "First");

  // A row that appears without the checkpoint moving is not seen: the answer comes from the cache.
  const auto second = product({.name = "Second", .category_id = cat});
  category("Other");
  exec("UPDATE rm_products SET name = 'Renamed' WHERE id = '" + first + "'");
  EXPECT_EQ(get("/api/products").ids().size(), 1u);
  EXPECT_EQ(get("/api/categories").ids().size(), 1u);
  EXPECT_EQ(json::get_string(get("/api/products/" + first).doc, "name"), "First");
  // Another query is another cache entry.
  EXPECT_EQ(get("/api/products?limit=50").ids().size(), 2u);

  // The projector commits its rows with the checkpoint: now everything is new. A late event
  // (lower position, later transaction) moves the checkpoint but not max_position, and counts.
  checkpoint(2, 1, 1);
  auto r = get("/api/products");
  EXPECT_EQ(r.ids().size(), 2u);
  EXPECT_EQ(get("/api/categories").ids().size(), 2u);
  EXPECT_EQ(get("/api/products/" + second).status, 200);
  EXPECT_EQ(json::get_string(get("/api/products/" + first).doc, "name"), "Renamed");
  EXPECT_EQ(r.header("X-Position"), "1");
}

TEST_F(QueryApiTest, CacheSeesTheCheckpointWithinTheRefreshInterval) {
  auto o = options();
  o.checkpoint_refresh = std::chrono::milliseconds(20);
  auto app = make_app(o);
  const auto cat = category("All");
  product({.name = "First", .category_id = cat});
  checkpoint(1, 1, 1);
  EXPECT_EQ(get("/api/products", {}, app.get()).ids().size(), 1u);
  product({.name = "Second", .category_id = cat});
  checkpoint(1, 2, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  auto r = get("/api/products", {}, app.get());
  EXPECT_EQ(r.ids().size(), 2u);
  EXPECT_EQ(r.header("X-Position"), "2");
}

TEST_F(QueryApiTest, ProjectionStateKeepsTheNewestCheckpoint) {
  ProjectionState s(std::chrono::milliseconds(0), 2);
  EXPECT_FALSE(s.view().known);
  const auto t1 = s.begin_observation();
  const auto t2 = s.begin_observation();
  s.observe(t2, {true, 5, 10, 10});
  const auto g = s.view().generation;
  s.observe(t1, {true, 5, 9, 9});  // an older read finishing late changes nothing
  EXPECT_EQ(s.view().checkpoint.position, 10);
  EXPECT_EQ(s.view().generation, g);
  s.store("a", "A", g);
  s.store("b", "B", g);
  s.store("c", "C", g);  // over the limit: not kept
  EXPECT_EQ(s.lookup("a").body.value_or(""), "A");
  EXPECT_FALSE(s.lookup("c").body);
  s.observe(s.begin_observation(), {true, 6, 1, 10});
  EXPECT_FALSE(s.lookup("a").body);
  s.store("a", "stale", g);  // rendered before the move
  EXPECT_FALSE(s.lookup("a").body);
  // Read models rebuilt from scratch: a read begun after the last change is believed.
  s.observe(s.begin_observation(), {});
  EXPECT_TRUE(s.view().known);
  EXPECT_FALSE(s.view().checkpoint.exists);
}

// --- read your writes ---------------------------------------------------------------------------

TEST_F(QueryApiTest, MinPositionAlreadyProjectedAnswersAtOnce) {
  event(1, 100);
  event(2, 100);
  event(3, 101);
  checkpoint(101, 3, 3);
  for (const auto* n : {"0", "1", "3"}) {
    auto r = get("/api/categories", {{"X-Min-Position", n}});
    EXPECT_EQ(r.status, 200) << n;
    EXPECT_EQ(r.header("X-Position"), "3");
  }
}

TEST_F(QueryApiTest, MinPositionNotProjectedIsProjectionLaggingAfterTheTimeout) {
  event(1, 100);
  event(2, 101);
  checkpoint(100, 1, 1);
  const auto start = std::chrono::steady_clock::now();
  auto r = get("/api/products", {{"X-Min-Position", "2"}});
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.error_code(), "projection_lagging");
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_EQ(r.header("X-Position"), "1");
  EXPECT_GE(waited, std::chrono::milliseconds(300));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
  // The same on signed-in routes.
  auto cart = get_as("/api/cart", token(new_uuid()), {{"X-Min-Position", "2"}});
  EXPECT_EQ(cart.status, 503);
  EXPECT_EQ(cart.error_code(), "projection_lagging");
}

TEST_F(QueryApiTest, MinPositionFollowsTheProjectorOrderNotThePositionAlone) {
  // Transaction 102 took position 2 but committed after transaction 101's position 3: the
  // projector applies (101, 3) first. max_position 3 does not mean position 2 is projected.
  event(1, 100);
  event(3, 101);
  event(2, 102);
  checkpoint(101, 3, 3);
  EXPECT_EQ(get("/api/products", {{"X-Min-Position", "3"}}).status, 200);
  EXPECT_EQ(get("/api/products", {{"X-Min-Position", "2"}}).status, 503);
  checkpoint(102, 2, 3);
  EXPECT_EQ(get("/api/products", {{"X-Min-Position", "2"}}).status, 200);
}

TEST_F(QueryApiTest, MinPositionOfARolledBackGapCountsOncePassed) {
  event(1, 100);
  event(3, 101);  // position 2 was rolled back: no row
  checkpoint(100, 1, 1);
  EXPECT_EQ(get("/api/categories", {{"X-Min-Position", "2"}}).status, 503);
  checkpoint(101, 3, 3);
  EXPECT_EQ(get("/api/categories", {{"X-Min-Position", "2"}}).status, 200);
  // Beyond everything written so far: wait, then lagging.
  EXPECT_EQ(get("/api/categories", {{"X-Min-Position", "4"}}).status, 503);
}

TEST_F(QueryApiTest, MinPositionWaitsForTheProjectorAndSeesItsRows) {
  const auto cat = category("All");
  event(1, 100);
  checkpoint(100, 1, 1);
  EXPECT_TRUE(get("/api/products").ids().empty());  // cached: empty

  auto o = options();
  o.read_your_writes_timeout = std::chrono::milliseconds(3000);
  auto app = make_app(o);
  EXPECT_TRUE(get("/api/products", {}, app.get()).ids().empty());
  event(2, 101);
  auto pending = std::async(std::launch::async, [&] {
    return get("/api/products", {{"X-Min-Position", "2"}}, app.get());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto id = product({.name = "Fresh", .category_id = cat});
  checkpoint(101, 2, 2);
  auto r = pending.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.ids(), std::vector<std::string>{id});
  EXPECT_EQ(r.header("X-Position"), "2");
}

TEST_F(QueryApiTest, MalformedMinPositionIsInvalidParameter) {
  checkpoint(1, 1, 1);
  for (const auto* v : {"abc", "-1", "1.5", "", " 2", "+3", "99999999999999999999999"}) {
    auto r = get("/api/products", {{"X-Min-Position", v}});
    EXPECT_EQ(r.status, 400) << "'" << v << "'";
    EXPECT_EQ(r.error_code(), "invalid_parameter") << v;
  }
  // /health ignores it.
  EXPECT_EQ(get("/health", {{"X-Min-Position", "abc"}}).status, 200);
}

// --- signed in ----------------------------------------------------------------------------------

TEST_F(QueryApiTest, SignedInRoutesNeedAValidAccessToken) {
  const auto user = new_uuid();
  const std::string routes[] = {"/api/cart", "/api/orders", "/api/orders/" + new_uuid(),
                                "/api/users/me", "/api/admin/orders"};
  for (const auto& route : routes) {
    auto none = get(route);
    EXPECT_EQ(none.status, 401) << route;
    EXPECT_EQ(none.error_code(), "unauthenticated");
    for (const auto& bad : {
             std::string("Bearer nonsense"),
             std::string("Basic dXNlcjpwYXNz"),
             "Bearer " + infra::JwtCodec(std::string(40, 'x'), "shop")
                             .sign({user, {"admin"}, "access", new_uuid(), 4102444800, new_uuid()}),
             "Bearer " + token(user, {"customer"}, "refresh"),
             "Bearer " + token(user, {"customer"}, "access", -10),
         }) {
      auto r = get(route, {{"Authorization", bad}});
      EXPECT_EQ(r.status, 401) << route << " " << bad;
      EXPECT_EQ(r.error_code(), "invalid_token");
    }
  }
}

TEST_F(QueryApiTest, CartShowsTheCallersLinesWithTotals) {
  const auto user = new_uuid(), other = new_uuid(), p1 = new_uuid(), p2 = new_uuid();
  auto empty = get_as("/api/cart", token(user));
  ASSERT_EQ(empty.status, 200) << empty.body;
  EXPECT_EQ(empty.items().Size(), 0u);
  EXPECT_EQ(json::get_string(empty.doc, "total"), "0.00");
  EXPECT_EQ(json::get_string(empty.doc, "currency"), "USD");
  EXPECT_EQ(json::get_int(empty.doc, "item_count", -1), 0);
  EXPECT_EQ(empty.header("Cache-Control"), "private, no-store");

  exec("INSERT INTO rm_cart_items VALUES ('" + user + "', '" + p1 +
       "', 'Aero', 129999, 2, now() - interval '1 minute'), ('" + user + "', '" + p2 +
       "', 'Cable', 5, 3, now()), ('" + other + "', '" + p1 + "', 'Aero', 129999, 9, now())");
  auto r = get_as("/api/cart", token(user));
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.items().Size(), 2u);
  const auto& line = r.items()[0];
  EXPECT_EQ(json::get_string(line, "product_id"), p1);
  EXPECT_EQ(json::get_string(line, "name"), "Aero");
  EXPECT_EQ(json::get_string(line, "unit_price"), "1299.99");
  EXPECT_EQ(json::get_int(line, "quantity"), 2);
  EXPECT_EQ(json::get_string(line, "line_total"), "2599.98");
  EXPECT_EQ(json::get_string(r.items()[1], "line_total"), "0.15");
  EXPECT_EQ(json::get_string(r.doc, "total"), "2600.13");
  EXPECT_EQ(json::get_int(r.doc, "item_count"), 5);
}

class QueryApiOrdersTest : public QueryApiTest {
 protected:
  // An order as the projector writes it; returns its id.
  std::string order(const std::string& user, const std::string& status, int age_minutes,
                    const std::string& payment = "NULL", const std::string& shipment = "NULL") {
    const auto id = new_uuid();
    const auto product = new_uuid();
    exec("INSERT INTO rm_orders VALUES ('" + id + "', 'SO-" + std::to_string(++number_) + "', '" +
         user + "', '" + status + "', 260013, 'USD', '[{\"product_id\": \"" + product +
         "\", \"name\": \"Aero\", \"unit_price\": 129999, \"quantity\": 2, \"line_total\": "
         "259998}, {\"product_id\": \"" + new_uuid() + "\", \"name\": \"Cable\", \"unit_price\": "
         "5, \"quantity\": 3, \"line_total\": 15}]', '[{\"status\": \"pending\", \"at\": "
         "\"2026-01-01T00:00:00.000000Z\"}, {\"status\": \"" + status + "\", \"at\": "
         "\"2026-01-01T00:05:00.000000Z\"}]', " + payment + ", " + shipment +
         ", '2026-01-01T00:00:00Z'::timestamptz - interval '" + std::to_string(age_minutes) +
         " minutes', '2026-01-02T00:00:00Z')");
    return id;
  }
  int number_ = 100000;
};

TEST_F(QueryApiOrdersTest, OrderDetailFormatsMoneyEverywhere) {
  const auto user = new_uuid();
  const auto payment_id = new_uuid();
  const auto id = order(user, "shipped", 0,
                        "'{\"payment_id\": \"" + payment_id + "\", \"status\": \"captured\", "
                        "\"amount\": 260013, \"provider\": \"sandbox\"}'",
                        "'{\"carrier\": \"UPS\", \"tracking_number\": \"1Z999\", \"shipped_at\": "
                        "\"2026-01-01T01:00:00.000000Z\"}'");
  auto r = get_as("/api/orders/" + id, token(user));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::get_string(r.doc, "order_id"), id);
  EXPECT_EQ(json::get_string(r.doc, "order_number"), "SO-100001");
  EXPECT_EQ(json::get_string(r.doc, "status"), "shipped");
  EXPECT_EQ(json::get_string(r.doc, "total"), "2600.13");
  EXPECT_EQ(json::get_string(r.doc, "currency"), "USD");
  EXPECT_EQ(json::get_string(r.doc, "created_at"), "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(json::get_string(r.doc, "updated_at"), "2026-01-02T00:00:00.000000Z");
  const auto& items = r.doc["items"];
  ASSERT_EQ(items.Size(), 2u);
  EXPECT_EQ(json::get_string(items[0], "name"), "Aero");
  EXPECT_EQ(json::get_string(items[0], "unit_price"), "1299.99");
  EXPECT_EQ(json::get_int(items[0], "quantity"), 2);
  EXPECT_EQ(json::get_string(items[0], "line_total"), "2599.98");
  EXPECT_EQ(json::get_string(items[1], "unit_price"), "0.05");
  const auto& history = r.doc["status_history"];
  ASSERT_EQ(history.Size(), 2u);
  EXPECT_EQ(json::get_string(history[1], "status"), "shipped");
  EXPECT_EQ(json::get_string(history[1], "at"), "2026-01-01T00:05:00.000000Z");
  const auto& payment = r.doc["payment"];
  EXPECT_EQ(json::get_string(payment, "payment_id"), payment_id);
  EXPECT_EQ(json::get_string(payment, "status"), "captured");
  EXPECT_EQ(json::get_string(payment, "amount"), "2600.13");
  EXPECT_EQ(json::get_string(payment, "provider"), "sandbox");
  const auto& shipment = r.doc["shipment"];
  EXPECT_EQ(json::get_string(shipment, "carrier"), "UPS");
  EXPECT_EQ(json::get_string(shipment, "tracking_number"), "1Z999");
  EXPECT_EQ(json::get_string(shipment, "shipped_at"), "2026-01-01T01:00:00.000000Z");

  const auto fresh = order(user, "pending", 0);
  r = get_as("/api/orders/" + fresh, token(user));
  EXPECT_TRUE(r.doc["payment"].IsNull());
  EXPECT_TRUE(r.doc["shipment"].IsNull());
}

TEST_F(QueryApiOrdersTest, SomeoneElsesOrderDoesNotExistExceptForStaff) {
  const auto owner = new_uuid(), stranger = new_uuid();
  const auto id = order(owner, "pending", 0);
  EXPECT_EQ(get_as("/api/orders/" + id, token(owner)).status, 200);
  auto r = get_as("/api/orders/" + id, token(stranger));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.error_code(), "not_found");
  EXPECT_EQ(get_as("/api/orders/" + new_uuid(), token(owner)).status, 404);
  EXPECT_EQ(get_as("/api/orders/not-a-uuid", token(owner)).status, 404);
  EXPECT_EQ(get_as("/api/orders/" + id, token(stranger, {"admin"})).status, 200);
  EXPECT_EQ(get_as("/api/orders/" + id, token(stranger, {"staff"})).status, 200);
}

TEST_F(QueryApiOrdersTest, OrderListsAreTheCallersNewestFirstInPages) {
  const auto user = new_uuid(), other = new_uuid();
  std::vector<std::string> mine;
  for (int age : {50, 40, 30, 30, 10}) mine.push_back(order(user, "pending", age));
  order(other, "paid", 20);
  // Newest first; equal times by id, descending.
  std::vector<std::string> want;
  for (const auto& row : exec("SELECT id::text FROM rm_orders WHERE user_id = '" + user +
                              "' ORDER BY created_at DESC, id DESC")) {
    want.push_back(row[0].c_str());
  }
  auto r = get_as("/api/orders", token(user));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.ids("order_id"), want);
  const auto& first = r.items()[0];
  EXPECT_EQ(json::get_string(first, "status"), "pending");
  EXPECT_EQ(json::get_string(first, "total"), "2600.13");
  EXPECT_EQ(json::get_string(first, "currency"), "USD");
  EXPECT_EQ(json::get_int(first, "item_count"), 5);
  EXPECT_EQ(json::get_string(first, "created_at"), "2025-12-31T23:50:00.000000Z");
  EXPECT_FALSE(first.HasMember("user_id"));

  const auto tok = token(user);
  for (const std::string limit : {"1", "2", "4"}) {
    auto paged = all_pages(
        "/api/orders?limit=" + limit, [&](const std::string& t) { return get_as(t, tok); },
        "order_id");
    EXPECT_EQ(paged, want) << limit;
  }
  EXPECT_EQ(get_as("/api/orders?limit=0", tok).error_code(), "invalid_parameter");
}

TEST_F(QueryApiOrdersTest, AdminListsEveryOrderAndFiltersByStatus) {
  const auto alice = new_uuid(), bob = new_uuid();
  const auto a1 = order(alice, "pending", 30);
  const auto b1 = order(bob, "paid", 20);
  const auto a2 = order(alice, "paid", 10);
  auto forbidden = get_as("/api/admin/orders", token(alice));
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(forbidden.error_code(), "forbidden");

  const auto admin = token(new_uuid(), {"admin"});
  auto r = get_as("/api/admin/orders", admin);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.ids("order_id"), (std::vector<std::string>{a2, b1, a1}));
  EXPECT_EQ(json::get_string(r.items()[1], "user_id"), bob);
  EXPECT_EQ(get_as("/api/admin/orders?status=paid", admin).ids("order_id"),
            (std::vector<std::string>{a2, b1}));
  EXPECT_EQ(get_as("/api/admin/orders?status=paid&limit=1", token(new_uuid(), {"staff"}))
                .ids("order_id"),
            (std::vector<std::string>{a2}));
  auto pages = all_pages(
      "/api/admin/orders?limit=1", [&](const std::string& t) { return get_as(t, admin); },
      "order_id");
  EXPECT_EQ(pages, (std::vector<std::string>{a2, b1, a1}));
  auto bad = get_as("/api/admin/orders?status=pa'id", admin);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.error_code(), "invalid_parameter");
  // A customer's list cursor does not page the admin list.
  auto user_page = get_as("/api/orders?limit=1", token(alice));
  auto mixed = get_as("/api/admin/orders?cursor=" + user_page.next_cursor(), admin);
  EXPECT_EQ(mixed.error_code(), "invalid_cursor");
}

TEST_F(QueryApiTest, ProfileOfTheCaller) {
  const auto user = new_uuid();
  auto missing = get_as("/api/users/me", token(user));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.error_code(), "not_found");
  exec("INSERT INTO rm_users VALUES ('" + user +
       "', 'pat@example.com', 'Pat', '{customer,staff}', now())");
  auto r = get_as("/api/users/me", token(user));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::get_string(r.doc, "user_id"), user);
  EXPECT_EQ(json::get_string(r.doc, "email"), "pat@example.com");
  EXPECT_EQ(json::get_string(r.doc, "name"), "Pat");
  ASSERT_EQ(r.doc["roles"].Size(), 2u);
  EXPECT_EQ(std::string(r.doc["roles"][1].GetString()), "staff");
}

// --- configuration and outages ------------------------------------------------------------------

TEST_F(QueryApiTest, ConfigurationKeysAndDefaults) {
  auto o = Options::from_config(infra::Config::from_map(
      {{"DATABASE_URL", "postgresql://x@127.0.0.1:1/db"}, {"JWT_SECRET", kSecret}}));
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 8081);
  EXPECT_EQ(o.threads, 8);
  EXPECT_EQ(o.pool_size, 8);
  EXPECT_EQ(o.currency, "USD");
  EXPECT_EQ(o.cors_origin, "*");
  EXPECT_EQ(o.read_your_writes_timeout, std::chrono::milliseconds(3000));
  o = Options::from_config(infra::Config::from_map({{"DATABASE_URL", "postgresql://x/db"},
                                                    {"JWT_SECRET", kSecret},
                                                    {"QUERY_API_PORT", "9000"},
                                                    {"QUERY_API_THREADS", "4"},
                                                    {"STORE_CURRENCY", "EUR"},
                                                    {"READ_YOUR_WRITES_TIMEOUT_MS", "50"}}));
  EXPECT_EQ(o.port, 9000);
  EXPECT_EQ(o.pool_size, 4);
  EXPECT_EQ(o.currency, "EUR");
  EXPECT_EQ(o.read_your_writes_timeout, std::chrono::milliseconds(50));
  EXPECT_THROW(Options::from_config(infra::Config::from_map({{"JWT_SECRET", kSecret}})),
               std::runtime_error);
  EXPECT_THROW(Options::from_config(infra::Config::from_map(
                   {{"DATABASE_URL", "postgresql://x/db"}, {"JWT_SECRET", "short"}})),
               std::runtime_error);
}

TEST_F(QueryApiTest, DatabaseOutageIsUnavailableNotACrash) {
  auto o = options();
  o.database_url = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2";
  auto down = make_app(o);
  for (const auto* target : {"/health", "/api/products", "/api/categories",
                             "/api/products/00000000-0000-0000-0000-000000000000"}) {
    auto r = get(target, {}, down.get());
    EXPECT_EQ(r.status, 503) << target;
    EXPECT_EQ(r.error_code(), "unavailable") << target;
  }
  auto r = get("/api/products", {{"X-Min-Position", "5"}}, down.get());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(get_as("/api/cart", token(new_uuid())).status, 200);  // the real one still works
}

TEST_F(QueryApiTest, ServesOverHttp) {
  auto o = options();
  o.port = 0;  // any free port
  auto app = make_app(o);
  auto server = app->make_server();
  std::thread runner([&] { server->run(); });
  checkpoint(1, 4, 4);
  const auto cat = category("All");
  product({.name = "Lamp", .price = 1999, .category_id = cat});
  {
    testing::HttpClient client("127.0.0.1", server->port());
    auto r = client.get("/api/products?q=lamp", "", {{"X-Min-Position", "0"}});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-position"), "4");
    EXPECT_EQ(r.header("access-control-allow-origin"), "*");
    auto d = r.json();
    ASSERT_EQ(d["items"].Size(), 1u);
    EXPECT_EQ(json::get_string(d["items"][0], "price"), "19.99");
    auto bad = client.get("/api/products?limit=1000");
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(json::get_string(bad.json()["error"], "code"), "invalid_parameter");
    EXPECT_EQ(client.get("/api/cart").status, 401);
  }
  server->stop();
  runner.join();
}

TEST_F(QueryApiTest, CursorCodecRoundTripsAndRefusesOtherScopes) {
  CursorCodec codec(kSecret);
  const CursorPosition p{"Ünïcödé\nname", new_uuid()};
  const auto c = codec.encode("products:name", p);
  EXPECT_EQ(c.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  auto back = codec.decode("products:name", c);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, p.key);
  EXPECT_EQ(back->id, p.id);
  EXPECT_FALSE(codec.decode("products:-name", c));
  EXPECT_FALSE(codec.decode("products:name", ""));
  const std::string samples[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                 std::string("\0\xff", 2)};
  for (const auto& s : samples) EXPECT_EQ(base64url_decode(base64url_encode(s)), s);
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode(std::string("\xfb\xff", 2)), "-_8");
  EXPECT_FALSE(base64url_decode("Zm9v="));
  EXPECT_FALSE(base64url_decode("Z"));
  EXPECT_FALSE(base64url_decode("Zh"));  // non-zero trailing bits
}


// GET /api/schemas/events: every event type with its schema version, category and JSON Schema,
// to anyone, without touching the read models.
TEST_F(QueryApiTest, EventSchemasArePublicAndComplete) {
  const auto r = get("/api/schemas/events");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("Cache-Control"), "public, max-age=300");
  ASSERT_TRUE(r.items().IsArray());
  std::vector<std::string> types;
  for (const auto& item : r.items().GetArray()) {
    const std::string type = json::get_string(item, "type");
    types.push_back(type);
    ASSERT_TRUE(item.HasMember("schema_version") && item["schema_version"].IsInt()) << type;
    EXPECT_GE(item["schema_version"].GetInt(), 1) << type;
    EXPECT_FALSE(json::get_string(item, "category").empty()) << type;
    ASSERT_TRUE(item.HasMember("schema") && item["schema"].IsObject()) << type;
    EXPECT_EQ(json::get_string(item["schema"], "title"), type);
    EXPECT_EQ(json::get_string(item["schema"], "type"), "object") << type;
  }
  EXPECT_TRUE(std::is_sorted(types.begin(), types.end()));
  const std::set<std::string> known(types.begin(), types.end());
  EXPECT_EQ(known.size(), events::all_types().size());
  for (const char* t : {"UserRegistered", "OrderPlaced", "CartItemAdded", "PaymentCaptured"}) {
    EXPECT_TRUE(known.contains(t)) << t;
  }
  const auto& placed = r.items().GetArray()[static_cast<rapidjson::SizeType>(
      std::find(types.begin(), types.end(), "OrderPlaced") - types.begin())];
  EXPECT_EQ(json::get_string(placed, "category"), "order");

  // Public even with a bad token, and served while the database is away.
  EXPECT_EQ(get("/api/schemas/events", {{"Authorization", "Bearer nonsense"}}).status, 200);
  Options o = options();
  o.database_url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1";
  auto offline = make_app(o);
  const auto away = get("/api/schemas/events", {}, offline.get());
  EXPECT_EQ(away.status, 200);
  EXPECT_EQ(away.body, r.body);
  EXPECT_EQ(get("/api/schemas/events/OrderPlaced").status, 404);
}

}  // namespace
}  // namespace shop::query
