// `shopctl seed-demo --products N --users N --orders N`: realistic data at scale, written through
// the command service (the code behind the HTTP API), so that every event is a genuine one: staff
// create products (and change prices, restock, discontinue), customers register, fill their carts,
// check out, pay through the sandbox provider (whose webhook settles the payment) or cancel, and
// staff ship and deliver. main() and the tests both call seed_at_scale.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "shop/command/service.h"
#include "shop/infra/event_store.h"

namespace shop::tools {

// Every customer the seeder registers signs in with this password. It is hashed once per run
// (argon2id, as always) and the hash is given to every registration through
// CommandService::register_user_with_password_hash: one hash costs ~50 ms on purpose, and a
// hash per customer would make the seeding of 100,000 customers take hours.
inline constexpr std::string_view kDemoCustomerPassword = "demo-customer";

struct SeedOptions {
  int products = 0;  // new products, spread over the demo catalog's leaf categories
  int users = 0;     // new customers
  int orders = 0;    // shopping sessions ending in a checkout (needs products and users)
  std::uint64_t seed = 1;
  int threads = 8;  // concurrent commands (each thread runs one command at a time)
};

// What a run did. The order counts say what happened to the orders (an order may be counted in
// several: paid, then shipped, then delivered).
struct SeedReport {
  int users = 0, products = 0, orders = 0;
  int demo_products = 0;  // the small demo catalog, loaded first when there were no products
  int price_changes = 0, restocks = 0, discontinued = 0;
  int cart_steps = 0;  // add, change and remove commands
  int payments = 0, payments_declined = 0;
  int orders_paid = 0, orders_cancelled = 0, orders_shipped = 0, orders_delivered = 0;
  std::int64_t events = 0;  // events appended during the run (counted in the store)
  double seconds = 0;
  double events_per_second() const {
    return seconds > 0 ? static_cast<double>(events) / seconds : 0;
  }
};

// Empty when the options make sense; otherwise what is wrong (orders without products or users,
// a negative count, threads out of 1..256).
std::string seed_options_problem(const SeedOptions& options);

// Throws std::invalid_argument when seed_options_problem finds one (before writing anything);
// rethrows the first error of any command (everything written up
// to then stays: it is all genuine). `progress`: a line redrawn on it about once a second (pass
// it only when it is a terminal); null for none. `service` must sit on a store whose pool has a
// connection per thread (more only queue).
SeedReport seed_at_scale(command::CommandService& service, infra::EventStore& store,
                         const SeedOptions& options, std::ostream* progress = nullptr);

// "seed-demo: 5000 users, 500 products, 100000 orders, 1052731 events in 301.2 s (3495 events/s)"
std::string summary_line(const SeedReport& report);

}  // namespace shop::tools
