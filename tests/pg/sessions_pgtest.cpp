// Sessions against a real PostgreSQL: refresh-token rotation, reuse detection, logout and
// logout everywhere in the command service, and over HTTP (both APIs in-process, with the
// projector): the access token of a revoked session gets 401 from the query API and the command
// API.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include "shop/command/http_api.h"
#include "shop/command/service.h"
#include "shop/infra/crypto.h"
#include "shop/infra/revocation.h"
#include "shop/projector/projector.h"
#include "shop/query/app.h"
#include "support/pg_fixture.h"

namespace shop {
namespace {

using namespace std::chrono_literals;
using command::CommandRejected;
using command::CommandService;
using command::Context;

const std::string kSecret(40, 'k');

class SessionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("sessions");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 16, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(kSecret, "shop");
    command::ServiceOptions o;
    o.on_revoked = [this](const std::string& id, const std::string&) {
      std::lock_guard lock(revoked_mutex_);
      told_revoked_.push_back(id);
    };
    service_ = std::make_unique<CommandService>(*store_, *jwt_, clock_, o);
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }
  static Context ctx() { return Context::make(std::nullopt); }
  std::string user(const std::string& email) {
    return service_->register_user(email, "a sound passphrase", "Ann", {"customer"}, ctx()).id;
  }
  std::int64_t count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    return tx.exec(sql)[0][0].as<std::int64_t>();
  }
  std::string refused(const std::function<void()>& f) {
    try {
      f();
    } catch (const CommandRejected& e) {
      return e.error.code;
    }
    return "accepted";
  }

  SystemClock clock_;
  std::string url_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<CommandService> service_;
  std::mutex revoked_mutex_;
  std::vector<std::string> told_revoked_;
};

TEST_F(SessionsTest, LoginStartsASessionAndTokensNameIt) {
  const auto id = user("ann@example.com");
  const auto t = service_->login("ann@example.com", "a sound passphrase");
  EXPECT_TRUE(is_uuid(t.session_id));
  EXPECT_GT(t.position, 0);
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
  const auto access = jwt_->verify(t.access, now);
  const auto refresh = jwt_->verify(t.refresh, now);
  ASSERT_TRUE(access && refresh);
  EXPECT_EQ(access->type, "access");
  EXPECT_EQ(refresh->type, "refresh");
  EXPECT_EQ(access->session_id, t.session_id);
  EXPECT_EQ(refresh->session_id, t.session_id);
  EXPECT_EQ(access->user_id, id);
  EXPECT_NE(access->token_id, refresh->token_id);
  EXPECT_NEAR(access->expires_at - now, 900, 5);
  EXPECT_NEAR(refresh->expires_at - now, 14 * 24 * 3600, 5);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'SessionStarted' AND stream_id = "
                  "'session-" +
                  t.session_id + "'"),
            1);
}

TEST_F(SessionsTest, RefreshRotatesAndASpentTokenRevokesTheFamily) {
  user("ann@example.com");
  const auto first = service_->login("ann@example.com", "a sound passphrase");
  const auto second = service_->refresh(first.refresh, ctx());
  EXPECT_EQ(second.session_id, first.session_id);
  EXPECT_NE(second.refresh, first.refresh);
  const auto third = service_->refresh(second.refresh, ctx());
  EXPECT_EQ(third.session_id, first.session_id);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'RefreshTokenRotated'"), 2);

  // The first token again: theft suspected, the whole family ends, the current token with it.
  EXPECT_EQ(refused([&] { service_->refresh(first.refresh, ctx()); }), "refresh_token_reused");
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'SessionRevoked' AND "
                  "data->>'reason' = 'reuse_detected'"),
            1);
  EXPECT_EQ(refused([&] { service_->refresh(third.refresh, ctx()); }), "invalid_token");
  EXPECT_EQ(told_revoked_, std::vector<std::string>{first.session_id});
  // Another session of the same user is untouched.
  const auto other = service_->login("ann@example.com", "a sound passphrase");
  EXPECT_NO_THROW(service_->refresh(other.refresh, ctx()));
}

