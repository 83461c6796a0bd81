// Accounts against a real PostgreSQL, through the HTTP handlers of both APIs (in-process, with the
// projector): profiles read and changed, one mobile number per account (claimed, released,
// claimed again), password changes that end the other sessions, roles set by admins (granted
// roles reach the next refreshed token, a role taken away ends the user's sessions), the admin
// list of accounts page by page, and bodies that try to set what they must not.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "shop/command/http_api.h"
#include "shop/command/service.h"
#include "shop/infra/crypto.h"
#include "shop/projector/projector.h"
#include "shop/query/app.h"
#include "support/pg_fixture.h"

namespace shop {
namespace {

using namespace std::chrono_literals;
using command::CommandRejected;
using command::Context;

const std::string kSecret(40, 'k');
const std::string kPassword = "a sound passphrase";

class UsersHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = testing::create_test_database("users");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 8, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    jwt_ = std::make_unique<infra::JwtCodec>(kSecret, "shop");
    service_ = std::make_unique<command::CommandService>(*store_, *jwt_, clock_,
                                                         command::ServiceOptions{});
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
    service_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  struct Reply {
    int status = 0;
    json::Document doc;
    std::string body;
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
    out.body = res.body;
    if (!res.body.empty()) {
      EXPECT_EQ(json::parse(res.body, out.doc), "") << res.body;
    }
    return out;
  }
  Reply command(const std::string& method, const std::string& target, const std::string& bearer,
                const std::string& body = {}) {
    return call(false, method, target, bearer, body);
  }
  Reply query(const std::string& target, const std::string& bearer) {
    return call(true, "GET", target, bearer);
  }

  // Projects up to the last stored event (the store's horizon is the cluster's: "nothing to
  // apply" is not "caught up" while another test's transaction holds it back).
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

  std::int64_t count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    return tx.exec(sql)[0][0].as<std::int64_t>();
  }
  std::optional<std::string> text(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    const auto r = tx.exec(sql);
    if (r.empty() || r[0][0].is_null()) return std::nullopt;
    return std::string(r[0][0].c_str());
  }

  static std::string field(const Reply& r, const char* name) {
    const auto* v = r.doc.IsObject() ? json::member(r.doc, name) : nullptr;
    return v && v->IsString() ? std::string(v->GetString()) : std::string();
  }
  static bool is_null(const Reply& r, const char* name) {
    const auto* v = r.doc.IsObject() ? json::member(r.doc, name) : nullptr;
    return v && v->IsNull();
  }
  static std::int64_t number(const Reply& r, const char* name) {
    return r.doc.IsObject() ? json::get_int(r.doc, name, -1) : -1;
  }
  static std::vector<std::string> strings(const json::Value& v, const char* name) {
    std::vector<std::string> out;
    const auto* a = v.IsObject() ? json::member(v, name) : nullptr;
    if (a && a->IsArray()) {
      for (const auto& item : a->GetArray()) {
        if (item.IsString()) out.emplace_back(item.GetString());
      }
    }
    return out;
  }
  static std::string error_code(const Reply& r) {
    const auto* e = r.doc.IsObject() ? json::member(r.doc, "error") : nullptr;
    return e && e->IsObject() ? json::get_string(*e, "code") : std::string();
  }

  struct Account {
    std::string id, access, refresh, session_id;
  };
  Account account_of(const Reply& r, std::string id = {}) {
    EXPECT_TRUE(r.status == 200 || r.status == 201) << r.status << " " << r.body;
    return {id.empty() ? field(r, "user_id") : id, field(r, "access"), field(r, "refresh"),
            field(r, "session_id")};
  }
  Account register_customer(const std::string& email, const std::string& name = "Ann") {
    return account_of(command("POST", "/api/auth/register", "",
                              R"({"email":")" + email + R"(","password":")" + kPassword +
                                  R"(","name":")" + name + R"("})"));
  }
  Reply login(const std::string& email, const std::string& password = kPassword) {
    return command("POST", "/api/auth/login", "",
                   R"({"email":")" + email + R"(","password":")" + password + R"("})");
  }
  // An account with other roles, made as shopctl create-admin makes one, then signed in.
  Account make_account(const std::string& email, std::vector<std::string> roles) {
    const auto id =
        service_->register_user(email, kPassword, "Staff", roles, Context::make(std::nullopt)).id;
    return account_of(login(email), id);
  }
  Reply refresh(const std::string& refresh_token) {
    return command("POST", "/api/auth/refresh", "", R"({"refresh":")" + refresh_token + "\"}");
  }

  SystemClock clock_;
  std::string url_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<infra::JwtCodec> jwt_;
  std::unique_ptr<command::CommandService> service_;
  std::unique_ptr<command::CommandApp> command_;
  std::unique_ptr<query::QueryApp> query_;
  std::unique_ptr<projector::Projector> projector_;
};

