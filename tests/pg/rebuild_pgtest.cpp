// Rebuilding the read models with no downtime (projector/include/shop/projector/rebuild.h): the
// versioned schemas and their views, a rebuild equal to the live read models (per-event path and
// bulk), a rebuild while commands keep coming and the live projector keeps running with the
// query API read throughout, interruptions (an exception, SIGKILL) and the run that continues,
// verify, status, the query API's cache across a switch, and the HTTP endpoints.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "pg/read_models_support.h"
#include "shop/command/http_api.h"
#include "shop/command/service.h"
#include "shop/events/json.h"
#include "shop/infra/auth.h"
#include "shop/infra/crypto.h"
#include "shop/infra/pg.h"
#include "shop/projector/projector.h"
#include "shop/projector/rebuild.h"
#include "shop/query/app.h"
#include "support/pg_fixture.h"

namespace shop::projector {
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
};

Reply call(const http::Handler& handler, const http::ServerOptions& options,
           const std::string& method, const std::string& target, const std::string& token = "",
           const std::string& body = "") {
  http::Request req;
  req.method = method;
  req.target = target;
  if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
  }
  const auto res = http::dispatch(handler, req, options);
  Reply out{res.status, res.body, res.headers, {}};
  (void)json::parse(res.body, out.doc);
  return out;
}

struct Interrupt : std::runtime_error {
  Interrupt() : std::runtime_error("interrupted by the test") {}
};

class RebuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("rebuild");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(kSecret, "shop");
    service_ = std::make_unique<command::CommandService>(*store_, *jwt_, clock_,
                                                         command::ServiceOptions{});
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  pqxx::result query(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    auto r = tx.exec(sql);
    tx.commit();
    return r;
  }
  std::int64_t head() {
    return query("SELECT coalesce(max(position), 0) FROM events")[0][0].as<std::int64_t>();
  }
  // Projects until the live checkpoint covers the newest event.
  void drain(Projector& p) {
    const auto target = head();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const int n = p.run_once();
      auto cp = query("SELECT max_position FROM rm_checkpoints");
      if (!cp.empty() && cp[0][0].as<std::int64_t>() >= target) return;
      if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "the projector did not catch up";
  }
  std::string dump() {
    pqxx::connection c(url_);
    return testing::dump_read_models(c);
  }
  std::string live_schema() {
    pqxx::connection c(url_);
    return testing::live_read_models_schema(c);
  }
  std::string checkpoint_text() {
    return query(
               "SELECT last_tx::text || '/' || last_position || '/' || max_position FROM "
               "rm_checkpoints WHERE name = 'read_models'")[0][0]
        .c_str();
  }
  std::vector<std::string> version_schemas() {
    std::vector<std::string> out;
    for (const auto& r :
         query("SELECT nspname FROM pg_namespace WHERE nspname ~ '^rm_v[0-9]+$' ORDER BY 1")) {
      out.emplace_back(r[0].c_str());
    }
    return out;
  }
  infra::ProjectionStatus status() {
    pqxx::connection c(url_);
    pqxx::read_transaction tx(c);
    for (auto& s : infra::projection_status(tx)) {
      if (s.name == "read_models") return s;
    }
    ADD_FAILURE() << "read_models is not in the registry";
    return {};
  }
  // Small transactions so that a small store still takes many of them.
  static RebuildOptions options(bool bulk = false) {
    RebuildOptions o;
    o.bulk = bulk;
    o.batch_size = 40;
    o.bulk_batch_size = 100;
    o.bulk_flush_every = 100;
    o.switch_within = 10;
    return o;
  }
  // A storefront with events of every kind, projected by the live projector.
  void storefront(unsigned seed, int steps) {
    testing::Scenario scenario(*service_, seed);
    scenario.setup();
    scenario.run(steps);
    scenario.finish();
    Projector live(url_, {});
    drain(live);
  }
  std::string token(const std::string& user_id, std::vector<std::string> roles) const {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return jwt_->sign({user_id, std::move(roles), "access", new_uuid(), now + 3600, new_uuid()});
  }
  query::Options query_options() const {
    query::Options o;
    o.database_url = url_;
    o.jwt_secret = kSecret;
    o.threads = 4;
    o.checkpoint_refresh = std::chrono::milliseconds(0);
    return o;
  }

  SystemClock clock_;
  std::string url_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<command::CommandService> service_;
};

