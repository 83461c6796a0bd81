// projector: keeps the read models up to date, from the event store's global order (the
// embedded default) or, when KAFKA_BROKERS is set, from the relay's Kafka topics as a member of
// a consumer group. Beside that, it runs the rebuilds of the read models asked for over the API.
#include <csignal>
#include <thread>

#include "shop/infra/config.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"
#include "shop/projector/kafka_projector.h"
#include "shop/projector/projector.h"
#include "shop/projector/rebuild.h"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}
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
    // Rebuilds asked for over the API (POST /api/admin/projections/{name}/rebuild) run on a
    // second thread, beside the live projection.
    std::thread rebuilds([&url] { projector::serve_rebuild_requests(url, g_stop); });
    struct Join {
      std::thread& thread;
      ~Join() {
        g_stop = true;
        thread.join();
      }
    } join_rebuilds{rebuilds};
    const int batch_size = config.get_int("PROJECTOR_BATCH_SIZE", 1000);
    if (const auto brokers = config.get("KAFKA_BROKERS"); brokers && !brokers->empty()) {
      projector::KafkaOptions o;
      o.brokers = *brokers;
      o.topic_prefix = config.get_or("KAFKA_TOPIC_PREFIX", "shop");
      o.group = config.get_or("KAFKA_CONSUMER_GROUP", o.topic_prefix + "-projector");
      o.batch_size = batch_size;
      o.progress_interval =
          std::chrono::milliseconds(config.get_int("PROJECTOR_PROGRESS_INTERVAL_MS", 10));
      o.session_timeout =
          std::chrono::milliseconds(config.get_int("PROJECTOR_KAFKA_SESSION_TIMEOUT_MS", 10000));
      projector::KafkaProjector p(url, o);
      log::info("projecting from Kafka: brokers {}, topics {}.<category>, consumer group {}",
                o.brokers, o.topic_prefix, o.group);
      p.run(g_stop);
    } else {
      projector::Projector p(url, {.batch_size = batch_size,
                                   .idle_poll_ms = config.get_int("PROJECTOR_IDLE_POLL_MS", 5)});
      log::info("projecting from the event store (checkpoint position {})",
                p.checkpoint().position);
      p.run(g_stop);
    }
    log::info("stopped");
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("projector failed: {}", e.what());
    return 1;
  }
}
