#include "context.h"

#include <pqxx/field>
#include <thread>

#include "params.h"

namespace shop::query {

namespace {
std::size_t pool_size(const Options& o) {
  return static_cast<std::size_t>(o.pool_size > 0 ? o.pool_size : o.threads);
}
}  // namespace

Context::Context(Options opts, const Clock& clock)
    : options(std::move(opts)),
      exponent(currency_exponent(options.currency)),
      jwt(options.jwt_secret, "shop"),
      revoked(options.database_url, clock, {.max_age = options.revocation_refresh}),
      auth(jwt, clock, &revoked),
      cursors(options.jwt_secret),
      db(options.database_url, pool_size(options)),
      state(options.checkpoint_refresh, options.cache_entries) {}

http::Response Context::read(const http::Request& req, const std::string* cache_key,
                             const Render& render) {
  const std::optional<Checkpoint> required = wait_or_refresh(req);
  auto found = cache_key ? state.lookup(*cache_key) : ProjectionState::Lookup{state.view(), {}};
  // After a wait, reuse nothing older than the checkpoint that covered the client's write.
  const bool covers = !required || found.view.checkpoint.at_or_after(*required);
  std::int64_t position = found.view.checkpoint.max_position;
  if (required && required->max_position > position) position = required->max_position;

  std::string body;
  if (found.body && covers) {
    body = std::move(*found.body);
  } else {
    // The tables are read after the checkpoint in `found.view` was: the body is at least as new.
    body = render();
    if (cache_key && covers) state.store(*cache_key, body, found.view.generation);
  }
  return http::json(200, std::move(body)).with_header("X-Position", std::to_string(position));
}

std::optional<Checkpoint> Context::wait_or_refresh(const http::Request& req) {
  const auto min_position = min_position_header(req);
  if (!min_position || *min_position == 0) {
    refresh_if_due();
    return std::nullopt;
  }
  return wait_until_projected(*min_position);
}

Checkpoint Context::wait_until_projected(std::int64_t position) {
  const auto deadline = std::chrono::steady_clock::now() + options.read_your_writes_timeout;
  for (;;) {
    const auto ticket = state.begin_observation();
    const auto result = db.check_projected(position);
    state.observe(ticket, result.checkpoint);
    if (result.projected) return result.checkpoint;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(options.read_your_writes_poll,
                                                      deadline - now));
  }
  http::Error e(503, "projection_lagging",
                "the read models have not caught up with position " + std::to_string(position) +
                    " yet; retry shortly");
  e.headers.emplace_back("Retry-After", "1");
  throw e;
}

void Context::refresh_if_due() {
  if (!state.claim_refresh(std::chrono::steady_clock::now())) return;
  const auto ticket = state.begin_observation();
  try {
    state.observe(ticket, db.read_checkpoint());
  } catch (const http::Error&) {
    // The database is away. What is cached stays servable; a request that needs the tables
    // fails on its own with 503, and so does every request while nothing is known.
    if (!state.view().known) throw;
  }
}

std::int64_t Context::position_for_error() {
  try {
    refresh_if_due();
  } catch (const std::exception&) {
  }
  return state.view().checkpoint.max_position;
}

Checkpoint Context::observe_now() {
  const auto ticket = state.begin_observation();
  const Checkpoint c = db.read_checkpoint();
  state.observe(ticket, c);
  return c;
}

void write_field(json::Writer& w, const pqxx::field& f) {
  if (f.is_null()) {
    w.Null();
  } else {
    w.String(f.c_str(), static_cast<rapidjson::SizeType>(f.size()));
  }
}

void write_text(json::Writer& w, std::string_view text) {
  w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

http::Error not_found(const std::string& what) {
  return http::Error(404, "not_found", what + " not found");
}

http::Error invalid_cursor() {
  return http::Error(400, "invalid_cursor",
                     "the cursor is malformed or belongs to another list or sort; start again "
                     "from the first page",
                     {"cursor"});
}

}  // namespace shop::query