// --- versioned schemas --------------------------------------------------------------------------

TEST_F(RebuildTest, MigratedTablesAreVersionOneBehindViews) {
  EXPECT_EQ(version_schemas(), std::vector<std::string>{"rm_v1"});
  EXPECT_EQ(live_schema(), "rm_v1");
  auto views = query(
      "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
      " WHERE n.nspname = 'public' AND c.relname LIKE 'rm\\_%' ORDER BY 1");
  std::vector<std::string> names;
  for (const auto& v : views) {
    names.emplace_back(v[0].c_str());
    EXPECT_STREQ(v[1].c_str(), "v") << v[0].c_str() << " is not a view";
  }
  auto expected = infra::read_model_tables();
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names, expected);
  const auto s = status();
  EXPECT_EQ(s.live_version, 1);
  EXPECT_EQ(s.state, "live");
  EXPECT_FALSE(s.building_version);
}

TEST_F(RebuildTest, CreatedTablesHaveTheMigratedShape) {
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    infra::create_read_model_tables(tx, "rm_shape");
    tx.commit();
  }
  auto shape = [&](const std::string& schema) {
    std::string out;
    const auto columns = query(
        "SELECT table_name, ordinal_position, column_name, data_type, udt_name, is_nullable,"
        "       coalesce(column_default, ''), is_generated, coalesce(generation_expression, ''),"
        "       coalesce(character_maximum_length, 0), coalesce(numeric_precision, 0)"
        "  FROM information_schema.columns WHERE table_schema = '" +
        schema + "' ORDER BY table_name, ordinal_position");
    for (const auto& r : columns) {
      for (const auto& f : r) out += std::string(f.c_str()) + "|";
      out += "\n";
    }
    const auto indexes =
        query("SELECT tablename, indexname, replace(indexdef, '" + schema +
              ".', '') FROM pg_indexes WHERE schemaname = '" + schema + "' ORDER BY 1, 2");
    for (const auto& r : indexes) {
      out += std::string(r[0].c_str()) + " " + r[1].c_str() + " " + r[2].c_str() + "\n";
    }
    const auto constraints = query(
        "SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)"
        "  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        "  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '" +
        schema + "' ORDER BY 1, 2");
    for (const auto& r : constraints) {
      out += std::string(r[0].c_str()) + " " + r[1].c_str() + " " + r[2].c_str() + " " +
             r[3].c_str() + "\n";
    }
    return out;
  };
  const auto migrated = shape("rm_v1");
  EXPECT_GT(migrated.size(), 1000u);
  EXPECT_NE(migrated.find("rm_products_search"), std::string::npos);
  EXPECT_EQ(shape("rm_shape"), migrated);
}

TEST_F(RebuildTest, ProjectionResetEmptiesTheLiveVersion) {
  storefront(3, 40);
  EXPECT_GT(query("SELECT count(*) FROM rm_products")[0][0].as<int>(), 0);
  query("SELECT projection_reset('read_models')");
  for (const auto& t : infra::read_model_tables()) {
    EXPECT_EQ(query("SELECT count(*) FROM rm_v1." + t)[0][0].as<int>(), 0) << t;
  }
  EXPECT_THROW(query("SELECT projection_reset('nope')"), pqxx::sql_error);
}

// --- a rebuild equals the live read models
// --------------------------------------------------------

class RebuildPathTest : public RebuildTest, public ::testing::WithParamInterface<bool> {};

