#include "shop/query/app.h"

#include <stdexcept>

#include "context.h"
#include "handlers.h"

namespace shop::query {

namespace {

constexpr std::size_t kMinSecretLength = 32;

// GET /health: the database answers, and how far the projector is.
http::Response health(Context& ctx) {
  const Checkpoint c = ctx.observe_now();
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("status");
  w.String("ok");
  w.Key("projected_position");
  w.Int64(c.max_position);
  w.EndObject();
  return http::json(200, out.str())
      .with_header("X-Position", std::to_string(c.max_position))
      .with_header("Cache-Control", "no-store");
}

bool has_header(const std::vector<std::pair<std::string, std::string>>& headers,
                std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return true;
  }
  return false;
}

Options validated(Options options) {
  options.validate();
  return options;
}

}  // namespace

Options Options::from_config(const infra::Config& config) {
  Options o;
  o.database_url = config.require("DATABASE_URL");
  o.jwt_secret = config.require("JWT_SECRET");
  o.host = config.get_or("QUERY_API_HOST", o.host);
  const int port = config.get_int("QUERY_API_PORT", o.port);
  if (port < 0 || port > 65535) throw std::runtime_error("QUERY_API_PORT must be 0..65535");
  o.port = static_cast<unsigned short>(port);
  o.threads = config.get_int("QUERY_API_THREADS", o.threads);
  o.pool_size = config.get_int("DB_POOL_SIZE", o.threads);
  o.currency = config.get_or("STORE_CURRENCY", o.currency);
  o.cors_origin = config.get_or("CORS_ORIGIN", o.cors_origin);
  o.read_your_writes_timeout = std::chrono::milliseconds(
      config.get_int("READ_YOUR_WRITES_TIMEOUT_MS",
                     static_cast<int>(o.read_your_writes_timeout.count())));
  o.revocation_refresh = std::chrono::milliseconds(
      config.get_int("REVOCATION_REFRESH_MS", static_cast<int>(o.revocation_refresh.count())));
  try {
    o.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string("configuration: ") + e.what());
  }
  return o;
}

void Options::validate() const {
  if (database_url.empty()) throw std::invalid_argument("DATABASE_URL is required");
  if (jwt_secret.size() < kMinSecretLength) {
    throw std::invalid_argument("JWT_SECRET must be at least 32 characters");
  }
  if (currency.size() != 3 || currency.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
                                  std::string::npos) {
    throw std::invalid_argument("STORE_CURRENCY must be an ISO 4217 code such as USD");
  }
  if (threads < 1 || threads > 1024) {
    throw std::invalid_argument("QUERY_API_THREADS must be 1..1024");
  }
  if (pool_size < 0 || pool_size > 1024) {
    throw std::invalid_argument("DB_POOL_SIZE must be 1..1024");
  }
  if (read_your_writes_timeout.count() < 0 || read_your_writes_poll.count() < 0 ||
      checkpoint_refresh.count() < 0) {
    throw std::invalid_argument("READ_YOUR_WRITES_TIMEOUT_MS must not be negative");
  }
  if (revocation_refresh.count() < 0) {
    throw std::invalid_argument("REVOCATION_REFRESH_MS must not be negative");
  }
}

struct QueryApp::Impl {
  Impl(Options options, const Clock& clock) : ctx(validated(std::move(options)), clock) {
    router.add("GET", "/health", [this](http::Request&) { return health(ctx); });
    add_catalog_routes(router, ctx);
    add_account_routes(router, ctx);
    add_user_routes(router, ctx);
    add_admin_routes(router, ctx);
    add_schema_routes(router);
  }
  Context ctx;
  http::Router router;
};

QueryApp::QueryApp(Options options, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), clock)) {}

QueryApp::QueryApp(const infra::Config& config, const Clock& clock)
    : QueryApp(Options::from_config(config), clock) {}

QueryApp::~QueryApp() = default;

const Options& QueryApp::options() const { return impl_->ctx.options; }

http::Response QueryApp::handle(http::Request& req) {
  if (req.path.empty()) http::parse_target(req);
  try {
    return impl_->router.handle(req);
  } catch (http::Error& e) {
    // Errors say how far the read models are too (a 503 projection_lagging most of all).
    if (!has_header(e.headers, "X-Position")) {
      const std::int64_t position =
          e.status == 503 ? impl_->ctx.state.view().checkpoint.max_position
                          : impl_->ctx.position_for_error();
      e.headers.emplace_back("X-Position", std::to_string(position));
    }
    throw;
  }
}

http::ServerOptions QueryApp::server_options() const {
  http::ServerOptions s;
  s.host = options().host;
  s.port = options().port;
  s.threads = options().threads;
  s.body_limit = 64 * 1024;  // nothing here takes a body
  s.cors_origin = options().cors_origin;
  s.service_name = "query-api";
  return s;
}

std::unique_ptr<http::Server> QueryApp::make_server() {
  return std::make_unique<http::Server>(server_options(),
                                        [this](http::Request& req) { return handle(req); });
}

}  // namespace shop::query
