// projector: keeps the read models up to date from the event store's global order.
#include <csignal>

#include "shop/infra/config.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"
#include "shop/projector/projector.h"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

int main() {
  using namespace shop;
  try {
    auto config = infra::Config::load();
    log::setup("projector", config.get_or("LOG_LEVEL", "info"));
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    const auto url = config.require("DATABASE_URL");
    infra::wait_for_database(url, 30);
    infra::migrate(url);
    projector::Projector p(url, {.batch_size = config.get_int("PROJECTOR_BATCH_SIZE", 1000),
                                 .idle_poll_ms = config.get_int("PROJECTOR_IDLE_POLL_MS", 5)});
    log::info("projecting from the event store (checkpoint position {})", p.checkpoint().position);
    p.run(g_stop);
    log::info("stopped");
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("projector failed: {}", e.what());
    return 1;
  }
}