// ------------------------------------------------------------------------------------- profile

TEST_F(UsersHttpTest, ProfileIsReadAndChanged) {
  const auto ann = register_customer("Ann@Example.com");
  catch_up();
  auto me = query("/api/users/me", ann.access);
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(field(me, "user_id"), ann.id);
  EXPECT_EQ(field(me, "id"), ann.id);
  EXPECT_EQ(field(me, "email"), "ann@example.com");
  EXPECT_EQ(field(me, "name"), "Ann");
  EXPECT_TRUE(is_null(me, "phone"));
  EXPECT_EQ(strings(me.doc, "roles"), std::vector<std::string>{"customer"});
  EXPECT_TRUE(parse_time(field(me, "created_at")).has_value()) << me.body;

  const auto changed = command("PATCH", "/api/users/me", ann.access,
                               R"({"name":"Ann Smith","phone":"+49 170 1234-5678"})");
  ASSERT_EQ(changed.status, 200) << changed.body;
  EXPECT_EQ(field(changed, "id"), ann.id);
  EXPECT_EQ(number(changed, "version"), 2);
  EXPECT_GT(number(changed, "position"), 0);
  catch_up();
  me = query("/api/users/me", ann.access);
  EXPECT_EQ(field(me, "name"), "Ann Smith");
  EXPECT_EQ(field(me, "phone"), "+4917012345678");
  EXPECT_EQ(field(me, "email"), "ann@example.com");

  // The same values again: nothing to change, no event.
  const auto again = command("PATCH", "/api/users/me", ann.access,
                             R"({"name":"Ann Smith","phone":"+4917012345678"})");
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(number(again, "version"), 2);
  EXPECT_EQ(number(again, "position"), number(changed, "position"));

  // Only the name: the number stays. Then the number removed.
  ASSERT_EQ(command("PATCH", "/api/users/me", ann.access, R"({"name":"Ann B."})").status, 200);
  const auto removed = command("PATCH", "/api/users/me", ann.access, R"({"phone":null})");
  ASSERT_EQ(removed.status, 200);
  EXPECT_EQ(number(removed, "version"), 4);
  catch_up();
  me = query("/api/users/me", ann.access);
  EXPECT_EQ(field(me, "name"), "Ann B.");
  EXPECT_TRUE(is_null(me, "phone"));
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'UserProfileChanged' AND stream_id = "
                  "'user-" +
                  ann.id + "'"),
            3);
  EXPECT_EQ(
      text("SELECT data::text FROM events WHERE type = 'UserProfileChanged' ORDER BY "
           "position DESC LIMIT 1"),
      R"({"name": null, "phone": null, "user_id": ")" + ann.id + R"(", "phone_removed": true})");

  // Bad input is a 4xx.
  for (const char* body :
       {R"({"phone":"0170 12345678"})", R"({"phone":"+1 (415) 555-0123"})", R"({"phone":"+12"})",
        R"({"phone":"+0 170 12345678"})", R"({"phone":"+49 170 1234567890123"})", R"({"name":""})",
        R"({})", R"({"name":7})", R"([])", R"("x")", "{"}) {
    const auto bad = command("PATCH", "/api/users/me", ann.access, body);
    EXPECT_EQ(bad.status, 400) << body << ": " << bad.body;
  }
  EXPECT_EQ(command("PATCH", "/api/users/me", "", R"({"name":"X"})").status, 401);
  EXPECT_EQ(command("PATCH", "/api/users/me", ann.refresh, R"({"name":"X"})").status, 401);
  EXPECT_EQ(command("GET", "/api/users/me", ann.access).status, 405);
}

