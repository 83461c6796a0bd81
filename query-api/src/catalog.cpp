// The public catalogue: products (filtered, searched, sorted, paged by keyset cursors) and
// categories. Responses depend only on the read models, so they are cached per normalised query.
#include <algorithm>
#include <pqxx/pqxx>

#include "context.h"
#include "handlers.h"
#include "params.h"

namespace shop::query {

namespace {

enum class SortKey { kCreatedAt, kPrice, kName };

struct Sort {
  std::string_view name;
  SortKey key;
  bool descending;
};

// The first is the default: newest first.
constexpr Sort kSorts[] = {
    {"-created_at", SortKey::kCreatedAt, true}, {"created_at", SortKey::kCreatedAt, false},
    {"price", SortKey::kPrice, false},          {"-price", SortKey::kPrice, true},
    {"name", SortKey::kName, false},            {"-name", SortKey::kName, true},
};

const char* sort_column(SortKey key) {
  switch (key) {
    case SortKey::kPrice:
      return "p.price";
    case SortKey::kName:
      return "p.name";
    case SortKey::kCreatedAt:
      break;
  }
  return "p.created_at";
}

const char* sort_type(SortKey key) {
  switch (key) {
    case SortKey::kPrice:
      return "bigint";
    case SortKey::kName:
      return "text";
    case SortKey::kCreatedAt:
      break;
  }
  return "timestamptz";
}

// Column order is what write_product() and the cursor read.
const std::string kProductColumns =
    "p.id::text, p.name, p.description, p.price, p.stock, p.category_id::text, p.sku, " +
    utc_text("p.created_at");
enum ProductColumn { kId, kName, kDescription, kPrice, kStock, kCategoryId, kSku, kCreatedAt };

const Statement kProductById{"q_product", "SELECT " + kProductColumns +
                                              " FROM rm_products p"
                                              " WHERE p.id = $1::uuid AND NOT p.discontinued"};

const Statement kCategories{"q_categories",
                            "SELECT id::text, name, parent_id::text FROM rm_categories"
                            " ORDER BY name, id"};

struct ProductQuery {
  const Sort* sort = &kSorts[0];
  int limit = 20;
  std::optional<std::string> category_id;
  std::optional<Minor> min_price;
  std::optional<Minor> max_price;
  std::optional<bool> in_stock;
  std::optional<std::string> text;
  std::optional<std::string> cursor;  // as sent, for the cache key
  std::optional<CursorPosition> after;
};

std::string cursor_scope(const Sort& sort) { return "products:" + std::string(sort.name); }

// A decoded cursor must also hold a key of its sort's type (it is signed, so this only guards
// against our own mistakes reaching SQL).
bool valid_position(SortKey key, CursorPosition& position) {
  if (!is_uuid(position.id)) return false;
  switch (key) {
    case SortKey::kPrice:
      return parse_int64(position.key).has_value();
    case SortKey::kName:
      return is_utf8(position.key);
    case SortKey::kCreatedAt:
      break;
  }
  auto t = parse_time(position.key);
  if (!t) return false;
  position.key = format_time(*t);
  return true;
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n\f\v";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

ProductQuery parse_product_query(const http::Request& req, const Context& ctx) {
  ProductQuery pq;
  if (auto sort = text_param(req, "sort", 32)) {
    pq.sort = nullptr;
    for (const auto& s : kSorts) {
      if (s.name == *sort) pq.sort = &s;
    }
    if (!pq.sort) {
      throw invalid_parameter("sort", "must be one of price, -price, name, -name, created_at, "
                                      "-created_at");
    }
  }
  pq.limit = limit_param(req);
  pq.category_id = uuid_param(req, "category_id");
  pq.min_price = money_param(req, "min_price", ctx.exponent);
  pq.max_price = money_param(req, "max_price", ctx.exponent);
  pq.in_stock = bool_param(req, "in_stock");
  if (auto q = text_param(req, "q", 256)) {
    if (auto t = trim(std::move(*q)); !t.empty()) pq.text = std::move(t);
  }
  if (auto it = req.query.find("cursor"); it != req.query.end() && !it->second.empty()) {
    auto position = ctx.cursors.decode(cursor_scope(*pq.sort), it->second);
    if (!position || !valid_position(pq.sort->key, *position)) throw invalid_cursor();
    pq.cursor = it->second;
    pq.after = std::move(*position);
  }
  return pq;
}

// Every parameter that changes the answer, unambiguously (free text last).
std::string cache_key(const ProductQuery& pq) {
  std::string key = "products|";
  key.append(pq.sort->name).append("|").append(std::to_string(pq.limit)).append("|");
  key.append(pq.category_id.value_or("")).append("|");
  if (pq.min_price) key.append(std::to_string(*pq.min_price));
  key.append("|");
  if (pq.max_price) key.append(std::to_string(*pq.max_price));
  key.append("|");
  if (pq.in_stock) key.append(*pq.in_stock ? "1" : "0");
  key.append("|").append(pq.cursor.value_or("")).append("|");
  if (pq.text) key.append("q=").append(*pq.text);
  return key;
}

// One statement per combination of sort and filters present, so that each is planned for what
// it filters on. User input only ever arrives as parameters.
Statement product_list_statement(const ProductQuery& pq, std::vector<std::string>& params) {
  std::string name = "q_products_" + std::to_string(pq.sort - kSorts) + "_";
  std::string with, where = " WHERE NOT p.discontinued";
  auto param = [&](std::string value, const char* type) {
    params.push_back(std::move(value));
    return "$" + std::to_string(params.size()) + "::" + type;
  };
  if (pq.category_id) {
    name += 'c';
    // The category and all its descendants (UNION: a cycle in the tree cannot loop forever).
    with = "WITH RECURSIVE tree(id) AS (SELECT " + param(*pq.category_id, "uuid") +
           " UNION SELECT c.id FROM rm_categories c JOIN tree t ON c.parent_id = t.id) ";
    where += " AND p.category_id IN (SELECT id FROM tree)";
  }
  if (pq.min_price) {
    name += 'l';
    where += " AND p.price >= " + param(std::to_string(*pq.min_price), "bigint");
  }
  if (pq.max_price) {
    name += 'h';
    where += " AND p.price <= " + param(std::to_string(*pq.max_price), "bigint");
  }
  if (pq.in_stock) {
    name += *pq.in_stock ? 's' : 'o';
    where += *pq.in_stock ? " AND p.stock > 0" : " AND p.stock <= 0";
  }
  if (pq.text) {
    name += 'q';
    const auto words = param(*pq.text, "text");
    const auto pattern = param("%" + escape_like(*pq.text) + "%", "text");
    where += " AND (p.search @@ websearch_to_tsquery('simple', " + words + ") OR p.name ILIKE " +
             pattern + ")";
  }
  const char* column = sort_column(pq.sort->key);
  if (pq.after) {
    name += 'a';
    const auto key = param(pq.after->key, sort_type(pq.sort->key));
    const auto id = param(pq.after->id, "uuid");
    where += std::string(" AND (") + column + ", p.id) " + (pq.sort->descending ? "<" : ">") +
             " (" + key + ", " + id + ")";
  }
  const char* direction = pq.sort->descending ? " DESC" : "";
  const auto limit = param(std::to_string(pq.limit + 1), "int");  // one more: is there a next?
  return {std::move(name), with + "SELECT " + kProductColumns + " FROM rm_products p" + where +
                               " ORDER BY " + column + direction + ", p.id" + direction +
                               " LIMIT " + limit};
}

void write_product(json::Writer& w, const pqxx::row& r, const Context& ctx) {
  const auto stock = r[kStock].as<std::int64_t>();
  w.StartObject();
  w.Key("id");
  write_field(w, r[kId]);
  w.Key("name");
  write_field(w, r[kName]);
  w.Key("description");
  write_field(w, r[kDescription]);
  w.Key("price");
  w.String(format_money(r[kPrice].as<Minor>(), ctx.exponent));
  w.Key("currency");
  w.String(ctx.options.currency);
  w.Key("stock");
  w.Int64(stock);
  w.Key("in_stock");
  w.Bool(stock > 0);
  w.Key("category_id");
  write_field(w, r[kCategoryId]);
  w.Key("sku");
  write_field(w, r[kSku]);
  w.Key("created_at");
  write_field(w, r[kCreatedAt]);
  w.EndObject();
}

std::string sort_key_of(const pqxx::row& r, SortKey key) {
  switch (key) {
    case SortKey::kPrice:
      return r[kPrice].c_str();
    case SortKey::kName:
      return r[kName].c_str();
    case SortKey::kCreatedAt:
      break;
  }
  return r[kCreatedAt].c_str();
}

std::string render_product_list(Context& ctx, const ProductQuery& pq) {
  std::vector<std::string> params;
  const Statement statement = product_list_statement(pq, params);
  auto rows = ctx.db.run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    return run_statement(tx, statement, params);
  });
  const auto count = std::min<std::size_t>(rows.size(), static_cast<std::size_t>(pq.limit));
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (std::size_t i = 0; i < count; ++i) write_product(w, rows[i], ctx);
  w.EndArray();
  w.Key("next_cursor");
  if (rows.size() > count) {
    const auto last = rows[count - 1];
    w.String(ctx.cursors.encode(cursor_scope(*pq.sort),
                                {sort_key_of(last, pq.sort->key), last[kId].c_str()}));
  } else {
    w.Null();
  }
  w.EndObject();
  return out.str();
}

http::Response list_products(Context& ctx, const http::Request& req) {
  const ProductQuery pq = parse_product_query(req, ctx);
  const std::string key = cache_key(pq);
  return ctx.read(req, &key, [&] { return render_product_list(ctx, pq); });
}

http::Response get_product(Context& ctx, const http::Request& req) {
  const std::string& id = req.params.at("id");
  if (!is_uuid(id)) throw not_found("product");
  const std::string product_id = to_lower(id);
  const std::string key = "product|" + product_id;
  return ctx.read(req, &key, [&] {
    auto rows = ctx.db.run([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      return run_statement(tx, kProductById, {product_id});
    });
    if (rows.empty()) throw not_found("product");
    JsonOut out;
    write_product(out.w(), rows[0], ctx);
    return out.str();
  });
}

http::Response list_categories(Context& ctx, const http::Request& req) {
  static const std::string key = "categories";
  return ctx.read(req, &key, [&] {
    auto rows = ctx.db.run([&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      return run_statement(tx, kCategories, {});
    });
    JsonOut out;
    auto& w = out.w();
    w.StartObject();
    w.Key("items");
    w.StartArray();
    for (const auto& r : rows) {
      w.StartObject();
      w.Key("id");
      write_field(w, r[0]);
      w.Key("name");
      write_field(w, r[1]);
      w.Key("parent_id");
      write_field(w, r[2]);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return out.str();
  });
}

}  // namespace

void add_catalog_routes(http::Router& router, Context& ctx) {
  router.add("GET", "/api/products",
             [&ctx](http::Request& req) { return list_products(ctx, req); });
  router.add("GET", "/api/products/{id}",
             [&ctx](http::Request& req) { return get_product(ctx, req); });
  router.add("GET", "/api/categories",
             [&ctx](http::Request& req) { return list_categories(ctx, req); });
}

}  // namespace shop::query
