// What admins and staff see of the projections: GET /api/admin/projections and
// /api/admin/projections/{name}. Read from the registry and the live versions' checkpoints,
// never cached: it is about the present.
#include <pqxx/pqxx>

#include "context.h"
#include "handlers.h"
#include "shop/infra/pg.h"

namespace shop::query {

namespace {

std::vector<infra::ProjectionStatus> read_status(Context& ctx) {
  return ctx.db.run([](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    return infra::projection_status(tx);
  });
}

http::Response status_response(Context& ctx, std::string body) {
  return std::move(
      http::json(200, std::move(body))
          .with_header("Cache-Control", "private, no-store")
          .with_header("X-Position", std::to_string(ctx.state.view().checkpoint.max_position)));
}

}  // namespace

void add_admin_routes(http::Router& router, Context& ctx) {
  router.add("GET", "/api/admin/projections", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    infra::Authenticator::require_role(caller, {"admin", "staff"});
    return status_response(ctx, infra::projection_status_json(read_status(ctx)));
  });
  router.add("GET", "/api/admin/projections/{name}", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    infra::Authenticator::require_role(caller, {"admin", "staff"});
    const std::string& name = req.params.at("name");
    for (const auto& p : read_status(ctx)) {
      if (p.name == name) return status_response(ctx, infra::projection_status_json(p));
    }
    throw not_found("projection");
  });
}

}  // namespace shop::query