TEST_F(UsersHttpTest, APhoneNumberBelongsToOneAccount) {
  const auto ann = register_customer("ann@example.com");
  const auto bob = register_customer("bob@example.com", "Bob");
  const auto claim_of = [&](const std::string& number) {
    return text("SELECT owner FROM unique_claims WHERE scope = 'phone' AND value = '" + number +
                "'");
  };
  ASSERT_EQ(command("PATCH", "/api/users/me", ann.access, R"({"phone":"+4917011111111"})").status,
            200);
  EXPECT_EQ(claim_of("+4917011111111"), ann.id);

  // The same number in another spelling is the same number.
  const auto taken = command("PATCH", "/api/users/me", bob.access,
                             R"({"name":"Bobby","phone":"+49 170 1111-1111"})");
  EXPECT_EQ(taken.status, 409);
  EXPECT_EQ(error_code(taken), "phone_taken");
  // Nothing of the refused change happened.
  catch_up();
  EXPECT_EQ(field(query("/api/users/me", bob.access), "name"), "Bob");
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE stream_id = 'user-" + bob.id + "'"), 1);

  // Ann moves to another number: the first is free again, and Bob can have it.
  ASSERT_EQ(command("PATCH", "/api/users/me", ann.access, R"({"phone":"+4917022222222"})").status,
            200);
  EXPECT_EQ(claim_of("+4917011111111"), std::nullopt);
  EXPECT_EQ(claim_of("+4917022222222"), ann.id);
  ASSERT_EQ(command("PATCH", "/api/users/me", bob.access, R"({"phone":"+4917011111111"})").status,
            200);
  EXPECT_EQ(claim_of("+4917011111111"), bob.id);

  // Ann removes hers: free again too.
  ASSERT_EQ(command("PATCH", "/api/users/me", ann.access, R"({"phone":null})").status, 200);
  EXPECT_EQ(claim_of("+4917022222222"), std::nullopt);
  ASSERT_EQ(command("PATCH", "/api/users/me", bob.access, R"({"phone":"+4917022222222"})").status,
            200);
  EXPECT_EQ(claim_of("+4917022222222"), bob.id);
  EXPECT_EQ(claim_of("+4917011111111"), std::nullopt);
  EXPECT_EQ(count("SELECT count(*) FROM unique_claims WHERE scope = 'phone'"), 1);
  catch_up();
  EXPECT_EQ(field(query("/api/users/me", bob.access), "phone"), "+4917022222222");
  EXPECT_TRUE(is_null(query("/api/users/me", ann.access), "phone"));

  // Eight accounts ask for one number at once: exactly one gets it.
  std::vector<std::string> ids;
  const std::string hash = infra::hash_password(kPassword);
  for (int i = 0; i < 8; ++i) {
    ids.push_back(
        service_
            ->register_user_with_password_hash("racer" + std::to_string(i) + "@example.com", hash,
                                               "Racer", {"customer"}, Context::make(std::nullopt))
            .id);
  }
  std::atomic<int> won{0}, lost{0};
  std::vector<std::thread> threads;
  for (const auto& id : ids) {
    threads.emplace_back([&, id] {
      try {
        service_->change_profile(id, {.phone = "+4917033333333"}, Context::make(id));
        ++won;
      } catch (const CommandRejected& e) {
        if (e.error.code == "phone_taken") ++lost;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), 7);
  const auto owner = claim_of("+4917033333333");
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'UserProfileChanged' AND "
                  "data->>'phone' = '+4917033333333'"),
            1);
  EXPECT_EQ(text("SELECT data->>'user_id' FROM events WHERE type = 'UserProfileChanged' AND "
                 "data->>'phone' = '+4917033333333'"),
            owner);
}

// ------------------------------------------------------------------------------------ password