TEST_F(SessionsTest, AnAccessTokenIsNotARefreshToken) {
  user("ann@example.com");
  const auto t = service_->login("ann@example.com", "a sound passphrase");
  EXPECT_EQ(refused([&] { service_->refresh(t.access, ctx()); }), "invalid_token");
  EXPECT_EQ(refused([&] { service_->logout(t.access, ctx()); }), "invalid_token");
  EXPECT_EQ(refused([&] { service_->refresh("garbage", ctx()); }), "invalid_token");
  const infra::JwtCodec other(std::string(40, 'o'), "shop");
  auto claims = *jwt_->verify(t.refresh, 0);
  EXPECT_EQ(refused([&] { service_->refresh(other.sign(claims), ctx()); }), "invalid_token");
  // Nothing was revoked by any of that.
  EXPECT_NO_THROW(service_->refresh(t.refresh, ctx()));
}

TEST_F(SessionsTest, LogoutEndsTheSessionOnce) {
  user("ann@example.com");
  const auto t = service_->login("ann@example.com", "a sound passphrase");
  const auto w = service_->logout(t.refresh, ctx());
  EXPECT_EQ(w.id, t.session_id);
  EXPECT_GT(w.position, t.position);
  EXPECT_NO_THROW(service_->logout(t.refresh, ctx()));  // again: nothing changes
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'SessionRevoked' AND "
                  "data->>'reason' = 'logout'"),
            1);
  EXPECT_EQ(refused([&] { service_->refresh(t.refresh, ctx()); }), "invalid_token");
  EXPECT_EQ(told_revoked_, std::vector<std::string>{t.session_id});
}

TEST_F(SessionsTest, LogoutAllEndsEverySessionOfTheUserOnly) {
  const auto ann = user("ann@example.com");
  user("bob@example.com");
  std::vector<command::Tokens> anns;
  for (int i = 0; i < 3; ++i)
    anns.push_back(service_->login("ann@example.com", "a sound passphrase"));
  service_->logout(anns[0].refresh, ctx());
  const auto bob = service_->login("bob@example.com", "a sound passphrase");

  std::int64_t revoked = -1;
  const auto w = service_->logout_all(ann, Context::make(ann), &revoked);
  EXPECT_EQ(revoked, 2);  // the one already logged out is not ended twice
  EXPECT_GT(w.position, 0);
  for (const auto& t : anns) {
    EXPECT_EQ(refused([&] { service_->refresh(t.refresh, ctx()); }), "invalid_token");
  }
  EXPECT_NO_THROW(service_->refresh(bob.refresh, ctx()));
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'SessionRevoked' AND "
                  "data->>'reason' = 'logout_all'"),
            2);
  // Again: nothing left to end.
  EXPECT_NO_THROW(service_->logout_all(ann, Context::make(ann), &revoked));
  EXPECT_EQ(revoked, 0);
  // A session started after it works.
  const auto later = service_->login("ann@example.com", "a sound passphrase");
  EXPECT_NO_THROW(service_->refresh(later.refresh, ctx()));
}

