// End to end: a rebuild of the read models asked for over the command API is taken up by the
// running projector process and switched to while a customer keeps shopping and reading; then
// `shopctl rebuild` and `shopctl status` against the same running services.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "shop/events/types.h"
#include "shop/infra/crypto.h"
#include "support/http_client.h"
#include "support/pg_fixture.h"
#include "support/processes.h"

namespace shop::testing {
namespace {

std::string field(const json::Value& v, const char* name) {
  return json::get_string(v, name);
}

class RebuildE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    infra::crypto_init();
    url_ = create_test_database("e2e_rebuild");
    dir_ = std::filesystem::temp_directory_path() / ("shop-e2e-rebuild-" + new_uuid().substr(0, 8));
    std::filesystem::create_directories(dir_);
    cmd_port_ = free_port();
    query_port_ = free_port();
    env_ = {{"DATABASE_URL", url_},
            {"JWT_SECRET", "e2e-secret-0123456789-0123456789-0123456789"},
            {"PAYMENT_WEBHOOK_SECRET", "whsec_e2e_0123456789"},
            {"COMMAND_API_PORT", std::to_string(cmd_port_)},
            {"QUERY_API_PORT", std::to_string(query_port_)},
            {"ENV_FILE", (dir_ / "none.env").string()},
            {"READ_YOUR_WRITES_TIMEOUT_MS", "30000"},
            {"LOG_LEVEL", "info"}};
    ASSERT_EQ(
        shopctl({"create-admin", "--email", "admin@e2e.test", "--password", "admin-password"}), 0)
        << output_;
    ASSERT_EQ(shopctl({"seed-demo"}), 0) << output_;
    projector_ = std::make_unique<ChildProcess>(SHOP_PROJECTOR_BIN, std::vector<std::string>{},
                                                env_, (dir_ / "projector.log").string());
    command_ = std::make_unique<ChildProcess>(SHOP_COMMAND_API_BIN, std::vector<std::string>{},
                                              env_, (dir_ / "command-api.log").string());
    query_ = std::make_unique<ChildProcess>(SHOP_QUERY_API_BIN, std::vector<std::string>{}, env_,
                                            (dir_ / "query-api.log").string());
    ASSERT_TRUE(wait_for_port(cmd_port_, 30000) && wait_for_port(query_port_, 30000)) << logs();
  }
  void TearDown() override {
    EXPECT_TRUE(command_->running() && query_->running() && projector_->running()) << logs();
    command_.reset();
    query_.reset();
    projector_.reset();
    drop_test_database(url_);
    std::filesystem::remove_all(dir_);
  }

  int shopctl(const std::vector<std::string>& args) {
    return run_command(SHOP_SHOPCTL_BIN, args, env_, output_);
  }
  std::string logs() {
    return (command_ ? command_->log() : "") + (query_ ? query_->log() : "") +
           (projector_ ? projector_->log() : "");
  }
  HttpClient cmd() { return HttpClient("127.0.0.1", cmd_port_); }
  HttpClient query() { return HttpClient("127.0.0.1", query_port_); }

  std::string login(const std::string& email, const std::string& password) {
    auto c = cmd();
    auto r = c.post("/api/auth/login",
                    R"({"email":")" + email + R"(","password":")" + password + R"("})");
    EXPECT_EQ(r.status, 200) << r.body;
    return field(r.json(), "access");
  }

  std::string url_, output_;
  std::filesystem::path dir_;
  unsigned short cmd_port_ = 0, query_port_ = 0;
  std::map<std::string, std::string> env_;
  std::unique_ptr<ChildProcess> projector_, command_, query_;
};

TEST_F(RebuildE2E, RebuildAskedOverHttpIsSwitchedToWhileACustomerShops) {
  const auto admin = login("admin@e2e.test", "admin-password");
  std::string customer;
  {
    auto c = cmd();
    const std::string email = "buyer-" + new_uuid().substr(0, 8) + "@e2e.test";
    auto r = c.post("/api/auth/register",
                    R"({"email":")" + email + R"(","password":"customer-password","name":"B"})");
    ASSERT_EQ(r.status, 201) << r.body;
    customer = login(email, "customer-password");
  }
  std::string product;
  {
    auto q = query();
    auto r = q.get("/api/products?limit=1");
    ASSERT_EQ(r.status, 200) << r.body;
    product = field(r.json()["items"][0], "id");
  }

  // The customer puts the product in the cart and takes it out again, reading the cart back
  // after each write (read your writes), throughout.
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0}, failures{0};
  std::string failure;
  std::thread shopper([&] {
    auto c = cmd();
    auto q = query();
    for (int i = 0; !stop.load(); ++i) {
      const bool add = i % 2 == 0;
      auto w = add ? c.post("/api/cart/items",
                            R"({"product_id":")" + product + R"(","quantity":1})", customer)
                   : c.del("/api/cart/items/" + product, customer);
      if (w.status != 200) {
        if (failures++ == 0) failure = "write: " + std::to_string(w.status) + " " + w.body;
        return;
      }
      const auto position = json::get_int(w.json(), "position");
      auto r = q.get("/api/cart", customer, {{"X-Min-Position", std::to_string(position)}});
      if (r.status != 200 || json::get_int(r.json(), "item_count") != (add ? 1 : 0)) {
        if (failures++ == 0) failure = "cart: " + std::to_string(r.status) + " " + r.body;
      }
      ++rounds;
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Join() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } join{stop, shopper};
  while (rounds.load() < 5 && failures.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  {
    auto c = cmd();
    auto r = c.post("/api/admin/projections/read_models/rebuild", R"({"verify":true})", admin);
    ASSERT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(r.header("location"), "/api/admin/projections/read_models");
  }
  // The projector process takes it up and switches.
  auto q = query();
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto r = q.get("/api/admin/projections/read_models", admin);
    ASSERT_EQ(r.status, 200) << r.body;
    last = r.body;
    const auto d = r.json();
    if (json::get_int(d, "live_version") == 2 && field(d, "state") == "live") break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << last << "\n" << logs();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int at_switch = rounds.load();
  while (rounds.load() < at_switch + 5 && failures.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  shopper.join();
  EXPECT_EQ(failures.load(), 0) << failure;
  EXPECT_NE(projector_->log().find("version 2 is live"), std::string::npos) << projector_->log();

  // shopctl against the running services: status, then another rebuild.
  ASSERT_EQ(shopctl({"status"}), 0) << output_;
  EXPECT_NE(output_.find("read_models"), std::string::npos) << output_;
  EXPECT_NE(output_.find("live"), std::string::npos) << output_;
  ASSERT_EQ(shopctl({"rebuild", "--all", "--verify"}), 0) << output_;
  EXPECT_NE(output_.find("verify: equal"), std::string::npos) << output_;
  EXPECT_NE(output_.find("version 3 is live"), std::string::npos) << output_;
  ASSERT_EQ(shopctl({"status", "--json"}), 0) << output_;
  EXPECT_NE(output_.find(R"("live_version":3)"), std::string::npos) << output_;

  // The live projector carries on in version 3.
  auto c = cmd();
  auto w =
      c.post("/api/cart/items", R"({"product_id":")" + product + R"(","quantity":1})", customer);
  ASSERT_EQ(w.status, 200) << w.body;
  auto r = q.get("/api/cart", customer,
                 {{"X-Min-Position", std::to_string(json::get_int(w.json(), "position"))}});
  EXPECT_EQ(r.status, 200) << r.body;
}

}  // namespace
}  // namespace shop::testing