TEST_F(UsersHttpTest, PasswordChangeEndsEveryOtherSession) {
  const auto ann = register_customer("ann@example.com");
  const auto b = account_of(login("ann@example.com"), ann.id);
  const auto c = account_of(login("ann@example.com"), ann.id);
  const auto bob = register_customer("bob@example.com", "Bob");
  catch_up();
  const std::string old_hash =
      *text("SELECT password_hash FROM user_credentials WHERE user_id = '" + ann.id + "'");

  // The token is fine, the password is not: 403, not 401.
  const auto wrong =
      command("POST", "/api/users/me/password", ann.access,
              R"({"current_password":"not my password","new_password":"a brand new passphrase"})");
  EXPECT_EQ(wrong.status, 403) << wrong.body;
  EXPECT_EQ(error_code(wrong), "wrong_password");
  // Bob's password is no key to Ann's account either.
  EXPECT_EQ(command("POST", "/api/users/me/password", bob.access,
                    R"({"current_password":"x","new_password":"a brand new passphrase"})")
                .status,
            403);

  for (const char* weak : {"short", "ann@example.com", "password123", "ANN"}) {
    const auto r = command("POST", "/api/users/me/password", ann.access,
                           std::string(R"({"current_password":")") + kPassword +
                               R"(","new_password":")" + weak + R"("})");
    EXPECT_EQ(r.status, 400) << weak << ": " << r.body;
    EXPECT_EQ(error_code(r), "weak_password") << weak;
  }
  // Bodies: mass assignment and missing fields.
  EXPECT_EQ(command("POST", "/api/users/me/password", ann.access,
                    std::string(R"({"current_password":")") + kPassword +
                        R"(","new_password":"a brand new passphrase","user_id":")" + bob.id + "\"}")
                .status,
            400);
  EXPECT_EQ(command("POST", "/api/users/me/password", ann.access, R"({"new_password":"x"})").status,
            400);
  EXPECT_EQ(command("POST", "/api/users/me/password", "", R"({})").status, 401);
  // None of that changed anything.
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'UserPasswordChanged'"), 0);
  EXPECT_EQ(text("SELECT password_hash FROM user_credentials WHERE user_id = '" + ann.id + "'"),
            old_hash);

  // From session b: the registration's session and c end, b stays.
  const auto changed = command("POST", "/api/users/me/password", b.access,
                               std::string(R"({"current_password":")") + kPassword +
                                   R"(","new_password":"a brand new passphrase"})");
  ASSERT_EQ(changed.status, 200) << changed.body;
  EXPECT_EQ(number(changed, "revoked_sessions"), 2);
  EXPECT_GT(number(changed, "position"), 0);

  const auto new_hash =
      text("SELECT password_hash FROM user_credentials WHERE user_id = '" + ann.id + "'");
  ASSERT_TRUE(new_hash.has_value());
  EXPECT_NE(*new_hash, old_hash);
  EXPECT_TRUE(new_hash->starts_with("$argon2id$"));
  // The event holds no secret.
  EXPECT_EQ(text("SELECT data::text FROM events WHERE type = 'UserPasswordChanged'"),
            R"({"user_id": ")" + ann.id + R"("})");
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'SessionRevoked' AND "
                  "data->>'reason' = 'password_changed'"),
            2);
  // One append: the change and the revocations share a transaction.
  EXPECT_EQ(count("SELECT count(DISTINCT tx_id) FROM events WHERE type IN "
                  "('UserPasswordChanged', 'SessionRevoked')"),
            1);

  // The old password no longer signs in; the new one does.
  EXPECT_EQ(login("ann@example.com").status, 401);
  EXPECT_EQ(login("ann@example.com", "a brand new passphrase").status, 200);

  // The other sessions' access tokens: 401 from the command API at once, from the query API once
  // projected; their refresh tokens too.
  for (const auto* other : {&ann, &c}) {
    EXPECT_EQ(command("PATCH", "/api/users/me", other->access, R"({"name":"X"})").status, 401);
  }
  catch_up();
  for (const auto* other : {&ann, &c}) {
    EXPECT_EQ(query("/api/users/me", other->access).status, 401);
    EXPECT_EQ(refresh(other->refresh).status, 401);
  }
  // The session it was changed in goes on, in both APIs.
  EXPECT_EQ(query("/api/users/me", b.access).status, 200);
  EXPECT_EQ(command("PATCH", "/api/users/me", b.access, R"({"name":"Ann"})").status, 200);
  EXPECT_EQ(refresh(b.refresh).status, 200);
  // Bob's session was none of this.
  EXPECT_EQ(query("/api/users/me", bob.access).status, 200);

  // The old password is no longer the current one.
  EXPECT_EQ(command("POST", "/api/users/me/password", b.access,
                    std::string(R"({"current_password":")") + kPassword +
                        R"(","new_password":"yet another passphrase"})")
                .status,
            403);
}

// --------------------------------------------------------------------------------------- roles