TEST_F(SessionsTest, ConcurrentRefreshesWithOneTokenHaveOneWinnerAndEndTheFamily) {
  user("ann@example.com");
  for (int round = 0; round < 3; ++round) {
    const auto t = service_->login("ann@example.com", "a sound passphrase");
    std::atomic<int> won{0}, reused{0}, invalid{0};
    std::vector<std::string> winners(8);
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        try {
          winners[i] = service_->refresh(t.refresh, ctx()).refresh;
          ++won;
        } catch (const CommandRejected& e) {
          if (e.error.code == "refresh_token_reused") ++reused;
          if (e.error.code == "invalid_token") ++invalid;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(won.load(), 1);
    EXPECT_EQ(reused.load(), 1);  // the first loser detects the reuse; the rest find it revoked
    EXPECT_EQ(invalid.load(), 6);
    EXPECT_EQ(count("SELECT count(*) FROM events WHERE stream_id = 'session-" + t.session_id +
                    "' AND type = 'SessionRevoked'"),
              1);
    for (const auto& r : winners) {
      if (!r.empty()) {
        EXPECT_EQ(refused([&] { service_->refresh(r, ctx()); }), "invalid_token");
      }
    }
  }
}

// ----------------------------------------------------------------------------------- over HTTP
class SessionsHttpTest : public SessionsTest {
 protected:
  void SetUp() override {
    SessionsTest::SetUp();
    command_ = std::make_unique<command::CommandApp>(
        infra::Config::from_map({{"DATABASE_URL", url_},
                                 {"JWT_SECRET", kSecret},
                                 {"PAYMENT_WEBHOOK_SECRET", std::string(40, 'w')},
                                 {"COMMAND_API_THREADS", "2"},
                                 {"REVOCATION_REFRESH_MS", "0"}}));
    query::Options o;
    o.database_url = url_;
    o.jwt_secret = kSecret;
    o.threads = 2;
    o.checkpoint_refresh = 0ms;
    o.revocation_refresh = 0ms;
    query_ = std::make_unique<query::QueryApp>(std::move(o), clock_);
    projector_ = std::make_unique<projector::Projector>(url_, projector::Options{});
  }
  void TearDown() override {
    projector_.reset();
    query_.reset();
    command_.reset();
    SessionsTest::TearDown();
  }

  struct Reply {
    int status = 0;
    json::Document doc;
  };
  Reply call(bool to_query, const std::string& method, const std::string& target,
             const std::string& bearer, const std::string& body = {}) {
    http::Request req;
    req.method = method;
    req.target = target;
    if (!bearer.empty()) req.headers.emplace_back("Authorization", "Bearer " + bearer);
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = body;
    }
    http::Response res;
    if (to_query) {
      auto* app = query_.get();
      res = http::dispatch([app](http::Request& r) { return app->handle(r); }, req,
                           app->server_options());
    } else {
      auto* app = command_.get();
      res = http::dispatch([app](http::Request& r) { return app->handle(r); }, req,
                           app->server_options());
    }
    Reply out;
    out.status = res.status;
    if (!res.body.empty()) {
      EXPECT_EQ(json::parse(res.body, out.doc), "") << res.body;
    }
    return out;
  }
  // Projects up to the last stored event. The store's horizon is the cluster's: a transaction of
  // another database (tests running in parallel) can keep new events out of the projector's
  // reach for a moment, so "nothing to apply" is not "caught up".
  void catch_up() {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    const auto last = tx.exec(
        "SELECT tx_id::text, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1");
    if (last.empty()) return;
    const std::string last_tx = last[0][0].c_str();
    const auto last_position = last[0][1].as<std::int64_t>();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      while (projector_->run_once() > 0) {
      }
      const auto cp = projector_->checkpoint();
      if (cp.tx == last_tx && cp.position == last_position) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the projector never caught up";
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  static std::string field(const Reply& r, const char* name) {
    return r.doc.IsObject() ? json::get_string(r.doc, name) : std::string();
  }
  static std::string error_code(const Reply& r) {
    const auto* e = r.doc.IsObject() ? json::member(r.doc, "error") : nullptr;
    return e && e->IsObject() ? json::get_string(*e, "code") : std::string();
  }

  std::unique_ptr<command::CommandApp> command_;
  std::unique_ptr<query::QueryApp> query_;
  std::unique_ptr<projector::Projector> projector_;
};

TEST_F(SessionsHttpTest, ARevokedAccessTokenGets401FromBothApis) {
  const auto reg =
      call(false, "POST", "/api/auth/register", "",
           R"({"email":"ann@example.com","password":"a sound passphrase","name":"Ann"})");
  ASSERT_EQ(reg.status, 201);
  const std::string access = field(reg, "access");
  const std::string refresh = field(reg, "refresh");
  ASSERT_FALSE(access.empty());
  ASSERT_FALSE(refresh.empty());
  catch_up();
  EXPECT_EQ(call(true, "GET", "/api/users/me", access).status, 200);
  // A refresh token is no bearer token.
  EXPECT_EQ(call(true, "GET", "/api/users/me", refresh).status, 401);

  const auto out = call(false, "POST", "/api/auth/logout", "", R"({"refresh":")" + refresh + "\"}");
  ASSERT_EQ(out.status, 200);
  // The command API knows at once (its own revocation); the query API once projected.
  EXPECT_EQ(call(false, "POST", "/api/auth/logout-all", access).status, 401);
  catch_up();
  const auto q = call(true, "GET", "/api/users/me", access);
  EXPECT_EQ(q.status, 401);
  EXPECT_EQ(error_code(q), "invalid_token");
  EXPECT_EQ(call(true, "GET", "/api/cart", access).status, 401);
  EXPECT_EQ(
      call(false, "POST", "/api/auth/refresh", "", R"({"refresh":")" + refresh + "\"}").status,
      401);
}