TEST_P(RebuildPathTest, RebuildEqualsTheLiveReadModels) {
  storefront(7, 300);
  const auto before = dump();
  const auto before_checkpoint = checkpoint_text();
  std::vector<RebuildProgress> seen;
  auto o = options(GetParam());
  o.on_progress = [&](const RebuildProgress& p) { seen.push_back(p); };
  const auto r = rebuild(url_, "read_models", o);
  EXPECT_TRUE(r.switched);
  EXPECT_FALSE(r.resumed);
  EXPECT_EQ(r.old_version, 1);
  EXPECT_EQ(r.new_version, 2);
  EXPECT_TRUE(r.old_dropped);
  EXPECT_EQ(r.position, head());
  EXPECT_GE(r.events, head() - 10);  // every event (positions may have gaps)
  EXPECT_EQ(live_schema(), "rm_v2");
  EXPECT_EQ(version_schemas(), std::vector<std::string>{"rm_v2"});
  EXPECT_EQ(dump(), before);
  EXPECT_EQ(checkpoint_text(), before_checkpoint);
  ASSERT_GT(seen.size(), 3u);
  EXPECT_EQ(seen.back().phase, "done");
  EXPECT_EQ(seen.back().percent, 100);
  EXPECT_EQ(seen.back().version, 2);
  for (std::size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].position, seen[i - 1].position);
  }
  const auto view = query("SELECT definition FROM pg_views WHERE viewname = 'rm_orders'");
  EXPECT_NE(std::string(view[0][0].c_str()).find("rm_v2.rm_orders"), std::string::npos);

  // The live projector carries on in the new version; another rebuild agrees with it.
  testing::Scenario more(*service_, 8);
  more.setup(2, 2);
  more.run(100);
  Projector live(url_, {});
  drain(live);
  const auto after = dump();
  EXPECT_NE(after, before);
  const auto again = rebuild(url_, "read_models", options(GetParam()));
  EXPECT_EQ(again.new_version, 3);
  EXPECT_EQ(dump(), after);
  EXPECT_EQ(version_schemas(), std::vector<std::string>{"rm_v3"});
  const auto s = status();
  EXPECT_EQ(s.live_version, 3);
  EXPECT_EQ(s.state, "live");
  EXPECT_EQ(s.lag_events, 0);
  EXPECT_EQ(s.position, head());
  EXPECT_TRUE(s.last_rebuild_at);
  EXPECT_FALSE(s.last_error);
}

TEST_F(RebuildTest, EmptyStore) {
  const auto r = rebuild(url_, "read_models", options());
  EXPECT_TRUE(r.switched);
  EXPECT_EQ(r.events, 0);
  EXPECT_EQ(live_schema(), "rm_v2");
  Projector live(url_, {});
  testing::Scenario scenario(*service_, 1);
  scenario.setup(1, 1);
  drain(live);
  EXPECT_EQ(query("SELECT count(*) FROM rm_v2.rm_products")[0][0].as<int>(), 1);
}

// --- under load
// -------------------------------------------------------------------------------------

