// Accounts: the signed-in user's own profile, and every account for admins. Read straight from
// rm_users (never cached): profiles change with every command and are no one else's business.
#include <algorithm>
#include <pqxx/pqxx>

#include "context.h"
#include "handlers.h"
#include "params.h"

namespace shop::query {

namespace {

const std::string kUserColumns =
    "u.id::text, u.email, u.name, u.phone, array_to_json(u.roles)::text, " +
    utc_text("u.created_at");
enum UserColumn { kId, kEmail, kName, kPhone, kRoles, kCreatedAt };

const Statement kUser{"q_user",
                      "SELECT " + kUserColumns + " FROM rm_users u WHERE u.id = $1::uuid"};

const char* const kRoleNames[] = {"customer", "staff", "admin"};

// The fields of an account as every answer here shows them: {id, email, name, phone, roles,
// created_at} (email and phone null when the account has none).
void write_user_fields(json::Writer& w, const pqxx::row& r) {
  w.Key("id");
  write_field(w, r[kId]);
  w.Key("email");
  write_field(w, r[kEmail]);
  w.Key("name");
  write_field(w, r[kName]);
  w.Key("phone");
  write_field(w, r[kPhone]);
  w.Key("roles");
  if (r[kRoles].is_null()) {
    w.StartArray();
    w.EndArray();
  } else {
    w.RawValue(r[kRoles].c_str(), r[kRoles].size(), rapidjson::kArrayType);  // array_to_json's
  }
  w.Key("created_at");
  write_field(w, r[kCreatedAt]);
}

pqxx::result read_user(Context& ctx, const std::string& user_id) {
  return ctx.db.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return run_statement(tx, kUser, {user_id});
  });
}

// GET /api/users/me: the account's fields, and user_id (the same id, as it has always been there).
std::string render_me(Context& ctx, const std::string& user_id) {
  const auto rows = read_user(ctx, user_id);
  if (rows.empty()) throw not_found("user");
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("user_id");
  write_field(w, rows[0][kId]);
  write_user_fields(w, rows[0]);
  w.EndObject();
  return out.str();
}

std::string render_user(Context& ctx, const std::string& user_id) {
  const auto rows = read_user(ctx, user_id);
  if (rows.empty()) throw not_found("user");
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  write_user_fields(w, rows[0]);
  w.EndObject();
  return out.str();
}

// --- GET /api/admin/users
// --------------------------------------------------------------------------

struct UserListQuery {
  std::optional<std::string> role;
  std::optional<std::string> email;   // exact, any case
  std::optional<std::string> prefix;  // q: the start of the e-mail address or of the name
  int limit = 20;
  std::optional<CursorPosition> after;
};

constexpr const char* kUserListScope = "admin_users:created_at";

UserListQuery parse_user_list_query(const http::Request& req, const Context& ctx) {
  UserListQuery q;
  q.limit = limit_param(req);
  if ((q.role = text_param(req, "role", 16))) {
    if (std::find(std::begin(kRoleNames), std::end(kRoleNames), *q.role) == std::end(kRoleNames)) {
      throw invalid_parameter("role", "must be customer, staff or admin");
    }
  }
  q.email = text_param(req, "email", 254);
  q.prefix = text_param(req, "q", 100);
  if (auto it = req.query.find("cursor"); it != req.query.end() && !it->second.empty()) {
    auto position = ctx.cursors.decode(kUserListScope, it->second);
    auto at = position ? parse_time(position->key) : std::nullopt;
    if (!at || !is_uuid(position->id)) throw invalid_cursor();
    position->key = format_time(*at);
    q.after = std::move(position);
  }
  return q;
}

// Oldest first; keyset on (created_at, id), which the index rm_users_created follows. One
// statement per combination of filters present.
Statement user_list_statement(const UserListQuery& q, std::vector<std::string>& params) {
  std::string name = "q_users_";
  std::string where = " WHERE true";
  auto param = [&](std::string value, const char* type) {
    params.push_back(std::move(value));
    return "$" + std::to_string(params.size()) + "::" + type;
  };
  if (q.role) {
    name += 'r';
    where += " AND " + param(*q.role, "text") + " = ANY (u.roles)";
  }
  if (q.email) {
    name += 'e';
    where += " AND lower(u.email) = lower(" + param(*q.email, "text") + ")";
  }
  if (q.prefix) {
    name += 'q';
    const auto pattern = param(escape_like(*q.prefix) + "%", "text");
    where += " AND (lower(u.email) LIKE lower(" + pattern + ") OR lower(u.name) LIKE lower(" +
             pattern + "))";
  }
  if (q.after) {
    name += 'a';
    const auto key = param(q.after->key, "timestamptz");
    where += " AND (u.created_at, u.id) > (" + key + ", " + param(q.after->id, "uuid") + ")";
  }
  const auto limit = param(std::to_string(q.limit + 1), "int");  // one more: is there a next?
  return {std::move(name), "SELECT " + kUserColumns + " FROM rm_users u" + where +
                               " ORDER BY u.created_at, u.id LIMIT " + limit};
}

std::string render_user_list(Context& ctx, const UserListQuery& q) {
  std::vector<std::string> params;
  const Statement statement = user_list_statement(q, params);
  auto rows = ctx.db.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return run_statement(tx, statement, params);
  });
  const auto count = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(q.limit));
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (std::size_t i = 0; i < count; ++i) {
    w.StartObject();
    write_user_fields(w, rows[i]);
    w.EndObject();
  }
  w.EndArray();
  w.Key("next_cursor");
  if (rows.size() > count) {
    const auto last = rows[count - 1];
    w.String(ctx.cursors.encode(kUserListScope, {last[kCreatedAt].c_str(), last[kId].c_str()}));
  } else {
    w.Null();
  }
  w.EndObject();
  return out.str();
}

// Answers about accounts are for the caller only: no shared caches on the way.
http::Response private_response(http::Response res) {
  return std::move(res.with_header("Cache-Control", "private, no-store"));
}

}  // namespace

void add_user_routes(http::Router& router, Context& ctx) {
  router.add("GET", "/api/users/me", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    const auto user_id = to_lower(caller.user_id);
    return private_response(ctx.read(req, nullptr, [&] { return render_me(ctx, user_id); }));
  });
  router.add("GET", "/api/admin/users", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    infra::Authenticator::require_role(caller, {"admin"});
    const auto q = parse_user_list_query(req, ctx);
    return private_response(ctx.read(req, nullptr, [&] { return render_user_list(ctx, q); }));
  });
  router.add("GET", "/api/admin/users/{id}", [&ctx](http::Request& req) {
    const auto caller = ctx.auth.require(req);
    infra::Authenticator::require_role(caller, {"admin"});
    const std::string& id = req.params.at("id");
    if (!is_uuid(id)) throw not_found("user");
    const auto user_id = to_lower(id);
    return private_response(ctx.read(req, nullptr, [&] { return render_user(ctx, user_id); }));
  });
}

}  // namespace shop::query
