// query-api: serves the read models over HTTP (default 127.0.0.1:8081). See README.md.
#include <exception>

#include "shop/infra/config.h"
#include "shop/infra/crypto.h"
#include "shop/infra/log.h"
#include "shop/query/app.h"

int main() {
  try {
    const auto config = shop::infra::Config::load();
    shop::log::setup("query-api", config.get_or("LOG_LEVEL", "info"));
    shop::infra::crypto_init();
    const shop::SystemClock clock;
    shop::query::QueryApp app(config, clock);
    auto server = app.make_server();
    shop::log::info("query-api listening on {}:{}", app.options().host, server->port());
    server->run();
    shop::log::info("query-api stopped");
    return 0;
  } catch (const std::exception& e) {
    shop::log::error("query-api: {}", e.what());
    return 1;
  }
}