// Commands keep coming, the live projector keeps running and a reader keeps asking the query API
// for the catalog, carts, order lists and orders, all through a rebuild and its switch. Every
// answer is a 200, X-Position never goes back, an order once listed is never missing later, and
// the new version ends equal to a verified rebuild of it.
TEST_F(RebuildTest, RebuildUnderLoadWithReadsThroughout) {
  testing::Scenario scenario(*service_, 11);
  scenario.setup(6, 5);
  scenario.run(1500);
  std::vector<std::string> users;
  for (const auto& r : query("SELECT data->>'user_id' FROM events WHERE type = 'UserRegistered'")) {
    users.emplace_back(r[0].c_str());
  }
  {
    Projector live(url_, {});
    drain(live);
  }

  std::atomic<bool> stop_commands{false}, stop_projector{false}, stop_reads{false};
  std::atomic<int> commands{0};
  std::thread writer([&] {
    while (!stop_commands.load()) {
      if (scenario.step() > 0) ++commands;
    }
  });
  std::thread projector([&] {
    Projector live(url_, {.batch_size = 50});
    live.run(stop_projector);
  });

  query::QueryApp app(query_options(), clock_);
  const http::Handler handler = [&](http::Request& req) { return app.handle(req); };
  std::mutex mutex;
  std::vector<std::string> failures;
  std::atomic<int> reads{0};
  std::atomic<int> reads_after_switch{0}, reads_during_rebuild{0};
  std::atomic<bool> rebuilding{false}, switched{false};
  std::thread reader([&] {
    std::map<std::string, std::set<std::string>> listed;  // user -> orders seen in their list
    std::int64_t last_position = 0;
    auto fail = [&](const std::string& what) {
      std::lock_guard lock(mutex);
      if (failures.size() < 20) failures.push_back(what);
    };
    auto check = [&](const Reply& r, const std::string& what) {
      ++reads;
      if (rebuilding.load()) ++reads_during_rebuild;
      if (switched.load()) ++reads_after_switch;
      if (r.status != 200) {
        fail(what + ": " + std::to_string(r.status) + " " + r.body);
        return false;
      }
      const std::int64_t position = std::stoll(r.header("X-Position"));
      if (position < last_position) {
        fail(what + ": X-Position went back from " + std::to_string(last_position) + " to " +
             std::to_string(position));
      }
      last_position = std::max(last_position, position);
      return true;
    };
    std::size_t turn = 0;
    while (!stop_reads.load()) {
      const auto& user = users[turn++ % users.size()];
      const auto t = token(user, {"customer"});
      check(call(handler, app.server_options(), "GET", "/api/products?limit=50"), "products");
      check(call(handler, app.server_options(), "GET", "/api/categories"), "categories");
      check(call(handler, app.server_options(), "GET", "/api/cart", t), "cart");
      const auto list = call(handler, app.server_options(), "GET", "/api/orders?limit=100", t);
      if (!check(list, "orders")) continue;
      std::set<std::string> now;
      for (const auto& item : list.doc["items"].GetArray()) {
        now.insert(json::get_string(item, "order_id"));
      }
      for (const auto& id : listed[user]) {
        if (now.count(id)) continue;
        // A full page: newer orders may have pushed it off; it must still be there on its own.
        if (now.size() == 100) {
          const auto one = call(handler, app.server_options(), "GET", "/api/orders/" + id, t);
          if (one.status == 200) continue;
        }
        fail("order " + id + " listed before is missing (" + std::to_string(now.size()) +
             " listed now, " + std::to_string(listed[user].size()) + " before; " +
             (switched.load() ? "after" : "before") + " the rebuild returned; X-Position " +
             list.header("X-Position") + ")");
      }
      listed[user] = now;
      if (!now.empty()) {
        check(call(handler, app.server_options(), "GET", "/api/orders/" + *now.begin(), t),
              "order");
      }
    }
  });

  while (reads.load() < 50) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto o = options(true);
  o.batch_size = 100;
  o.switch_within = 50;
  o.bulk_flush_every = 2000;
  o.bulk_batch_size = 500;
  RebuildResult r;
  rebuilding = true;
  EXPECT_NO_THROW(r = rebuild(url_, "read_models", o));
  rebuilding = false;
  switched = true;
  const int commands_at_switch = commands.load();
  while (reads_after_switch.load() < 50 || commands.load() < commands_at_switch + 20) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop_commands = true;
  writer.join();
  stop_projector = true;
  projector.join();
  stop_reads = true;
  reader.join();

  EXPECT_TRUE(r.switched);
  EXPECT_EQ(r.new_version, 2);
  EXPECT_TRUE(failures.empty()) << [&] {
    std::string all;
    for (const auto& f : failures) all += f + "\n";
    return all;
  }();
  EXPECT_GT(reads.load(), 100);
  EXPECT_GT(reads_during_rebuild.load(), 10);

  // The new version, kept by the live projector since, is exactly a rebuild of it.
  Projector live(url_, {});
  drain(live);
  const auto before = dump();
  auto v = options(true);
  v.verify = true;
  const auto checked = rebuild(url_, "read_models", v);
  ASSERT_TRUE(checked.verify);
  EXPECT_TRUE(checked.verify->equal()) << checked.verify->differing_rows();
  EXPECT_TRUE(checked.switched);
  EXPECT_EQ(dump(), before);
}

// --- interrupted, then continued ---------------------------------------------------------------