TEST_F(UsersHttpTest, AdminsSetRoles) {
  const auto admin = make_account("root@shop.example", {"admin"});
  const auto staff = make_account("staff@shop.example", {"staff"});
  const auto bob = register_customer("bob@example.com", "Bob");
  const auto roles_path = "/api/admin/users/" + bob.id + "/roles";
  const std::string category = R"({"name":"Laptops"})";

  // Only admins.
  EXPECT_EQ(command("POST", roles_path, bob.access, R"({"roles":["customer","staff"]})").status,
            403);
  EXPECT_EQ(command("POST", roles_path, staff.access, R"({"roles":["customer","staff"]})").status,
            403);
  EXPECT_EQ(command("POST", roles_path, "", R"({"roles":["customer","staff"]})").status, 401);
  EXPECT_EQ(
      command("POST", "/api/admin/users/" + bob.id + "/roles", bob.access, R"({"roles":["admin"]})")
          .status,
      403);

  // Bob is a customer: no catalogue for him.
  EXPECT_EQ(command("POST", "/api/admin/categories", bob.access, category).status, 403);

  const auto granted =
      command("POST", roles_path, admin.access, R"({"roles":["staff","customer"]})");
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_EQ(field(granted, "id"), bob.id);
  EXPECT_EQ(strings(granted.doc, "roles"), (std::vector<std::string>{"customer", "staff"}));
  EXPECT_EQ(number(granted, "revoked_sessions"), 0);
  EXPECT_EQ(number(granted, "version"), 2);
  // Granting ends no session: Bob's token still works, with its old roles...
  EXPECT_EQ(command("POST", "/api/admin/categories", bob.access, category).status, 403);
  // ...until his next refresh, which carries the roles he has now.
  const auto refreshed = refresh(bob.refresh);
  ASSERT_EQ(refreshed.status, 200);
  const auto bob_staff = account_of(refreshed, bob.id);
  EXPECT_EQ(command("POST", "/api/admin/categories", bob_staff.access, category).status, 201);
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
  EXPECT_EQ(jwt_->verify(bob_staff.access, now)->roles,
            (std::vector<std::string>{"customer", "staff"}));
  catch_up();
  const auto shown = query("/api/admin/users/" + bob.id, admin.access);
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(strings(shown.doc, "roles"), (std::vector<std::string>{"customer", "staff"}));
  EXPECT_EQ(strings(query("/api/users/me", bob_staff.access).doc, "roles"),
            (std::vector<std::string>{"customer", "staff"}));

  // The same set again changes nothing.
  const auto same = command("POST", roles_path, admin.access, R"({"roles":["customer","staff"]})");
  ASSERT_EQ(same.status, 200);
  EXPECT_EQ(number(same, "version"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'UserRolesChanged'"), 1);

  // A second session of Bob's, then staff taken away: both sessions end at once.
  const auto bob2 = account_of(login("bob@example.com"), bob.id);
  const auto taken = command("POST", roles_path, admin.access, R"({"roles":["customer"]})");
  ASSERT_EQ(taken.status, 200) << taken.body;
  EXPECT_EQ(number(taken, "revoked_sessions"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'SessionRevoked' AND "
                  "data->>'reason' = 'roles_changed'"),
            2);
  EXPECT_EQ(count("SELECT count(DISTINCT tx_id) FROM events WHERE type = 'UserRolesChanged' OR "
                  "(type = 'SessionRevoked' AND data->>'reason' = 'roles_changed')"),
            2);  // the grant, and the removal with its revocations
  for (const auto* session : {&bob_staff, &bob2}) {
    EXPECT_EQ(command("POST", "/api/admin/categories", session->access, category).status, 401);
  }
  catch_up();
  for (const auto* session : {&bob_staff, &bob2}) {
    EXPECT_EQ(query("/api/users/me", session->access).status, 401);
    EXPECT_EQ(refresh(session->refresh).status, 401);
  }
  // Signed in again: a customer.
  const auto bob3 = account_of(login("bob@example.com"), bob.id);
  EXPECT_EQ(command("POST", "/api/admin/categories", bob3.access, category).status, 403);
  EXPECT_EQ(strings(query("/api/users/me", bob3.access).doc, "roles"),
            std::vector<std::string>{"customer"});
  // The admin's own session was none of this.
  EXPECT_EQ(query("/api/users/me", admin.access).status, 200);

  // An admin cannot drop their own admin role; another admin can.
  const auto own = command("POST", "/api/admin/users/" + admin.id + "/roles", admin.access,
                           R"({"roles":["staff"]})");
  EXPECT_EQ(own.status, 409);
  EXPECT_EQ(error_code(own), "cannot_remove_own_admin");
  EXPECT_EQ(command("POST", "/api/admin/users/" + admin.id + "/roles", admin.access,
                    R"({"roles":["admin","staff"]})")
                .status,
            200);
  const auto second = make_account("second@shop.example", {"admin"});
  const auto demoted = command("POST", "/api/admin/users/" + admin.id + "/roles", second.access,
                               R"({"roles":["staff"]})");
  EXPECT_EQ(demoted.status, 200) << demoted.body;
  EXPECT_EQ(number(demoted, "revoked_sessions"), 1);
  catch_up();
  EXPECT_EQ(query("/api/admin/users", admin.access).status, 401);  // that session ended

  // Unknown users and bad bodies.
  const auto unknown = command("POST", "/api/admin/users/" + new_uuid() + "/roles", second.access,
                               R"({"roles":["staff"]})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(error_code(unknown), "not_found");
  EXPECT_EQ(
      command("POST", "/api/admin/users/not-a-user/roles", second.access, R"({"roles":["staff"]})")
          .status,
      404);
  for (const char* body : {R"({"roles":[]})", R"({"roles":["root"]})", R"({"roles":["Admin"]})",
                           R"({"roles":["staff","staff"]})", R"({"roles":"staff"})", R"({})",
                           R"({"roles":["staff"],"user_id":"x"})", R"({"roles":[null]})"}) {
    const auto bad = command("POST", roles_path, second.access, body);
    EXPECT_EQ(bad.status, 400) << body << ": " << bad.body;
  }
}

// ----------------------------------------------------------------------------------- the list

TEST_F(UsersHttpTest, AdminsPageThroughEveryAccount) {
  const auto admin = make_account("root@shop.example", {"admin"});
  const auto staff = make_account("staff@shop.example", {"staff"});
  const std::string hash = infra::hash_password(kPassword);
  std::set<std::string> all = {admin.id, staff.id};
  std::set<std::string> staff_ids = {staff.id};
  for (int i = 0; i < 23; ++i) {
    const bool is_staff = i % 5 == 0;
    const auto id = service_
                        ->register_user_with_password_hash(
                            "user" + std::to_string(i) + "@example.com", hash,
                            (i % 2 ? "Zoe " : "Max ") + std::to_string(i),
                            is_staff ? std::vector<std::string>{"customer", "staff"}
                                     : std::vector<std::string>{"customer"},
                            Context::make(std::nullopt))
                        .id;
    all.insert(id);
    if (is_staff) staff_ids.insert(id);
  }
  catch_up();

  // Staff and customers may not look.
  EXPECT_EQ(query("/api/admin/users", staff.access).status, 403);
  EXPECT_EQ(query("/api/admin/users/" + admin.id, staff.access).status, 403);
  EXPECT_EQ(query("/api/admin/users", "").status, 401);

  // Every page in turn: every account once, oldest first.
  auto walk = [&](const std::string& filters, int limit) {
    std::vector<std::string> ids;
    std::string last_created;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      std::string target = "/api/admin/users?limit=" + std::to_string(limit) + filters;
      if (!cursor.empty()) target += "&cursor=" + cursor;
      const auto r = query(target, admin.access);
      EXPECT_EQ(r.status, 200) << target << ": " << r.body;
      if (r.status != 200) break;
      const auto& items = r.doc["items"];
      EXPECT_LE(items.Size(), static_cast<unsigned>(limit));
      for (const auto& item : items.GetArray()) {
        const std::string created = json::get_string(item, "created_at");
        EXPECT_LE(last_created, created);
        last_created = created;
        ids.push_back(json::get_string(item, "id"));
        EXPECT_TRUE(json::member(item, "email") && json::member(item, "name") &&
                    json::member(item, "phone") && json::member(item, "roles"));
      }
      if (r.doc["next_cursor"].IsNull()) return ids;
      cursor = r.doc["next_cursor"].GetString();
    }
    ADD_FAILURE() << "never reached the last page";
    return ids;
  };
  const auto listed = walk("", 4);
  EXPECT_EQ(listed.size(), all.size());
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), all);  // no duplicates, no gaps
  EXPECT_EQ(walk("", 100).size(), all.size());
  EXPECT_EQ(walk("", 1).size(), all.size());

  const auto listed_staff = walk("&role=staff", 2);
  EXPECT_EQ(std::set<std::string>(listed_staff.begin(), listed_staff.end()), staff_ids);
  EXPECT_EQ(listed_staff.size(), staff_ids.size());
  EXPECT_EQ(walk("&role=admin", 5), std::vector<std::string>{admin.id});

  // An e-mail address, in any case.
  const auto by_email = walk("&email=USER7%40Example.COM", 20);
  ASSERT_EQ(by_email.size(), 1u);
  EXPECT_EQ(query("/api/admin/users/" + by_email[0], admin.access).doc["email"].GetString(),
            std::string("user7@example.com"));
  EXPECT_TRUE(walk("&email=user7%40example", 20).empty());
  // q: the start of the e-mail address or of the name, in any case.
  EXPECT_EQ(walk("&q=user1", 3).size(), 11u);   // user1 and user10 to user19
  EXPECT_EQ(walk("&q=zoe", 3).size(), 11u);     // the odd ones of 0..22
  EXPECT_EQ(walk("&q=ZOE%201", 3).size(), 6u);  // Zoe 1, 11, 13, 15, 17, 19
  EXPECT_TRUE(walk("&q=%25", 3).empty());       // a wildcard is a character like any other
  EXPECT_TRUE(walk("&q=_", 3).empty());
  EXPECT_EQ(walk("&q=max&role=staff", 3).size(), 3u);  // Max 0, 10, 20 (staff: 0, 5, 10, 15, 20)

  // One account; with its phone once it has one.
  ASSERT_EQ(command("PATCH", "/api/users/me", staff.access, R"({"phone":"+4917012345678"})").status,
            200);
  catch_up();
  const auto one = query("/api/admin/users/" + staff.id, admin.access);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(field(one, "id"), staff.id);
  EXPECT_EQ(field(one, "email"), "staff@shop.example");
  EXPECT_EQ(field(one, "name"), "Staff");
  EXPECT_EQ(field(one, "phone"), "+4917012345678");
  EXPECT_EQ(strings(one.doc, "roles"), std::vector<std::string>{"staff"});
  EXPECT_FALSE(field(one, "created_at").empty());
  EXPECT_EQ(query("/api/admin/users/" + new_uuid(), admin.access).status, 404);
  EXPECT_EQ(query("/api/admin/users/nobody", admin.access).status, 404);

  // Bad parameters.
  for (const char* bad : {"?limit=0", "?limit=101", "?limit=x", "?limit=-1", "?role=root",
                          "?role=Admin", "?cursor=nonsense", "?cursor=AAAA"}) {
    const auto r = query(std::string("/api/admin/users") + bad, admin.access);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
}

// ------------------------------------------------------------------------- mass assignment

TEST_F(UsersHttpTest, NoBodySetsRolesIdsOrAnotherAccount) {
  const auto reg = command("POST", "/api/auth/register", "",
                           R"({"email":"eve@example.com","password":"a sound passphrase",)"
                           R"("name":"Eve","roles":["admin"]})");
  EXPECT_EQ(reg.status, 400);
  EXPECT_EQ(error_code(reg), "validation_failed");
  EXPECT_EQ(count("SELECT count(*) FROM events"), 0);

  const auto eve = register_customer("eve@example.com", "Eve");
  const auto ann = register_customer("ann@example.com", "Ann");
  for (const std::string& body : std::vector<std::string>{
           R"({"roles":["admin"]})", R"({"name":"Eve","roles":["admin"]})",
           R"({"email":"ann@example.com"})", R"({"id":")" + ann.id + "\"}",
           R"({"user_id":")" + ann.id + R"(","name":"Owned"})", R"({"name":"Eve","is_admin":true})",
           R"({"password":"a sound passphrase"})"}) {
    const auto r = command("PATCH", "/api/users/me", eve.access, body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_EQ(error_code(r), "validation_failed") << body;
  }
  catch_up();
  const auto me = query("/api/users/me", eve.access);
  EXPECT_EQ(strings(me.doc, "roles"), std::vector<std::string>{"customer"});
  EXPECT_EQ(field(me, "email"), "eve@example.com");
  EXPECT_EQ(field(query("/api/users/me", ann.access), "name"), "Ann");
  // Customers cannot reach the accounts of others.
  EXPECT_EQ(query("/api/admin/users/" + ann.id, eve.access).status, 403);
  EXPECT_EQ(
      command("POST", "/api/admin/users/" + eve.id + "/roles", eve.access, R"({"roles":["admin"]})")
          .status,
      403);
  EXPECT_EQ(count("SELECT count(*) FROM events WHERE type = 'UserRolesChanged' OR type = "
                  "'UserProfileChanged'"),
            0);
}

}  // namespace
}  // namespace shop
