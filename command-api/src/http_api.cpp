#include "shop/command/http_api.h"

#include <algorithm>
#include <cctype>
#include <pqxx/pqxx>

#include "shop/domain/phone.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"
#include "shop/infra/schema.h"

namespace shop::command {

namespace {

using http::Error;
using http::Request;
using http::Response;

bool contains_ci(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

// Parses and validates a request body against schemas/commands/<schema>.json.
json::Document body(const Request& req, std::string_view schema, bool may_be_empty = false) {
  json::Document doc;
  if (req.body.empty() && may_be_empty) {
    doc.SetObject();
    return doc;
  }
  auto ct = req.header("Content-Type");
  if (!ct || !contains_ci(*ct, "application/json")) {
    throw Error(415, "unsupported_media_type", "send the body as Content-Type: application/json");
  }
  if (auto err = json::parse(req.body, doc); !err.empty()) {
    throw Error(400, "invalid_json", "the body is not valid JSON", {err});
  }
  auto problems = infra::SchemaRegistry::instance().validate("commands/" + std::string(schema), doc);
  if (!problems.empty()) {
    throw Error(400, "validation_failed", "the request body is not valid", problems);
  }
  return doc;
}

std::string str(const json::Value& doc, const char* name) { return json::get_string(doc, name); }

std::optional<std::string> opt_str(const json::Value& doc, const char* name) {
  if (const auto* v = json::member(doc, name); v && v->IsString()) return std::string(v->GetString());
  return std::nullopt;
}

// An id taken from the path: anything but a UUID names nothing.
std::string path_id(const Request& req, const char* name, const char* what) {
  const auto& id = req.params.at(name);
  if (!is_uuid(id)) throw Error(404, "not_found", std::string(what) + " not found");
  std::string lower = id;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

std::string lower_uuid(std::string id) {
  for (auto& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return id;
}

Minor money(const json::Value& doc, const char* name, const std::string& currency) {
  auto v = parse_money(str(doc, name), currency_exponent(currency));
  if (!v) {
    throw Error(400, "validation_failed", "the request body is not valid",
                {std::string(name) + ": not a valid amount in " + currency});
  }
  return *v;
}

// If-Match: "3", W/"3" or 3; "*" or absent means any version.
std::optional<std::int64_t> if_match(const Request& req) {
  auto h = req.header("If-Match");
  if (!h || *h == "*") return std::nullopt;
  std::string_view v = *h;
  if (v.substr(0, 2) == "W/") v.remove_prefix(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty() || v.size() > 18 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw Error(400, "invalid_header", "If-Match must be a version such as \"3\"");
  }
  return std::stoll(std::string(v));
}

Context context(const Request& req, std::optional<std::string> actor) {
  auto corr = req.header("X-Correlation-Id");
  if (!corr) corr = req.header("X-Request-Id");
  return Context::make(std::move(actor),
                       corr ? std::optional<std::string>(std::string(*corr)) : std::nullopt);
}

class Out {
 public:
  Out() : w_(buf_) { w_.StartObject(); }
  Out& s(const char* k, const std::string& v) {
    w_.Key(k);
    w_.String(v);
    return *this;
  }
  Out& i(const char* k, std::int64_t v) {
    w_.Key(k);
    w_.Int64(v);
    return *this;
  }
  Out& b(const char* k, bool v) {
    w_.Key(k);
    w_.Bool(v);
    return *this;
  }
  Out& n(const char* k) {
    w_.Key(k);
    w_.Null();
    return *this;
  }
  Out& strings(const char* k, const std::vector<std::string>& items) {
    w_.Key(k);
    w_.StartArray();
    for (const auto& item : items) w_.String(item);
    w_.EndArray();
    return *this;
  }
  Response done(int status) {
    w_.EndObject();
    return http::json(status, std::string(buf_.GetString(), buf_.GetSize()));
  }

 private:
  rapidjson::StringBuffer buf_;
  json::Writer w_;
};

Response tokens(const Tokens& t, int status = 200, const std::string& user_id = {}) {
  Out out;
  if (!user_id.empty()) out.s("user_id", user_id);
  Response r = out.s("access", t.access)
                   .s("refresh", t.refresh)
                   .s("token_type", "Bearer")
                   .i("expires_in", t.expires_in)
                   .s("session_id", t.session_id)
                   .i("position", t.position)
                   .done(status);
  r.with_header("Cache-Control", "no-store");
  return r;
}

Response written(const Written& w, const char* id_name, int status = 200) {
  Response r = Out().s(id_name, w.id).i("version", w.version).i("position", w.position).done(status);
  r.with_header("ETag", "\"" + std::to_string(w.version) + "\"");
  return r;
}

}  // namespace

CommandApi::CommandApi(CommandService& service, const infra::Authenticator& auth,
                       ApiOptions options)
    : service_(service), auth_(auth), options_(std::move(options)) {
  auto& r = router_;
  auto staff = [this](const Request& req) {
    auto p = auth_.require(req);
    infra::Authenticator::require_role(p, {"admin", "staff"});
    return p;
  };
  const std::string cur = options_.currency;

  r.add("GET", "/health", [](Request&) { return http::json(200, R"({"status":"ok"})"); });

  // ---- identity
  r.add("POST", "/api/auth/register", [this](Request& req) {
    auto b = body(req, "register");
    auto w = service_.register_user(str(b, "email"), str(b, "password"), str(b, "name"),
                                    {"customer"}, context(req, std::nullopt));
    // Registration signs in: the new account's first session.
    auto t = service_.start_session(w.id, context(req, w.id));
    return tokens(t, 201, w.id);
  });
  r.add("POST", "/api/auth/login", [this](Request& req) {
    auto b = body(req, "login");
    return tokens(service_.login(str(b, "email"), str(b, "password")));
  });
  r.add("POST", "/api/auth/refresh", [this](Request& req) {
    auto b = body(req, "refresh_token");
    return tokens(service_.refresh(str(b, "refresh"), context(req, std::nullopt)));
  });
  r.add("POST", "/api/auth/logout", [this](Request& req) {
    auto b = body(req, "refresh_token");
    auto w = service_.logout(str(b, "refresh"), context(req, std::nullopt));
    return Out().s("session_id", w.id).i("position", w.position).done(200);
  });
  r.add("POST", "/api/auth/logout-all", [this](Request& req) {
    auto p = auth_.require(req);
    std::int64_t revoked = 0;
    auto w = service_.logout_all(p.user_id, context(req, p.user_id), &revoked);
    return Out().i("revoked_sessions", revoked).i("position", w.position).done(200);
  });

  // ---- the caller's own account
  r.add("PATCH", "/api/users/me", [this](Request& req) {
    auto p = auth_.require(req);
    auto b = body(req, "update_profile");
    domain::ChangeProfile c;
    c.name = opt_str(b, "name");
    if (const auto* phone = json::member(b, "phone")) {
      if (phone->IsNull()) {
        c.remove_phone = true;
      } else {
        c.phone =
            domain::normalize_phone(std::string_view(phone->GetString(), phone->GetStringLength()));
        if (!c.phone) {
          throw Error(400, "validation_failed", "the request body is not valid",
                      {"phone: not a mobile number in international form, such as +4917012345678"});
        }
      }
    }
    const auto user_id = lower_uuid(p.user_id);
    return written(service_.change_profile(user_id, c, context(req, user_id)), "id");
  });
  r.add("POST", "/api/users/me/password", [this](Request& req) {
    auto p = auth_.require(req);
    auto b = body(req, "change_password");
    const auto user_id = lower_uuid(p.user_id);
    std::int64_t revoked = 0;
    auto w = service_.change_password(user_id, lower_uuid(p.session_id), str(b, "current_password"),
                                      str(b, "new_password"), context(req, user_id), &revoked);
    return Out().i("revoked_sessions", revoked).i("position", w.position).done(200);
  });

  // ---- accounts (admin)
  r.add("POST", "/api/admin/users/{id}/roles", [this](Request& req) {
    auto p = auth_.require(req);
    infra::Authenticator::require_role(p, {"admin"});
    const auto id = path_id(req, "id", "user");
    auto b = body(req, "set_roles");
    std::vector<std::string> roles;
    for (const auto& role : b["roles"].GetArray()) {
      roles.emplace_back(role.GetString(), role.GetStringLength());
    }
    const auto actor = lower_uuid(p.user_id);
    std::int64_t revoked = 0;
    auto w = service_.set_roles(id, roles, actor, context(req, actor), &revoked);
    return Out()
        .s("id", w.id)
        .strings("roles", domain::role_set(roles).value_or(roles))
        .i("revoked_sessions", revoked)
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });

  // ---- catalog (staff)
  r.add("POST", "/api/admin/categories", [this, staff](Request& req) {
    auto p = staff(req);
    auto b = body(req, "create_category");
    auto parent = opt_str(b, "parent_id");
    if (parent) parent = lower_uuid(*parent);
    auto w = service_.create_category({new_uuid(), str(b, "name"), parent}, context(req, p.user_id));
    return Out().s("id", w.id).i("position", w.position).done(201).with_header(
        "Location", "/api/categories/" + w.id);
  });
  r.add("POST", "/api/admin/products", [this, staff, cur](Request& req) {
    auto p = staff(req);
    auto b = body(req, "create_product");
    domain::CreateProduct c{new_uuid(), str(b, "name"), str(b, "description"), str(b, "sku"),
                            lower_uuid(str(b, "category_id")), money(b, "price", cur),
                            json::get_int(b, "stock")};
    auto w = service_.create_product(c, context(req, p.user_id));
    return written(w, "id", 201).with_header("Location", "/api/products/" + w.id);
  });
  r.add("PATCH", "/api/admin/products/{id}", [this, staff, cur](Request& req) {
    auto p = staff(req);
    const auto id = path_id(req, "id", "product");
    auto b = body(req, "update_product");
    domain::UpdateProduct c{opt_str(b, "name"), opt_str(b, "description"), opt_str(b, "sku"),
                            opt_str(b, "category_id"), std::nullopt};
    if (c.category_id) c.category_id = lower_uuid(*c.category_id);
    if (b.HasMember("price")) c.price = money(b, "price", cur);
    std::optional<std::int64_t> stock;
    if (b.HasMember("stock")) stock = json::get_int(b, "stock");
    return written(service_.update_product(id, c, stock, if_match(req), context(req, p.user_id)),
                   "id");
  });
  r.add("POST", "/api/admin/products/{id}/stock", [this, staff](Request& req) {
    auto p = staff(req);
    const auto id = path_id(req, "id", "product");
    auto b = body(req, "adjust_stock");
    std::int64_t after = 0;
    auto w = service_.adjust_stock(id, json::get_int(b, "delta"), context(req, p.user_id), &after);
    return Out()
        .s("id", w.id)
        .i("stock", after)
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });
  r.add("DELETE", "/api/admin/products/{id}", [this, staff](Request& req) {
    auto p = staff(req);
    const auto id = path_id(req, "id", "product");
    return written(service_.discontinue_product(id, if_match(req), context(req, p.user_id)), "id");
  });

  // ---- orders (staff)
  r.add("POST", "/api/admin/orders/{id}/ship", [this, staff](Request& req) {
    auto p = staff(req);
    const auto id = path_id(req, "id", "order");
    auto b = body(req, "ship_order");
    auto w = service_.ship_order(id, {str(b, "carrier"), str(b, "tracking_number")},
                                 context(req, p.user_id));
    return Out()
        .s("order_id", w.id)
        .s("status", "shipped")
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });
  r.add("POST", "/api/admin/orders/{id}/deliver", [this, staff](Request& req) {
    auto p = staff(req);
    const auto id = path_id(req, "id", "order");
    if (!req.body.empty()) body(req, "cancel_order", true);  // no fields expected
    auto w = service_.deliver_order(id, context(req, p.user_id));
    return Out()
        .s("order_id", w.id)
        .s("status", "delivered")
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });

  // ---- projections (admin): a rebuild of a projection's read models, run by a projector
  // process beside the live version (projector/include/shop/projector/rebuild.h); its progress
  // is on the query API's GET /api/admin/projections/{name}.
  r.add("POST", "/api/admin/projections/{name}/rebuild", [this](Request& req) {
    auto p = auth_.require(req);
    infra::Authenticator::require_role(p, {"admin"});
    const std::string& name = req.params.at("name");
    auto b = body(req, "rebuild_projection", true);
    const bool verify = json::get_bool(b, "verify"), force = json::get_bool(b, "force");
    if (!options_.registry) throw Error(503, "unavailable", "rebuilds cannot be asked for here");
    infra::RebuildRequest outcome{};
    try {
      auto lease = options_.registry->acquire();
      pqxx::work tx(*lease);
      outcome = infra::request_rebuild(tx, name, verify, force);
      tx.commit();
    } catch (const pqxx::failure& e) {
      log::warn("rebuild request for {}: {}", name, e.what());
      Error unavailable(503, "unavailable", "the database is unavailable, try again shortly");
      unavailable.headers.emplace_back("Retry-After", "1");
      throw unavailable;
    }
    switch (outcome) {
      case infra::RebuildRequest::unknown:
        throw Error(404, "not_found", "projection not found");
      case infra::RebuildRequest::running:
        throw Error(409, "rebuild_running",
                    "a rebuild of this projection is requested or running already; see GET "
                    "/api/admin/projections/" +
                        name + " on the query API");
      case infra::RebuildRequest::kafka:
        throw Error(409, "projected_from_kafka",
                    "the live read models are projected from Kafka: a version built from the "
                    "store cannot know where the consumer group would continue (see "
                    "docs/KAFKA.md, Switching source)");
      case infra::RebuildRequest::accepted:
        break;
    }
    const std::string status = "/api/admin/projections/" + name;
    Response res = Out()
                       .s("projection", name)
                       .s("state", "requested")
                       .b("verify", verify)
                       .b("force", force)
                       .s("status", status)
                       .done(202);
    res.with_header("Location", status);
    return res;
  });

  // ---- cart (signed-in customer; every cart is the caller's own)
  r.add("POST", "/api/cart/items", [this](Request& req) {
    auto p = auth_.require(req);
    auto b = body(req, "add_cart_item");
    std::int64_t line = 0;
    auto w = service_.add_cart_item(p.user_id, lower_uuid(str(b, "product_id")),
                                    json::get_int(b, "quantity"), context(req, p.user_id), &line);
    return Out()
        .s("product_id", lower_uuid(str(b, "product_id")))
        .i("quantity", line)
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });
  r.add("PATCH", "/api/cart/items/{product_id}", [this](Request& req) {
    auto p = auth_.require(req);
    const auto product_id = path_id(req, "product_id", "cart item");
    auto b = body(req, "change_cart_item");
    const auto quantity = json::get_int(b, "quantity");
    auto w = service_.change_cart_item(p.user_id, product_id, quantity, context(req, p.user_id));
    return Out()
        .s("product_id", product_id)
        .i("quantity", quantity)
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });
  r.add("DELETE", "/api/cart/items/{product_id}", [this](Request& req) {
    auto p = auth_.require(req);
    const auto product_id = path_id(req, "product_id", "cart item");
    auto w = service_.remove_cart_item(p.user_id, product_id, context(req, p.user_id));
    return Out()
        .s("product_id", product_id)
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });

  // ---- orders (customer)
  r.add("POST", "/api/orders", [this](Request& req) {
    auto p = auth_.require(req);
    if (!req.body.empty()) body(req, "cancel_order", true);  // checkout takes no fields
    std::optional<std::string> key;
    if (auto h = req.header("Idempotency-Key")) {
      if (h->empty() || h->size() > 255 ||
          !std::all_of(h->begin(), h->end(), [](char c) { return c >= 0x21 && c <= 0x7e; })) {
        throw Error(400, "invalid_header", "Idempotency-Key must be 1-255 visible ASCII characters");
      }
      key = std::string(*h);
    }
    auto o = service_.place_order(p.user_id, key, context(req, p.user_id));
    auto res = Out()
                   .s("order_id", o.order_id)
                   .s("order_number", o.order_number)
                   .s("status", "pending")
                   .s("total", format_money(o.total, currency_exponent(o.currency)))
                   .s("currency", o.currency)
                   .i("position", o.position)
                   .done(201);
    res.with_header("Location", "/api/orders/" + o.order_id);
    if (o.replayed) res.with_header("Idempotent-Replayed", "true");
    return res;
  });
  r.add("POST", "/api/orders/{id}/cancel", [this](Request& req) {
    auto p = auth_.require(req);
    const auto id = path_id(req, "id", "order");
    auto b = body(req, "cancel_order", true);
    const bool as_staff = p.has_role("admin") || p.has_role("staff");
    auto w = service_.cancel_order(id, p.user_id, as_staff, str(b, "reason"),
                                   context(req, p.user_id));
    return Out()
        .s("order_id", w.id)
        .s("status", "cancelled")
        .i("version", w.version)
        .i("position", w.position)
        .done(200);
  });
  r.add("POST", "/api/orders/{id}/payments", [this](Request& req) {
    auto p = auth_.require(req);
    const auto id = path_id(req, "id", "order");
    auto b = body(req, "start_payment");
    const bool as_staff = p.has_role("admin") || p.has_role("staff");
    auto pay = service_.start_payment(id, p.user_id, as_staff, str(b, "provider"),
                                      context(req, p.user_id));
    return Out()
        .s("payment_id", pay.payment_id)
        .s("order_id", id)
        .s("status", "initiated")
        .s("amount", format_money(pay.amount, currency_exponent(pay.currency)))
        .s("currency", pay.currency)
        .i("position", pay.position)
        .done(201);
  });

  // ---- payment provider webhooks (authenticated by signature, not by token)
  r.add("POST", "/api/payments/sandbox/webhook", [this](Request& req) {
    auto sig = req.header("X-Sandbox-Signature");
    if (!sig || !infra::verify_hmac_sha256_hex(options_.webhook_secret, req.body, *sig)) {
      throw Error(401, "invalid_signature",
                  "X-Sandbox-Signature must be the hex HMAC-SHA256 of the body");
    }
    auto b = body(req, "sandbox_webhook");
    const bool ok = str(b, "status") == "succeeded";
    auto s = service_.settle_payment(lower_uuid(str(b, "payment_id")), {ok, str(b, "reason")},
                                     context(req, std::nullopt));
    return Out()
        .s("payment_id", s.payment_id)
        .s("status", s.status)
        .i("position", s.position)
        .done(200);
  });
}

http::Response CommandApi::handle(http::Request& req) const {
  try {
    return router_.handle(req);
  } catch (const CommandRejected& e) {
    throw to_http_error(e.error);
  }
}

// --------------------------------------------------------------------------------- the app

struct CommandApp::Impl {
  explicit Impl(const infra::Config& config)
      : threads(config.get_int("COMMAND_API_THREADS", 16)),
        pool(config.require("DATABASE_URL"),
             static_cast<std::size_t>(config.get_int("DB_POOL_SIZE", threads)),
             infra::prepare_event_store),
        store(pool),
        jwt(config.require("JWT_SECRET"), "shop"),
        revoked(
            config.require("DATABASE_URL"), clock,
            {.max_age = std::chrono::milliseconds(config.get_int("REVOCATION_REFRESH_MS", 150))}),
        auth(jwt, clock, &revoked),
        service(
            store, jwt, clock,
            ServiceOptions{
                .currency = config.get_or("STORE_CURRENCY", "USD"),
                .access_ttl_seconds = config.get_int("ACCESS_TOKEN_TTL_SECONDS", 900),
                .refresh_ttl_seconds = config.get_int("REFRESH_TOKEN_TTL_SECONDS", 14 * 24 * 3600),
                .on_revoked = [this](
                                  const std::string& id,
                                  const std::string& expires_at) { revoked.add(id, expires_at); }}),
        api(service, auth,
            ApiOptions{config.require("PAYMENT_WEBHOOK_SECRET"),
                       config.get_or("STORE_CURRENCY", "USD"), &pool}) {
    options.host = config.get_or("COMMAND_API_HOST", "127.0.0.1");
    options.port = static_cast<unsigned short>(config.get_int("COMMAND_API_PORT", 8080));
    options.threads = threads;
    options.body_limit = static_cast<std::size_t>(config.get_int("MAX_BODY_BYTES", 1 << 20));
    options.cors_origin = config.get_or("CORS_ORIGIN", "*");
    options.service_name = "shop-command-api";
  }
  int threads;
  SystemClock clock;
  infra::ConnectionPool pool;
  infra::EventStore store;
  infra::JwtCodec jwt;
  infra::RevokedSessionCache revoked;
  infra::Authenticator auth;
  CommandService service;
  CommandApi api;
  http::ServerOptions options;
};

CommandApp::CommandApp(const infra::Config& config) : impl_(std::make_unique<Impl>(config)) {}
CommandApp::~CommandApp() = default;
CommandService& CommandApp::service() { return impl_->service; }
http::Response CommandApp::handle(http::Request& req) const { return impl_->api.handle(req); }
http::ServerOptions CommandApp::server_options() const { return impl_->options; }

}  // namespace shop::command