TEST_P(RebuildPathTest, InterruptedRebuildContinuesFromItsCheckpoint) {
  storefront(5, 300);
  const auto before = dump();
  auto o = options(GetParam());
  o.on_progress = [&](const RebuildProgress& p) {
    if (p.position > 300) throw Interrupt();
  };
  EXPECT_THROW(rebuild(url_, "read_models", o), Interrupt);

  auto s = status();
  EXPECT_EQ(s.state, "rebuilding");
  EXPECT_EQ(s.live_version, 1);
  ASSERT_TRUE(s.building_version);
  EXPECT_EQ(*s.building_version, 2);
  EXPECT_FALSE(s.rebuild_running);
  ASSERT_TRUE(s.last_error);
  EXPECT_NE(s.last_error->find("interrupted by the test"), std::string::npos);
  EXPECT_EQ(live_schema(), "rm_v1");
  EXPECT_EQ(dump(), before);  // the live version untouched
  const auto stopped_at =
      query("SELECT max_position FROM rm_v2.rm_checkpoints")[0][0].as<std::int64_t>();
  EXPECT_GT(stopped_at, 0);

  const auto r = rebuild(url_, "read_models", options(GetParam()));
  EXPECT_TRUE(r.resumed);
  EXPECT_EQ(r.resumed_from, stopped_at);
  EXPECT_GT(r.resumed_from, 0);
  EXPECT_LT(r.events, head());  // only what was left
  EXPECT_TRUE(r.switched);
  EXPECT_EQ(r.new_version, 2);
  EXPECT_EQ(dump(), before);
  EXPECT_FALSE(status().last_error);
}

INSTANTIATE_TEST_SUITE_P(Paths, RebuildPathTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Bulk" : "PerEvent";
                         });

TEST_F(RebuildTest, KilledRebuildContinuesFromItsCheckpoint) {
  storefront(9, 300);
  const auto before = dump();
  const auto total = head();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    try {
      auto o = options();
      o.batch_size = 10;
      o.on_progress = [&](const RebuildProgress& p) {
        const std::string line = std::to_string(p.position) + "\n";
        if (::write(fds[1], line.data(), line.size()) < 0) ::_exit(3);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      };
      rebuild(url_, "read_models", o);
      ::_exit(0);
    } catch (...) {
      ::_exit(2);
    }
  }
  ::close(fds[1]);
  std::string buffer;
  std::int64_t reached = 0;
  char chunk[256];
  while (reached < total / 2) {
    const auto n = ::read(fds[0], chunk, sizeof chunk);
    ASSERT_GT(n, 0) << "the child ended early";
    buffer.append(chunk, static_cast<std::size_t>(n));
    for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
      reached = std::stoll(buffer.substr(0, nl));
      buffer.erase(0, nl + 1);
    }
  }
  ::kill(child, SIGKILL);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  ::close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(wstatus));

  EXPECT_EQ(live_schema(), "rm_v1");
  EXPECT_EQ(dump(), before);
  // The killed client's server session ends on its own; until then its lock refuses a rebuild.
  RebuildResult r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    try {
      r = rebuild(url_, "read_models", options(true));  // continued in bulk
      break;
    } catch (const RebuildRefused& e) {
      ASSERT_EQ(e.reason, RebuildRefused::Reason::running);
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the lock was never released";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(r.resumed);
  EXPECT_GT(r.resumed_from, 0);
  EXPECT_TRUE(r.switched);
  EXPECT_EQ(dump(), before);
  EXPECT_EQ(version_schemas(), std::vector<std::string>{"rm_v2"});
}

TEST_F(RebuildTest, CancelDropsTheVersionBeingBuilt) {
  storefront(4, 60);
  auto o = options();
  o.on_progress = [](const RebuildProgress& p) {
    if (p.events > 0) throw Interrupt();
  };
  EXPECT_THROW(rebuild(url_, "read_models", o), Interrupt);
  EXPECT_EQ(version_schemas(), (std::vector<std::string>{"rm_v1", "rm_v2"}));
  EXPECT_TRUE(cancel_rebuild(url_, "read_models"));
  EXPECT_EQ(version_schemas(), std::vector<std::string>{"rm_v1"});
  const auto s = status();
  EXPECT_EQ(s.state, "live");
  EXPECT_FALSE(s.building_version);
  EXPECT_FALSE(cancel_rebuild(url_, "read_models"));
}

TEST_F(RebuildTest, OldVersionsLeftBehindAreDropped) {
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    infra::create_read_model_tables(tx, "rm_v7");
    tx.commit();
  }
  EXPECT_EQ(drop_old_versions(url_, "read_models"), std::vector<std::string>{"rm_v7"});
  EXPECT_EQ(version_schemas(), std::vector<std::string>{"rm_v1"});
}