TEST_F(SessionsHttpTest, LogoutAllAndReuseOverHttp) {
  ASSERT_EQ(call(false, "POST", "/api/auth/register", "",
                 R"({"email":"ann@example.com","password":"a sound passphrase","name":"Ann"})")
                .status,
            201);
  const std::string login = R"({"email":"ann@example.com","password":"a sound passphrase"})";
  const auto a = call(false, "POST", "/api/auth/login", "", login);
  const auto b = call(false, "POST", "/api/auth/login", "", login);
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(json::get_int(a.doc, "expires_in", 0), 900);

  // Rotation, then the spent token again: 401 and the new pair is dead too.
  const auto rotated =
      call(false, "POST", "/api/auth/refresh", "", R"({"refresh":")" + field(a, "refresh") + "\"}");
  ASSERT_EQ(rotated.status, 200);
  const auto reuse =
      call(false, "POST", "/api/auth/refresh", "", R"({"refresh":")" + field(a, "refresh") + "\"}");
  EXPECT_EQ(reuse.status, 401);
  EXPECT_EQ(error_code(reuse), "refresh_token_reused");
  catch_up();
  EXPECT_EQ(call(true, "GET", "/api/users/me", field(rotated, "access")).status, 401);
  EXPECT_EQ(call(true, "GET", "/api/users/me", field(b, "access")).status, 200);

  // Everywhere: b's tokens stop working in both APIs.
  const auto all = call(false, "POST", "/api/auth/logout-all", field(b, "access"));
  ASSERT_EQ(all.status, 200);
  // b's and the registration's (a's ended already).
  EXPECT_EQ(json::get_int(all.doc, "revoked_sessions", -1), 2);
  EXPECT_EQ(call(false, "POST", "/api/auth/logout-all", field(b, "access")).status, 401);
  catch_up();
  EXPECT_EQ(call(true, "GET", "/api/users/me", field(b, "access")).status, 401);

  // Bad bodies are 4xx.
  EXPECT_EQ(call(false, "POST", "/api/auth/refresh", "", R"({"refresh":""})").status, 400);
  EXPECT_EQ(call(false, "POST", "/api/auth/refresh", "", R"({"refresh":"x.y.z"})").status, 401);
  EXPECT_EQ(call(false, "POST", "/api/auth/logout", "", "{").status, 400);
  EXPECT_EQ(call(false, "POST", "/api/auth/logout-all", "").status, 401);
}

TEST_F(SessionsHttpTest, TheRevocationCacheReadsTheTable) {
  user("ann@example.com");
  const auto t = service_->login("ann@example.com", "a sound passphrase");
  infra::RevokedSessionCache cache(url_, clock_, {.max_age = 0ms});
  catch_up();
  EXPECT_FALSE(cache.is_revoked(t.session_id));
  service_->logout(t.refresh, ctx());
  EXPECT_FALSE(cache.is_revoked(t.session_id));  // not projected yet
  catch_up();
  EXPECT_TRUE(cache.is_revoked(t.session_id));
  EXPECT_FALSE(cache.is_revoked(new_uuid()));
  // A revocation of this process counts at once.
  const auto other = new_uuid();
  cache.add(other, format_time(clock_.now() + std::chrono::hours(1)));
  EXPECT_TRUE(cache.is_revoked(other));
}

}  // namespace
}  // namespace shop
