// shop-relay: publishes the event store's events to Kafka, exactly once, in order.
// Configuration: DATABASE_URL, KAFKA_BROKERS, KAFKA_TOPIC_PREFIX (shop), KAFKA_PARTITIONS (3),
// KAFKA_REPLICATION_FACTOR (1), RELAY_BATCH_SIZE (5000), LOG_LEVEL.
#include <atomic>
#include <csignal>

#include "shop/command/relay.h"
#include "shop/infra/config.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"

namespace {
std::atomic<bool> stop{false};
void on_signal(int) { stop = true; }
}  // namespace

int main() {
  using namespace shop;
  try {
    auto config = infra::Config::load();
    log::setup("relay", config.get_or("LOG_LEVEL", "info"));
    command::RelayOptions o;
    o.database_url = config.require("DATABASE_URL");
    o.brokers = config.require("KAFKA_BROKERS");
    o.topic_prefix = config.get_or("KAFKA_TOPIC_PREFIX", "shop");
    o.partitions = config.get_int("KAFKA_PARTITIONS", 3);
    o.replication_factor = config.get_int("KAFKA_REPLICATION_FACTOR", 1);
    o.batch_size = config.get_int("RELAY_BATCH_SIZE", 5000);
    infra::wait_for_database(o.database_url, 30);
    infra::migrate(o.database_url);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    command::Relay relay(o);
    log::info("publishing to {} with topic prefix '{}'", o.brokers, o.topic_prefix);
    relay.run(stop);
    log::info("stopped");
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("relay failed: {}", e.what());
    return 1;
  }
}