// --- verify -------------------------------------------------------------------------------------

TEST_F(RebuildTest, VerifyFindsADifferencePlantedInTheLiveVersion) {
  storefront(6, 150);
  query(
      "UPDATE rm_v1.rm_products SET name = 'Planted name' "
      "WHERE id = (SELECT id FROM rm_v1.rm_products ORDER BY id LIMIT 1)");
  auto o = options();
  o.verify = true;
  const auto r = rebuild(url_, "read_models", o);
  EXPECT_FALSE(r.switched);
  ASSERT_TRUE(r.verify);
  EXPECT_EQ(r.verify->differing_rows(), 2);
  EXPECT_EQ(r.verify->position, head());
  bool found = false;
  for (const auto& t : r.verify->tables) {
    if (t.table != "rm_products") {
      EXPECT_EQ(t.only_live + t.only_new, 0) << t.table;
      continue;
    }
    found = true;
    EXPECT_EQ(t.only_live, 1);
    EXPECT_EQ(t.only_new, 1);
    ASSERT_EQ(t.live_samples.size(), 1u);
    EXPECT_NE(t.live_samples[0].find("Planted name"), std::string::npos);
    ASSERT_EQ(t.new_samples.size(), 1u);
    EXPECT_EQ(t.new_samples[0].find("Planted name"), std::string::npos);
  }
  EXPECT_TRUE(found);
  auto s = status();
  EXPECT_EQ(s.live_version, 1);
  EXPECT_EQ(s.state, "rebuilding");
  ASSERT_TRUE(s.last_error);
  EXPECT_NE(s.last_error->find("verification found 2 differing rows"), std::string::npos);
  EXPECT_EQ(live_schema(), "rm_v1");

  // With force: the same report, and the switch; the rebuilt name replaces the planted one.
  o.force = true;
  const auto forced = rebuild(url_, "read_models", o);
  EXPECT_TRUE(forced.resumed);
  EXPECT_TRUE(forced.switched);
  ASSERT_TRUE(forced.verify);
  EXPECT_EQ(forced.verify->differing_rows(), 2);
  EXPECT_EQ(live_schema(), "rm_v2");
  EXPECT_EQ(query("SELECT count(*) FROM rm_products WHERE name = 'Planted name'")[0][0].as<int>(),
            0);
  EXPECT_FALSE(status().last_error);
}

// --- status, one rebuild at a time, Kafka ------------------------------------------------------

TEST_F(RebuildTest, StatusShowsRebuildingThenLiveAndASecondRebuildIsRefused) {
  storefront(2, 200);
  auto o = options();
  o.report_interval = std::chrono::milliseconds(0);
  bool looked = false;
  o.on_progress = [&](const RebuildProgress& p) {
    if (looked || p.events == 0) return;
    looked = true;
    const auto s = status();
    EXPECT_EQ(s.state, "rebuilding");
    EXPECT_EQ(s.live_version, 1);
    ASSERT_TRUE(s.building_version);
    EXPECT_EQ(*s.building_version, 2);
    EXPECT_TRUE(s.rebuild_running);
    EXPECT_GT(s.rebuild_position, 0);
    EXPECT_GT(s.rebuild_percent, 0);
    EXPECT_LT(s.rebuild_percent, 100);
    EXPECT_TRUE(s.rebuild_started_at);
    EXPECT_GT(s.rebuild_events_per_second, 0);
    EXPECT_TRUE(s.rebuild_eta_seconds);
    const auto json = infra::projection_status_json(s);
    EXPECT_NE(json.find(R"("state":"rebuilding")"), std::string::npos) << json;
    EXPECT_NE(json.find(R"("running":true)"), std::string::npos) << json;
    try {
      rebuild(url_, "read_models", options());
      ADD_FAILURE() << "a second rebuild ran";
    } catch (const RebuildRefused& e) {
      EXPECT_EQ(e.reason, RebuildRefused::Reason::running);
    }
    pqxx::connection c(url_);
    pqxx::work tx(c);
    EXPECT_EQ(infra::request_rebuild(tx, "read_models", false, false),
              infra::RebuildRequest::running);
  };
  const auto r = rebuild(url_, "read_models", o);
  EXPECT_TRUE(looked);
  EXPECT_TRUE(r.switched);
  const auto s = status();
  EXPECT_EQ(s.state, "live");
  EXPECT_EQ(s.live_version, 2);
  EXPECT_FALSE(s.building_version);
  EXPECT_FALSE(s.rebuild_running);
  EXPECT_EQ(s.lag_events, 0);
  EXPECT_EQ(s.lag_seconds, 0);
  EXPECT_EQ(s.position, head());
  EXPECT_THROW(rebuild(url_, "nope", options()), UnknownProjection);
  EXPECT_EQ(projection_names(), std::vector<std::string>{"read_models"});
}

