// command-api: validates commands and appends their events to the PostgreSQL event store.
#include "shop/command/http_api.h"
#include "shop/infra/crypto.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"

int main() {
  using namespace shop;
  try {
    auto config = infra::Config::load();
    log::setup("command-api", config.get_or("LOG_LEVEL", "info"));
    infra::crypto_init();
    infra::wait_for_database(config.require("DATABASE_URL"), 30);
    infra::migrate(config.require("DATABASE_URL"));
    command::CommandApp app(config);
    http::Server server(app.server_options(),
                        [&app](http::Request& req) { return app.handle(req); });
    log::info("listening on http://{}:{}", app.server_options().host, server.port());
    server.run();
    log::info("stopped");
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("command-api failed: {}", e.what());
    return 1;
  }
}
