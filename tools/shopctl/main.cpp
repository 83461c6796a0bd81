// shopctl: the admin and analyst command line. Reads the same configuration as the services
// (environment, then ./.env).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "analyst.h"
#include "demo.h"
#include "projections.h"
#include "seed.h"
#include "shop/command/service.h"
#include "shop/infra/config.h"
#include "shop/infra/crypto.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"

namespace {

struct Services {
  // `connections`: one per thread that runs commands.
  explicit Services(const shop::infra::Config& config, std::size_t connections = 2)
      : pool(config.require("DATABASE_URL"), connections, shop::infra::prepare_event_store),
        store(pool),
        jwt(config.require("JWT_SECRET"), "shop"),
        service(store, jwt, clock, {.currency = config.get_or("STORE_CURRENCY", "USD")}) {}
  shop::SystemClock clock;
  shop::infra::ConnectionPool pool;
  shop::infra::EventStore store;
  shop::infra::JwtCodec jwt;
  shop::command::CommandService service;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace shop;
  CLI::App app{"shopctl: administer the shop backend"};
  app.require_subcommand(1);

  auto* migrate = app.add_subcommand("migrate", "apply database migrations");

  std::string email, password, name = "Administrator";
  auto* admin = app.add_subcommand("create-admin", "create an administrator account");
  admin->add_option("--email", email, "e-mail address")->required();
  admin->add_option("--password", password, "password (at least 10 characters)")->required();
  admin->add_option("--name", name, "display name");

  auto* seed = app.add_subcommand(
      "seed-demo",
      "load a demo catalog through the command path; with --products, --users or --orders, add "
      "realistic data at scale (customers' password: " +
          std::string(tools::kDemoCustomerPassword) + ")");
  tools::SeedOptions seed_options;
  seed->add_option("--products", seed_options.products, "new products over the demo categories")
      ->check(CLI::NonNegativeNumber);
  seed->add_option("--users", seed_options.users, "new customers")->check(CLI::NonNegativeNumber);
  seed->add_option("--orders", seed_options.orders,
                   "shopping sessions: cart, checkout, then paid, shipped, delivered or cancelled")
      ->check(CLI::NonNegativeNumber);
  seed->add_option("--seed", seed_options.seed, "random seed: the same seed, the same data")
      ->capture_default_str();
  seed->add_option("--threads", seed_options.threads, "commands run concurrently")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();

  tools::ReplayArgs replay_args;
  auto* replay = tools::add_replay_command(app, replay_args);
  tools::SchemasArgs schemas_args;
  auto* schemas = tools::add_schemas_command(app, schemas_args);
  tools::RebuildArgs rebuild_args;
  auto* rebuild = tools::add_rebuild_command(app, rebuild_args);
  tools::StatusArgs status_args;
  auto* status = tools::add_status_command(app, status_args);

  const tools::Console console{STDOUT_FILENO, &std::cout, &std::cerr, ::isatty(STDERR_FILENO) == 1};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return tools::parse_error_exit(app, e, console);
  }
  if (*seed) {
    if (auto problem = tools::seed_options_problem(seed_options); !problem.empty()) {
      std::cerr << "seed-demo: " << problem << "\n";
      return tools::kExitUsage;
    }
  }
  // The analysts' commands only read: no migrations, no secrets.
  if (*schemas) return tools::run_schemas_command(schemas_args, console);

  try {
    auto config = infra::Config::load();
    log::setup("shopctl", config.get_or("LOG_LEVEL", "warn"));
    if (*replay) return tools::run_replay_command(replay_args, config, console);
    infra::crypto_init();
    const auto url = config.require("DATABASE_URL");
    infra::migrate(url);
    if (*migrate) {
      std::cout << "migrations applied\n";
      return 0;
    }
    if (*rebuild) return tools::run_rebuild_command(rebuild_args, url, console);
    if (*status) return tools::run_status_command(status_args, url, console);
    const bool at_scale =
        *seed && (seed_options.products > 0 || seed_options.users > 0 || seed_options.orders > 0);
    Services s(config, at_scale ? static_cast<std::size_t>(seed_options.threads) + 1 : 2);
    if (*admin) {
      if (password.size() < 10) {
        std::cerr << "password must be at least 10 characters\n";
        return 2;
      }
      if (auto existing = s.service.find_user_by_email(email)) {
        if (existing->has_role("admin")) {
          std::cout << "admin " << existing->email << " already exists (" << existing->id << ")\n";
          return 0;
        }
        std::cerr << "a non-admin account with this e-mail exists\n";
        return 1;
      }
      auto w = s.service.register_user(email, password, name, {"admin"},
                                       command::Context::make(std::nullopt));
      std::cout << "admin created: " << w.id << "\n";
      return 0;
    }
    if (at_scale) {
      std::ostream* progress = console.err_is_terminal ? &std::cerr : nullptr;
      const auto report = tools::seed_at_scale(s.service, s.store, seed_options, progress);
      if (report.demo_products > 0) {
        std::cout << "demo catalog loaded: " << report.demo_products << " products\n";
      }
      std::cout << tools::summary_line(report) << std::endl;
      return 0;
    }
    if (*seed) {
      const int n = tools::seed_demo(s.service, s.store);
      if (n == 0) {
        std::cout << "catalog already has products; nothing to do\n";
      } else {
        std::cout << "demo catalog loaded: " << n << " products\n";
      }
      return 0;
    }
  } catch (const command::CommandRejected& e) {
    std::cerr << "refused: " << e.error.code << ": " << e.error.message << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