TEST_F(RebuildTest, StatusShowsTheLag) {
  storefront(12, 50);
  testing::Scenario more(*service_, 13);
  more.setup(1, 1);  // events the projector has not seen
  const auto s = status();
  EXPECT_GT(s.lag_events, 2);
  EXPECT_GE(s.lag_seconds, 0);
  EXPECT_LT(s.position, head());
}

TEST_F(RebuildTest, RefusedWhileTheLiveVersionIsProjectedFromKafka) {
  storefront(3, 30);
  query(
      "INSERT INTO rm_kafka_offsets (consumer_group, topic, partition, next_offset) "
      "VALUES ('shop-projector', 'shop.order', 0, 5)");
  try {
    rebuild(url_, "read_models", options());
    ADD_FAILURE() << "rebuilt";
  } catch (const RebuildRefused& e) {
    EXPECT_EQ(e.reason, RebuildRefused::Reason::kafka);
    EXPECT_NE(std::string(e.what()).find("Kafka"), std::string::npos);
  }
  const auto s = status();
  EXPECT_EQ(s.state, "live");
  EXPECT_TRUE(s.kafka);
  ASSERT_TRUE(s.last_error);
  EXPECT_NE(s.last_error->find("Kafka"), std::string::npos);
  EXPECT_EQ(version_schemas(), std::vector<std::string>{"rm_v1"});
  pqxx::connection c(url_);
  pqxx::work tx(c);
  EXPECT_EQ(infra::request_rebuild(tx, "read_models", false, false), infra::RebuildRequest::kafka);
}

// --- the query API across a switch --------------------------------------------------------------

// A product page cached at the live version's checkpoint is not served once a new version is
// live at the very same checkpoint: the cache watches the version too. The query API's prepared
// statements keep working across the switch.
TEST_F(RebuildTest, QueryApiCacheAndStatementsFollowTheSwitch) {
  storefront(14, 40);
  const auto id = std::string(
      query("SELECT id::text FROM rm_products WHERE NOT discontinued ORDER BY id LIMIT 1")[0][0]
          .c_str());
  query("UPDATE rm_v1.rm_products SET name = 'Planted name' WHERE id = '" + id + "'");
  query::QueryApp app(query_options(), clock_);
  const http::Handler handler = [&](http::Request& req) { return app.handle(req); };
  const auto before = call(handler, app.server_options(), "GET", "/api/products/" + id);
  ASSERT_EQ(before.status, 200) << before.body;
  EXPECT_EQ(json::get_string(before.doc, "name"), "Planted name");
  const auto checkpoint = checkpoint_text();

  const auto r = rebuild(url_, "read_models", options());
  ASSERT_TRUE(r.switched);
  EXPECT_EQ(checkpoint_text(), checkpoint);  // nothing new: the same checkpoint

  const auto after = call(handler, app.server_options(), "GET", "/api/products/" + id);
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_NE(json::get_string(after.doc, "name"), "Planted name");
  EXPECT_EQ(after.header("X-Position"), before.header("X-Position"));
  const auto list = call(handler, app.server_options(), "GET", "/api/products?limit=100");
  EXPECT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.body.find("Planted name"), std::string::npos);
}

// --- HTTP ---------------------------------------------------------------------------------------

TEST_F(RebuildTest, HttpEndpoints) {
  storefront(15, 60);
  infra::Authenticator auth(*jwt_, clock_);
  command::CommandApi api(*service_, auth, {"webhook secret", "USD", pool_.get()});
  const http::Handler commands = [&](http::Request& req) { return api.handle(req); };
  const http::ServerOptions server;
  query::QueryApp app(query_options(), clock_);
  const http::Handler reads = [&](http::Request& req) { return app.handle(req); };

  const auto admin = token(new_uuid(), {"admin"});
  const auto staff = token(new_uuid(), {"staff"});
  const auto customer = token(new_uuid(), {"customer"});
  const std::string rebuild_path = "/api/admin/projections/read_models/rebuild";

  EXPECT_EQ(call(commands, server, "POST", rebuild_path).status, 401);
  EXPECT_EQ(call(commands, server, "POST", rebuild_path, "not a token").status, 401);
  EXPECT_EQ(call(commands, server, "POST", rebuild_path, customer).status, 403);
  EXPECT_EQ(call(commands, server, "POST", rebuild_path, staff).status, 403);
  const auto unknown = call(commands, server, "POST", "/api/admin/projections/nope/rebuild", admin);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.error_code(), "not_found");
  EXPECT_EQ(call(commands, server, "POST", rebuild_path, admin, R"({"verify":"yes"})").status, 400);
  EXPECT_EQ(call(commands, server, "POST", rebuild_path, admin, "{not json").status, 400);

  EXPECT_EQ(call(reads, app.server_options(), "GET", "/api/admin/projections").status, 401);
  EXPECT_EQ(call(reads, app.server_options(), "GET", "/api/admin/projections", customer).status,
            403);
  EXPECT_EQ(call(reads, app.server_options(), "GET", "/api/admin/projections/nope", admin).status,
            404);

  const auto accepted = call(commands, server, "POST", rebuild_path, admin, R"({"verify":true})");
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  EXPECT_EQ(accepted.header("Location"), "/api/admin/projections/read_models");
  EXPECT_EQ(json::get_string(accepted.doc, "state"), "requested");
  EXPECT_TRUE(json::get_bool(accepted.doc, "verify"));
  const auto again = call(commands, server, "POST", rebuild_path, admin);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.error_code(), "rebuild_running");

  auto listed = call(reads, app.server_options(), "GET", "/api/admin/projections", staff);
  ASSERT_EQ(listed.status, 200) << listed.body;
  ASSERT_EQ(listed.doc["items"].Size(), 1u);
  const auto& item = listed.doc["items"][0];
  EXPECT_EQ(json::get_string(item, "name"), "read_models");
  EXPECT_EQ(json::get_string(item, "state"), "requested");
  EXPECT_EQ(json::get_int(item, "live_version"), 1);
  EXPECT_EQ(json::get_int(item, "position"), head());
  EXPECT_EQ(json::get_int(item, "lag_events"), 0);
  EXPECT_TRUE(json::member(item, "requested_at")->IsString());
  EXPECT_EQ(listed.header("Cache-Control"), "private, no-store");

  // A projector process takes the request up.
  std::atomic<bool> stop{false};
  const auto done = run_requested_rebuilds(url_, stop);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0].switched);
  ASSERT_TRUE(done[0].verify);  // asked for with verify
  EXPECT_TRUE(done[0].verify->equal());
  EXPECT_TRUE(run_requested_rebuilds(url_, stop).empty());

  const auto one =
      call(reads, app.server_options(), "GET", "/api/admin/projections/read_models", admin);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(json::get_string(one.doc, "state"), "live");
  EXPECT_EQ(json::get_int(one.doc, "live_version"), 2);
  EXPECT_TRUE(json::member(one.doc, "rebuild")->IsNull());
  EXPECT_TRUE(json::member(one.doc, "last_rebuild_at")->IsString());

  // From Kafka: refused.
  query(
      "INSERT INTO rm_kafka_offsets (consumer_group, topic, partition, next_offset) "
      "VALUES ('shop-projector', 'shop.order', 0, 5)");
  const auto kafka = call(commands, server, "POST", rebuild_path, admin);
  EXPECT_EQ(kafka.status, 409);
  EXPECT_EQ(kafka.error_code(), "projected_from_kafka");
}

}  // namespace
}  // namespace shop::projector
