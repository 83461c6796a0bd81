#include "shop/projector/bulk.h"

#include <libpq-fe.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "shop/events/events.h"
#include "shop/projector/projector.h"

namespace shop::projector {

namespace ev = shop::events;

namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// --- values as the read-model statements turn them into column values ------------------------

// A UUID as PostgreSQL reads it (optional braces, upper or lower case, a hyphen allowed after any
// group of four digits) in its canonical text form, so that two spellings of one id are one key.
// Text that PostgreSQL would refuse is refused with its message.
std::string uuid(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto refuse = [&]() -> std::runtime_error {
    return std::runtime_error("invalid input syntax for type uuid: \"" + std::string(s) + "\"");
  };
  // Nearly always the canonical form already (the command side writes it).
  if (s.size() == 36) {
    bool canonical = true;
    for (std::size_t i = 0; i < 36 && canonical; ++i) {
      const char c = s[i];
      canonical = (i == 8 || i == 13 || i == 18 || i == 23)
                      ? c == '-'
                      : (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }
    if (canonical) return std::string(s);
  }
  std::string out;
  out.reserve(36);
  std::size_t i = 0;
  const bool braces = !s.empty() && s[0] == '{';
  if (braces) ++i;
  for (int byte = 0; byte < 16; ++byte) {
    if (i + 1 >= s.size()) throw refuse();
    const int hi = hex(s[i]), lo = hex(s[i + 1]);
    if (hi < 0 || lo < 0) throw refuse();
    out += kHex[hi];
    out += kHex[lo];
    if (byte == 3 || byte == 5 || byte == 7 || byte == 9) out += '-';
    i += 2;
    if (i < s.size() && s[i] == '-' && byte % 2 == 1 && byte < 15) ++i;
  }
  if (braces) {
    if (i >= s.size() || s[i] != '}') throw refuse();
    ++i;
  }
  if (i != s.size()) throw refuse();
  return out;
}

template <class F>
std::string json_text(F&& write) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  write(w);
  return {buf.GetString(), buf.GetSize()};
}

void put(json::Writer& w, const char* key, const std::string& value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

// text[] input: every element quoted, so that no element reads as NULL or needs other escaping.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : item) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

// --- the rows --------------------------------------------------------------------------------
// Every row remembers whether the table holds a version of it (stored) and whether it changed
// since the last flush (dirty). Timestamps are kept as text that PostgreSQL reads back as the
// same instant: an event's occurred_at, or the column as loaded.

struct User {
  std::optional<std::string> email;
  std::string name;
  std::string roles;  // text[] input, as text_array writes it or the column as loaded
  std::string created_at;
  std::optional<std::string> phone;
  bool stored = false, dirty = false;
};

struct NewCategory {
  std::string id, name;
  std::optional<std::string> parent_id;
  std::string created_at;
};

struct Product {
  std::string name, description, sku, category_id;
  std::int64_t price = 0, stock = 0;
  bool discontinued = false;
  std::string created_at, updated_at;
  std::int64_t name_position = 0, price_position = 0;
  bool stored = false, dirty = false;
};

struct CartLine {
  std::string name;
  std::int64_t unit_price = 0, quantity = 0;
  std::string added_at;
  std::int64_t name_position = 0, price_position = 0;
  bool stored = false, dirty = false;
};

struct Order {
  std::string order_number, user_id, status;
  std::int64_t total = 0;
  std::string currency, items, status_history;   // jsonb as text
  std::optional<std::string> payment, shipment;  // jsonb as text
  std::string created_at, updated_at;
  std::int64_t updated_position = 0;
  bool stored = false, dirty = false;
};

struct Payment {
  std::string order_id, user_id, status;
  std::int64_t amount = 0;
  std::string currency, provider;
  std::int64_t initiated_position = 0, updated_position = 0;
  std::string created_at, updated_at;
  bool stored = false, dirty = false;
};

struct Session {
  std::string user_id, started_at;
  std::optional<std::string> refreshed_at;
  std::int64_t refresh_count = 0;
  std::string expires_at;
  std::optional<std::string> revoked_at, revoke_reason;
  bool stored = false, dirty = false;
};

using LineKey = std::pair<std::string, std::string>;  // user id, product id

// An event as the builder folds it: its place in the global order, its time as the projector
// receives it (RecordedEvent::occurred_at), and its payload decoded.
struct StoredEvent {
  std::int64_t position = 0;
  std::uint64_t tx = 0;
  std::string type, occurred_at;
  ev::Event event;
};

template <class Row, class Key>
void touch(Row& row, const Key& key, std::vector<Key>& dirty) {
  if (!row.dirty) {
    row.dirty = true;
    dirty.push_back(key);
  }
}

// The read models of one schema, in memory: what the SQL handlers of projector.cpp would leave in
// the tables after the same events, statement for statement.
class Model {
 public:
  void apply(const StoredEvent& e) {
    const ev::Event& event = e.event;
    const std::string& at = e.occurred_at;
    const std::int64_t pos = e.position;
    std::visit(
        Overloaded{
            [&](const ev::UserRegistered& x) {
              auto id = uuid(x.user_id);
              if (users_.contains(id)) return;
              User row{
                  .email = x.email, .name = x.name, .roles = text_array(x.roles), .created_at = at};
              auto& stored = users_.emplace(id, std::move(row)).first->second;
              touch(stored, id, dirty_users_);
            },
            [&](const ev::UserProfileChanged& x) {
              with_user(x.user_id, [&](User& u) {
                if (x.name) u.name = *x.name;
                if (x.phone_removed) {
                  u.phone.reset();
                } else if (x.phone) {
                  u.phone = x.phone;
                }
              });
            },
            [](const ev::UserPasswordChanged&) {},
            [&](const ev::UserRolesChanged& x) {
              with_user(x.user_id, [&](User& u) { u.roles = text_array(x.roles); });
            },
            [&](const ev::SessionStarted& x) {
              auto id = uuid(x.session_id);
              if (sessions_.contains(id)) return;
              Session row{.user_id = uuid(x.user_id), .started_at = at, .expires_at = x.expires_at};
              auto& stored = sessions_.emplace(id, std::move(row)).first->second;
              touch(stored, id, dirty_sessions_);
            },
            [&](const ev::RefreshTokenRotated& x) {
              auto id = uuid(x.session_id);
              auto it = sessions_.find(id);
              if (it == sessions_.end()) return;
              it->second.refreshed_at = at;
              it->second.refresh_count += 1;
              it->second.expires_at = x.expires_at;
              touch(it->second, id, dirty_sessions_);
            },
            [&](const ev::SessionRevoked& x) {
              auto id = uuid(x.session_id);
              auto it = sessions_.find(id);
              if (it == sessions_.end() || it->second.revoked_at) return;
              it->second.revoked_at = at;
              it->second.revoke_reason = x.reason;
              touch(it->second, id, dirty_sessions_);
            },
            [&](const ev::CategoryCreated& x) {
              auto id = uuid(x.category_id);
              std::optional<std::string> parent;
              if (x.parent_id && !x.parent_id->empty()) parent = uuid(*x.parent_id);
              if (categories_.insert(id).second) {
                new_categories_.push_back({std::move(id), x.name, std::move(parent), at});
              }
            },
            [&](const ev::ProductCreated& x) {
              auto id = uuid(x.product_id);
              auto category = uuid(x.category_id);
              if (products_.contains(id)) return;
              Product p;
              p.name = x.name;
              p.description = x.description;
              p.sku = x.sku;
              p.category_id = std::move(category);
              p.price = x.price;
              p.stock = x.stock;
              p.created_at = p.updated_at = at;
              p.name_position = p.price_position = pos;
              auto& row = products_.emplace(id, std::move(p)).first->second;
              touch(row, id, dirty_products_);
            },
            [&](const ev::ProductUpdated& x) { product_updated(x, at, pos); },
            [&](const ev::ProductDiscontinued& x) {
              with_product(x.product_id, at, [](Product& p) { p.discontinued = true; });
            },
            [&](const ev::StockAdjusted& x) {
              with_product(x.product_id, at, [&](Product& p) { p.stock = x.stock_after; });
            },
            [&](const ev::StockReserved& x) {
              with_product(x.product_id, at, [&](Product& p) { p.stock = x.stock_after; });
            },
            [&](const ev::StockReleased& x) {
              with_product(x.product_id, at, [&](Product& p) { p.stock = x.stock_after; });
            },
            [&](const ev::CartItemAdded& x) { cart_item_added(x, at, pos); },
            [&](const ev::CartItemQuantityChanged& x) {
              LineKey key{uuid(x.user_id), uuid(x.product_id)};
              if (auto* line = find_line(key)) {
                line->quantity = x.quantity;
                touch(*line, key, dirty_lines_);
              }
            },
            [&](const ev::CartItemRemoved& x) {
              remove_line({uuid(x.user_id), uuid(x.product_id)});
            },
            [&](const ev::CartCheckedOut& x) {
              const auto user = uuid(x.user_id);
              auto it = carts_.find(user);
              if (it == carts_.end()) return;
              std::vector<std::string> products;
              for (const auto& [product, line] : it->second) products.push_back(product);
              for (const auto& product : products) remove_line({user, product});
            },
            [&](const ev::OrderPlaced& x) { order_placed(x, at, pos); },
            [&](const ev::OrderCancelled& x) { order_status(x.order_id, "cancelled", at, pos); },
            [&](const ev::OrderPaid& x) { order_status(x.order_id, "paid", at, pos); },
            [&](const ev::OrderShipped& x) {
              const auto id = order_status(x.order_id, "shipped", at, pos);
              auto it = orders_.find(id);
              if (it == orders_.end()) return;
              it->second.shipment = json_text([&](json::Writer& w) {
                w.StartObject();
                put(w, "carrier", x.carrier);
                put(w, "tracking_number", x.tracking_number);
                put(w, "shipped_at", at);
                w.EndObject();
              });
              touch(it->second, id, dirty_orders_);
            },
            [&](const ev::OrderDelivered& x) { order_status(x.order_id, "delivered", at, pos); },
            [&](const ev::PaymentInitiated& x) {
              auto id = uuid(x.payment_id);
              auto order = uuid(x.order_id);
              auto user = uuid(x.user_id);
              if (!payments_.contains(id)) {
                Payment p;
                p.order_id = order;
                p.user_id = std::move(user);
                p.status = "initiated";
                p.amount = x.amount;
                p.currency = x.currency;
                p.provider = x.provider;
                p.initiated_position = p.updated_position = pos;
                p.created_at = p.updated_at = at;
                auto& row = payments_.emplace(id, std::move(p)).first->second;
                touch(row, id, dirty_payments_);
                order_payments_[order].push_back(id);
              }
              order_payment(order, at, pos);
            },
            [&](const ev::PaymentCaptured& x) {
              payment_status(x.payment_id, x.order_id, "captured", at, pos);
            },
            [&](const ev::PaymentFailed& x) {
              payment_status(x.payment_id, x.order_id, "failed", at, pos);
            },
        },
        event);
  }

  // Loads the rows of the schema's tables (their state at the checkpoint).
  void load(pqxx::transaction_base& tx, const std::string& schema);

  // Writes every row added or changed since the last flush, and deletes the cart lines removed,
  // in tx. The rows count as stored afterwards: a failed flush ends the build.
  void flush(pqxx::transaction_base& tx, const std::string& schema);

 private:
  template <class F>
  void with_user(const std::string& user_id, F&& change) {
    const auto id = uuid(user_id);
    auto it = users_.find(id);
    if (it == users_.end()) return;
    change(it->second);
    touch(it->second, id, dirty_users_);
  }

  template <class F>
  void with_product(const std::string& product_id, const std::string& at, F&& change) {
    const auto id = uuid(product_id);
    auto it = products_.find(id);
    if (it == products_.end()) return;
    change(it->second);
    it->second.updated_at = at;
    touch(it->second, id, dirty_products_);
  }

  void product_updated(const ev::ProductUpdated& x, const std::string& at, std::int64_t pos) {
    const auto id = uuid(x.product_id);
    std::optional<std::string> category;
    if (x.category_id) category = uuid(*x.category_id);
    if (auto it = products_.find(id); it != products_.end()) {
      Product& p = it->second;
      if (x.name) p.name = *x.name;
      if (x.description) p.description = *x.description;
      if (x.sku) p.sku = *x.sku;
      if (category) p.category_id = *category;
      if (x.price) p.price = *x.price;
      p.updated_at = at;
      if (x.name) p.name_position = pos;
      if (x.price) p.price_position = pos;
      touch(p, id, dirty_products_);
    }
    if (!x.name && !x.price) return;
    // The product's cart lines take the new name and price unless their own are newer.
    auto users = product_carts_.find(id);
    if (users == product_carts_.end()) return;
    for (const auto& user : users->second) {
      LineKey key{user, id};
      CartLine* line = find_line(key);
      if (!line) continue;
      bool changed = false;
      if (x.name && line->name_position < pos) {
        line->name = *x.name;
        line->name_position = pos;
        changed = true;
      }
      if (x.price && line->price_position < pos) {
        line->unit_price = *x.price;
        line->price_position = pos;
        changed = true;
      }
      if (changed) touch(*line, key, dirty_lines_);
    }
  }

  void cart_item_added(const ev::CartItemAdded& x, const std::string& at, std::int64_t pos) {
    LineKey key{uuid(x.user_id), uuid(x.product_id)};
    // The snapshot of the event, unless the product has a newer name or price.
    std::string name = x.name;
    std::int64_t price = x.unit_price, name_position = pos, price_position = pos;
    if (auto it = products_.find(key.second); it != products_.end()) {
      const Product& p = it->second;
      if (p.name_position > pos) name = p.name;
      if (p.price_position > pos) price = p.price;
      name_position = std::max(pos, p.name_position);
      price_position = std::max(pos, p.price_position);
    }
    if (CartLine* line = find_line(key)) {
      if (!(line->name_position > name_position)) line->name = std::move(name);
      line->name_position = std::max(line->name_position, name_position);
      if (!(line->price_position > price_position)) line->unit_price = price;
      line->price_position = std::max(line->price_position, price_position);
      line->quantity = x.line_quantity;
      touch(*line, key, dirty_lines_);
      return;
    }
    CartLine line;
    line.name = std::move(name);
    line.unit_price = price;
    line.quantity = x.line_quantity;
    line.added_at = at;
    line.name_position = name_position;
    line.price_position = price_position;
    auto& row = carts_[key.first].emplace(key.second, std::move(line)).first->second;
    product_carts_[key.second].insert(key.first);
    touch(row, key, dirty_lines_);
  }

  CartLine* find_line(const LineKey& key) {
    auto cart = carts_.find(key.first);
    if (cart == carts_.end()) return nullptr;
    auto line = cart->second.find(key.second);
    return line == cart->second.end() ? nullptr : &line->second;
  }

  void remove_line(const LineKey& key) {
    auto cart = carts_.find(key.first);
    if (cart == carts_.end()) return;
    auto line = cart->second.find(key.second);
    if (line == cart->second.end()) return;
    if (line->second.stored) removed_lines_.push_back(key);
    cart->second.erase(line);
    if (cart->second.empty()) carts_.erase(cart);
    if (auto users = product_carts_.find(key.second); users != product_carts_.end()) {
      users->second.erase(key.first);
      if (users->second.empty()) product_carts_.erase(users);
    }
  }

  // The order's latest payment attempt (greatest initiated position) as the order shows it, and
  // the attempt changed last (greatest updated position).
  std::optional<std::string> latest_payment(const std::string& order_id) const {
    const Payment* latest = nullptr;
    const std::string* latest_id = nullptr;
    if (auto ids = order_payments_.find(order_id); ids != order_payments_.end()) {
      for (const auto& id : ids->second) {
        const Payment& p = payments_.at(id);
        if (!latest || p.initiated_position > latest->initiated_position) {
          latest = &p;
          latest_id = &id;
        }
      }
    }
    if (!latest) return std::nullopt;
    return json_text([&](json::Writer& w) {
      w.StartObject();
      put(w, "payment_id", *latest_id);
      put(w, "status", latest->status);
      w.Key("amount");
      w.Int64(latest->amount);
      put(w, "provider", latest->provider);
      w.EndObject();
    });
  }
  const Payment* last_changed_payment(const std::string& order_id) const {
    const Payment* last = nullptr;
    if (auto ids = order_payments_.find(order_id); ids != order_payments_.end()) {
      for (const auto& id : ids->second) {
        const Payment& p = payments_.at(id);
        if (!last || p.updated_position > last->updated_position) last = &p;
      }
    }
    return last;
  }

  void order_placed(const ev::OrderPlaced& x, const std::string& at, std::int64_t pos) {
    auto id = uuid(x.order_id);
    auto user = uuid(x.user_id);
    if (orders_.contains(id)) return;
    Order o;
    o.order_number = x.order_number;
    o.user_id = std::move(user);
    o.status = "pending";
    o.total = x.total;
    o.currency = x.currency;
    o.items = json_text([&](json::Writer& w) { codec::write(w, x.lines); });
    o.status_history = json_text([&](json::Writer& w) {
      w.StartArray();
      w.StartObject();
      put(w, "status", o.status);
      put(w, "at", at);
      w.EndObject();
      w.EndArray();
    });
    // Payments of the order that arrived first are taken into the new row.
    o.payment = latest_payment(id);
    o.created_at = at;
    o.updated_at = at;
    o.updated_position = pos;
    if (const Payment* lp = last_changed_payment(id)) {
      if (lp->updated_position > pos) o.updated_at = lp->updated_at;
      o.updated_position = std::max(pos, lp->updated_position);
    }
    auto& row = orders_.emplace(id, std::move(o)).first->second;
    touch(row, id, dirty_orders_);
  }

  // Returns the order id in its canonical form.
  std::string order_status(const std::string& order_id, const char* status, const std::string& at,
                           std::int64_t pos) {
    auto id = uuid(order_id);
    auto it = orders_.find(id);
    if (it == orders_.end()) return id;
    Order& o = it->second;
    o.status = status;
    const auto entry = json_text([&](json::Writer& w) {
      w.StartObject();
      put(w, "status", o.status);
      put(w, "at", at);
      w.EndObject();
    });
    // status_history || jsonb_build_array(entry): the history is a JSON array (as PostgreSQL
    // prints it, or as written here), so the entry goes before its closing bracket.
    std::string& h = o.status_history;
    if (h.size() < 2 || h.front() != '[' || h.back() != ']') {
      throw std::runtime_error("status_history of order " + id + " is not a JSON array");
    }
    h.pop_back();
    if (h.find_first_not_of(" \t\r\n", 1) != std::string::npos) h += ", ";
    h += entry;
    h += ']';
    if (o.updated_position < pos) o.updated_at = at;
    o.updated_position = std::max(o.updated_position, pos);
    touch(o, id, dirty_orders_);
    return id;
  }

  // The order's copy of its latest payment, after a payment event.
  void order_payment(const std::string& order_id, const std::string& at, std::int64_t pos) {
    auto it = orders_.find(order_id);
    if (it == orders_.end()) return;
    Order& o = it->second;
    o.payment = latest_payment(order_id);
    if (o.updated_position < pos) o.updated_at = at;
    o.updated_position = std::max(o.updated_position, pos);
    touch(o, order_id, dirty_orders_);
  }

  void payment_status(const std::string& payment_id, const std::string& order_id,
                      const char* status, const std::string& at, std::int64_t pos) {
    const auto id = uuid(payment_id);
    const auto order = uuid(order_id);
    if (auto it = payments_.find(id); it != payments_.end() && it->second.updated_position < pos) {
      Payment& p = it->second;
      p.status = status;
      p.updated_at = at;
      p.updated_position = pos;
      touch(p, id, dirty_payments_);
    }
    order_payment(order, at, pos);
  }

  std::unordered_map<std::string, User> users_;
  std::vector<std::string> dirty_users_;
  std::unordered_set<std::string> categories_;
  std::vector<NewCategory> new_categories_;
  std::unordered_map<std::string, Product> products_;
  std::vector<std::string> dirty_products_;
  std::unordered_map<std::string, std::map<std::string, CartLine>> carts_;  // user -> product
  std::unordered_map<std::string, std::unordered_set<std::string>> product_carts_;  // -> users
  std::vector<LineKey> dirty_lines_, removed_lines_;
  std::unordered_map<std::string, Order> orders_;
  std::vector<std::string> dirty_orders_;
  std::unordered_map<std::string, Payment> payments_;
  std::vector<std::string> dirty_payments_;
  std::unordered_map<std::string, std::vector<std::string>> order_payments_;
  std::unordered_map<std::string, Session> sessions_;
  std::vector<std::string> dirty_sessions_;
};

std::string table(pqxx::transaction_base& tx, const std::string& schema, const char* name) {
  return tx.quote_name(schema) + "." + name;
}

// A uuid[] literal of canonical ids (no quoting needed).
template <class Range, class Get>
std::string uuid_array(const Range& keys, Get get) {
  std::string out = "{";
  for (const auto& k : keys) {
    if (out.size() > 1) out += ',';
    out += get(k);
  }
  return out + "}";
}

std::optional<std::string> nullable(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return std::string(f.c_str(), f.size());
}

void Model::load(pqxx::transaction_base& tx, const std::string& schema) {
  auto t = [&](const char* name) { return table(tx, schema, name); };
  for (const auto& r :
       tx.exec("SELECT id::text, email, name, roles::text, created_at::text, phone FROM " +
               t("rm_users"))) {
    User u;
    u.email = nullable(r[1]);
    u.name = r[2].c_str();
    u.roles = r[3].c_str();
    u.created_at = r[4].c_str();
    u.phone = nullable(r[5]);
    u.stored = true;
    users_.emplace(r[0].c_str(), std::move(u));
  }
  for (const auto& r : tx.exec("SELECT id::text FROM " + t("rm_categories"))) {
    categories_.insert(r[0].c_str());
  }
  for (const auto& r :
       tx.exec("SELECT id::text, name, description, sku, category_id::text, price, stock, "
               "discontinued, created_at::text, updated_at::text, name_position, price_position "
               "FROM " +
               t("rm_products"))) {
    Product p;
    p.name = r[1].c_str();
    p.description = r[2].c_str();
    p.sku = r[3].c_str();
    p.category_id = r[4].c_str();
    p.price = r[5].as<std::int64_t>();
    p.stock = r[6].as<std::int64_t>();
    p.discontinued = r[7].as<bool>();
    p.created_at = r[8].c_str();
    p.updated_at = r[9].c_str();
    p.name_position = r[10].as<std::int64_t>();
    p.price_position = r[11].as<std::int64_t>();
    p.stored = true;
    products_.emplace(r[0].c_str(), std::move(p));
  }
  for (const auto& r :
       tx.exec("SELECT user_id::text, product_id::text, name, unit_price, quantity, "
               "added_at::text, name_position, price_position FROM " +
               t("rm_cart_items"))) {
    CartLine line;
    line.name = r[2].c_str();
    line.unit_price = r[3].as<std::int64_t>();
    line.quantity = r[4].as<std::int64_t>();
    line.added_at = r[5].c_str();
    line.name_position = r[6].as<std::int64_t>();
    line.price_position = r[7].as<std::int64_t>();
    line.stored = true;
    carts_[r[0].c_str()].emplace(r[1].c_str(), std::move(line));
    product_carts_[r[1].c_str()].insert(r[0].c_str());
  }
  for (const auto& r :
       tx.exec("SELECT id::text, order_number, user_id::text, status, total, currency, "
               "items::text, status_history::text, payment::text, shipment::text, "
               "created_at::text, updated_at::text, updated_position FROM " +
               t("rm_orders"))) {
    Order o;
    o.order_number = r[1].c_str();
    o.user_id = r[2].c_str();
    o.status = r[3].c_str();
    o.total = r[4].as<std::int64_t>();
    o.currency = r[5].c_str();
    o.items = r[6].c_str();
    o.status_history = r[7].c_str();
    o.payment = nullable(r[8]);
    o.shipment = nullable(r[9]);
    o.created_at = r[10].c_str();
    o.updated_at = r[11].c_str();
    o.updated_position = r[12].as<std::int64_t>();
    o.stored = true;
    orders_.emplace(r[0].c_str(), std::move(o));
  }
  for (const auto& r :
       tx.exec("SELECT payment_id::text, order_id::text, user_id::text, status, amount, "
               "currency, provider, initiated_position, updated_position, created_at::text, "
               "updated_at::text FROM " +
               t("rm_payments"))) {
    Payment p;
    p.order_id = r[1].c_str();
    p.user_id = r[2].c_str();
    p.status = r[3].c_str();
    p.amount = r[4].as<std::int64_t>();
    p.currency = r[5].c_str();
    p.provider = r[6].c_str();
    p.initiated_position = r[7].as<std::int64_t>();
    p.updated_position = r[8].as<std::int64_t>();
    p.created_at = r[9].c_str();
    p.updated_at = r[10].c_str();
    p.stored = true;
    order_payments_[p.order_id].push_back(r[0].c_str());
    payments_.emplace(r[0].c_str(), std::move(p));
  }
  for (const auto& r :
       tx.exec("SELECT id::text, user_id::text, started_at::text, refreshed_at::text, "
               "refresh_count, expires_at::text, revoked_at::text, revoke_reason FROM " +
               t("rm_sessions"))) {
    Session row;
    row.user_id = r[1].c_str();
    row.started_at = r[2].c_str();
    row.refreshed_at = nullable(r[3]);
    row.refresh_count = r[4].as<std::int64_t>();
    row.expires_at = r[5].c_str();
    row.revoked_at = nullable(r[6]);
    row.revoke_reason = nullable(r[7]);
    row.stored = true;
    sessions_.emplace(r[0].c_str(), std::move(row));
  }
}

void Model::flush(pqxx::transaction_base& tx, const std::string& schema) {
  auto t = [&](const char* name) { return table(tx, schema, name); };
  // Rows the tables hold an older version of are deleted, then written again with the new ones.
  auto delete_stored = [&](const char* name, const char* key, const auto& dirty, const auto& rows) {
    std::vector<std::string> ids;
    for (const auto& id : dirty) {
      if (auto it = rows.find(id); it != rows.end() && it->second.stored) ids.push_back(id);
    }
    if (ids.empty()) return;
    tx.exec_params("DELETE FROM " + t(name) + " WHERE " + key + " = ANY ($1::uuid[])",
                   uuid_array(ids, [](const std::string& id) { return id; }));
  };

  if (!dirty_users_.empty()) {
    delete_stored("rm_users", "id", dirty_users_, users_);
    pqxx::stream_to s(
        tx, t("rm_users"),
        std::vector<std::string>{"id", "email", "name", "roles", "created_at", "phone"});
    for (const auto& id : dirty_users_) {
      User& u = users_.at(id);
      if (!u.dirty) continue;  // listed twice
      s << std::tie(id, u.email, u.name, u.roles, u.created_at, u.phone);
      u.dirty = false;
      u.stored = true;
    }
    s.complete();
    dirty_users_.clear();
  }
  if (!new_categories_.empty()) {
    pqxx::stream_to s(tx, t("rm_categories"),
                      std::vector<std::string>{"id", "name", "parent_id", "created_at"});
    for (const auto& c : new_categories_) s << std::tie(c.id, c.name, c.parent_id, c.created_at);
    s.complete();
    new_categories_.clear();
  }

  if (!dirty_products_.empty()) {
    delete_stored("rm_products", "id", dirty_products_, products_);
    pqxx::stream_to s(tx, t("rm_products"),
                      std::vector<std::string>{"id", "name", "description", "sku", "category_id",
                                               "price", "stock", "discontinued", "created_at",
                                               "updated_at", "name_position", "price_position"});
    for (const auto& id : dirty_products_) {
      Product& p = products_.at(id);
      if (!p.dirty) continue;  // listed twice
      s << std::tie(id, p.name, p.description, p.sku, p.category_id, p.price, p.stock,
                    p.discontinued, p.created_at, p.updated_at, p.name_position, p.price_position);
      p.dirty = false;
      p.stored = true;
    }
    s.complete();
    dirty_products_.clear();
  }

  if (!dirty_lines_.empty() || !removed_lines_.empty()) {
    std::vector<LineKey> gone = removed_lines_;
    for (const auto& key : dirty_lines_) {
      if (const CartLine* line = find_line(key); line && line->stored) gone.push_back(key);
    }
    if (!gone.empty()) {
      tx.exec_params("DELETE FROM " + t("rm_cart_items") +
                         " c USING unnest($1::uuid[], $2::uuid[]) AS k(user_id, product_id) "
                         "WHERE c.user_id = k.user_id AND c.product_id = k.product_id",
                     uuid_array(gone, [](const LineKey& k) { return k.first; }),
                     uuid_array(gone, [](const LineKey& k) { return k.second; }));
    }
    if (!dirty_lines_.empty()) {
      pqxx::stream_to s(
          tx, t("rm_cart_items"),
          std::vector<std::string>{"user_id", "product_id", "name", "unit_price", "quantity",
                                   "added_at", "name_position", "price_position"});
      for (const auto& key : dirty_lines_) {
        CartLine* line = find_line(key);
        if (!line || !line->dirty) continue;  // removed since, or listed twice
        s << std::tie(key.first, key.second, line->name, line->unit_price, line->quantity,
                      line->added_at, line->name_position, line->price_position);
        line->dirty = false;
        line->stored = true;
      }
      s.complete();
    }
    dirty_lines_.clear();
    removed_lines_.clear();
  }

  if (!dirty_orders_.empty()) {
    delete_stored("rm_orders", "id", dirty_orders_, orders_);
    pqxx::stream_to s(
        tx, t("rm_orders"),
        std::vector<std::string>{"id", "order_number", "user_id", "status", "total", "currency",
                                 "items", "status_history", "payment", "shipment", "created_at",
                                 "updated_at", "updated_position"});
    for (const auto& id : dirty_orders_) {
      Order& o = orders_.at(id);
      if (!o.dirty) continue;
      s << std::tie(id, o.order_number, o.user_id, o.status, o.total, o.currency, o.items,
                    o.status_history, o.payment, o.shipment, o.created_at, o.updated_at,
                    o.updated_position);
      o.dirty = false;
      o.stored = true;
    }
    s.complete();
    dirty_orders_.clear();
  }

  if (!dirty_payments_.empty()) {
    delete_stored("rm_payments", "payment_id", dirty_payments_, payments_);
    pqxx::stream_to s(
        tx, t("rm_payments"),
        std::vector<std::string>{"payment_id", "order_id", "user_id", "status", "amount",
                                 "currency", "provider", "initiated_position", "updated_position",
                                 "created_at", "updated_at"});
    for (const auto& id : dirty_payments_) {
      Payment& p = payments_.at(id);
      if (!p.dirty) continue;
      s << std::tie(id, p.order_id, p.user_id, p.status, p.amount, p.currency, p.provider,
                    p.initiated_position, p.updated_position, p.created_at, p.updated_at);
      p.dirty = false;
      p.stored = true;
    }
    s.complete();
    dirty_payments_.clear();
  }

  if (!dirty_sessions_.empty()) {
    delete_stored("rm_sessions", "id", dirty_sessions_, sessions_);
    pqxx::stream_to s(
        tx, t("rm_sessions"),
        std::vector<std::string>{"id", "user_id", "started_at", "refreshed_at", "refresh_count",
                                 "expires_at", "revoked_at", "revoke_reason"});
    for (const auto& id : dirty_sessions_) {
      Session& row = sessions_.at(id);
      if (!row.dirty) continue;
      s << std::tie(id, row.user_id, row.started_at, row.refreshed_at, row.refresh_count,
                    row.expires_at, row.revoked_at, row.revoke_reason);
      row.dirty = false;
      row.stored = true;
    }
    s.complete();
    dirty_sessions_.clear();
  }
}

// --- the store -------------------------------------------------------------------------------

std::uint64_t xid(const std::string& text) {
  return std::stoull(text);
}

bool at_or_after(const infra::GlobalCheckpoint& a, const infra::GlobalCheckpoint& b) {
  return std::pair(xid(a.tx), a.position) >= std::pair(xid(b.tx), b.position);
}

void set_up_session(pqxx::connection& c) {
  // Timestamps are loaded as text and written back: ISO in UTC reads back as the same instant.
  pqxx::nontransaction(c).exec("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'");
}

// The last event final now (below the horizon), if any. Two statements, two snapshots, as in
// infra::read_global: the events are read with a snapshot at least as new as the horizon, and
// nothing at or before the head in the global order can appear later.
std::optional<infra::GlobalCheckpoint> read_head(pqxx::connection& c) {
  pqxx::nontransaction tx(c);
  const std::string horizon =
      tx.exec("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0][0].c_str();
  // Ordered by the xid8 column itself (the text copy has a name of its own).
  auto r = tx.exec_params(
      "SELECT e.tx_id::text AS tx_text, e.position FROM events e WHERE e.tx_id < $1::xid8 "
      "ORDER BY e.tx_id DESC, e.position DESC LIMIT 1",
      horizon);
  if (r.empty()) return std::nullopt;
  return infra::GlobalCheckpoint{r[0][0].c_str(), r[0][1].as<std::int64_t>()};
}

struct PgConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnCloser>;
using PgResult = std::unique_ptr<PGresult, PgResultCloser>;

std::string pg_error(PGconn* c) {
  std::string s = PQerrorMessage(c);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return "database: " + s;
}

std::uint64_t big_endian(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// The rows of a binary COPY of (position, tx_id, type, schema_version, occurred_at text, data),
// fed in pieces cut anywhere (the server sends a row per message, the first with the header).
class CopyRows {
 public:
  static constexpr int kColumns = 6;
  struct Field {
    const char* data;
    std::int32_t size;
  };

  // Calls on_row(fields) for every complete row of what was fed so far.
  template <class F>
  void feed(const char* data, std::size_t size, F&& on_row) {
    if (ended_) throw std::runtime_error("bulk_build: data after the end of the COPY");
    buf_.append(data, size);
    std::size_t at = 0;
    const std::size_t n = buf_.size();
    const char* b = buf_.data();
    if (!header_) {
      static constexpr char kSignature[] = "PGCOPY\n\377\r\n";  // and a zero byte
      if (n < 19) return;
      if (std::memcmp(b, kSignature, 11) != 0) {
        throw std::runtime_error("bulk_build: not a binary COPY stream");
      }
      at = 19 + big_endian(b + 15, 4);  // after the flags and the header extension
      if (n < at) return;
      header_ = true;
    }
    for (;;) {
      if (n - at < 2) break;
      const auto count = static_cast<std::int16_t>(big_endian(b + at, 2));
      if (count == -1) {
        ended_ = true;
        at += 2;
        break;
      }
      if (count != kColumns) throw std::runtime_error("bulk_build: unexpected COPY row");
      std::size_t q = at + 2;
      Field fields[kColumns];
      bool complete = true;
      for (auto& f : fields) {
        if (n - q < 4) {
          complete = false;
          break;
        }
        f.size = static_cast<std::int32_t>(big_endian(b + q, 4));
        q += 4;
        if (f.size < 0) throw std::runtime_error("bulk_build: unexpected NULL in the COPY");
        if (n - q < static_cast<std::size_t>(f.size)) {
          complete = false;
          break;
        }
        f.data = b + q;
        q += static_cast<std::size_t>(f.size);
      }
      if (!complete) break;
      on_row(fields);
      at = q;
    }
    buf_.erase(0, at);
  }
  bool ended() const { return ended_; }

 private:
  std::string buf_;
  bool header_ = false, ended_ = false;
};

// Streams the events after `from` up to and including `head` in the global order: one binary
// COPY on a libpq connection of its own (no paging, no per-batch query, no text conversion of
// what the builder does not use), read and decoded in a thread of its own, handed over in
// batches. PostgreSQL produces the rows, this thread decodes them and the caller folds them, at
// the same time.
class EventStream {
 public:
  EventStream(std::string url, const infra::GlobalCheckpoint& from,
              const infra::GlobalCheckpoint& head, std::size_t batch_size)
      : url_(std::move(url)), batch_size_(batch_size) {
    auto number = [](const std::string& s) {
      if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
        throw std::runtime_error("bulk_build: not a transaction id: " + s);
      }
      return s;
    };
    // Both ends are at or below the horizon the head was read under: every event between them
    // is final, so one statement reads them all, in the order of the (tx_id, position) index.
    // occurred_at as infra::kEventColumns gives it (the projector's RecordedEvent::occurred_at).
    query_ =
        "COPY (SELECT e.position, e.tx_id, e.type, e.schema_version, "
        "to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), e.data "
        "FROM events e WHERE (e.tx_id, e.position) > ('" +
        number(from.tx) + "'::xid8, " + std::to_string(from.position) +
        ") AND (e.tx_id, e.position) <= ('" + number(head.tx) + "'::xid8, " +
        std::to_string(head.position) + ") ORDER BY e.tx_id, e.position) TO STDOUT (FORMAT binary)";
    thread_ = std::thread([this] { run(); });
  }
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;
  ~EventStream() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  // The next events, at most a batch; none once every event up to the head has been read.
  // Rethrows what stopped the reading, after the events read before it.
  std::vector<StoredEvent> next() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty() || done_; });
    if (ready_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return {};
    }
    auto batch = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return batch;
  }

 private:
  static constexpr std::size_t kBatchesAhead = 3;

  // Hands a batch over, waiting while enough are ahead. False when the reader is closing.
  bool hand_over(std::vector<StoredEvent>& batch) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return ready_.size() < kBatchesAhead || stop_; });
    if (stop_) return false;
    ready_.push_back(std::move(batch));
    batch.clear();
    batch.reserve(batch_size_);
    changed_.notify_all();
    return true;
  }

  void run() {
    std::vector<StoredEvent> batch;
    batch.reserve(batch_size_);
    try {
      read(batch);
    } catch (...) {
      // The events decoded before the failure first, then the failure.
      if (!batch.empty() && !hand_over(batch)) return;
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
      done_ = true;
      changed_.notify_all();
      return;
    }
    if (!batch.empty() && !hand_over(batch)) return;
    std::lock_guard lock(mutex_);
    done_ = true;
    changed_.notify_all();
  }

  void read(std::vector<StoredEvent>& batch) {
    // The URL may be a URI or key=value pairs (expand_dbname); the application name shows the
    // builder in pg_stat_activity unless the URL names another.
    const char* keys[] = {"dbname", "fallback_application_name", nullptr};
    const char* values[] = {url_.c_str(), "shop bulk_build", nullptr};
    PgConn conn(PQconnectdbParams(keys, values, 1));
    if (!conn) throw std::runtime_error("bulk_build: cannot connect to the database");
    PGconn* c = conn.get();
    if (PQstatus(c) != CONNECTION_OK) throw std::runtime_error(pg_error(c));
    PgResult started(PQexec(c, query_.c_str()));
    if (!started || PQresultStatus(started.get()) != PGRES_COPY_OUT) {
      throw std::runtime_error(pg_error(c));
    }
    CopyRows rows;
    bool closing = false;
    auto on_row = [&](const CopyRows::Field* f) {
      StoredEvent e;
      if (f[0].size != 8 || f[1].size != 8 || f[3].size != 4 || f[5].size < 1 ||
          f[5].data[0] != 1) {
        throw std::runtime_error("bulk_build: unexpected column in the COPY");
      }
      e.position = static_cast<std::int64_t>(big_endian(f[0].data, 8));
      e.tx = big_endian(f[1].data, 8);
      e.type.assign(f[2].data, static_cast<std::size_t>(f[2].size));
      const auto schema_version = static_cast<std::int32_t>(big_endian(f[3].data, 4));
      e.occurred_at.assign(f[4].data, static_cast<std::size_t>(f[4].size));
      try {
        e.event =
            ev::decode(e.type, schema_version,
                       std::string_view(f[5].data + 1, static_cast<std::size_t>(f[5].size) - 1));
      } catch (const std::exception& error) {
        throw std::runtime_error("bulk_build: event at position " + std::to_string(e.position) +
                                 " (" + e.type + "): " + error.what());
      }
      batch.push_back(std::move(e));
      if (batch.size() >= batch_size_ && !hand_over(batch)) closing = true;
    };
    while (!closing) {
      char* raw = nullptr;
      const int n = PQgetCopyData(c, &raw, 0);
      if (n == -1) break;  // the COPY is over; its result says how it ended
      if (n < 0) throw std::runtime_error(pg_error(c));
      std::unique_ptr<char, void (*)(void*)> piece(raw, PQfreemem);
      rows.feed(raw, static_cast<std::size_t>(n), on_row);
    }
    if (closing) return;  // the connection closes with the COPY unfinished
    PgResult end(PQgetResult(c));
    if (!end || PQresultStatus(end.get()) != PGRES_COMMAND_OK)
      throw std::runtime_error(pg_error(c));
    while (PgResult more{PQgetResult(c)}) {
    }
    if (!rows.ended()) throw std::runtime_error("bulk_build: the COPY ended early");
  }

  std::string url_, query_;
  std::size_t batch_size_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<StoredEvent>> ready_;
  std::exception_ptr error_;
  bool done_ = false, stop_ = false;
  std::thread thread_;  // last: starts after everything it uses exists
};

}  // namespace

infra::GlobalCheckpoint bulk_build(const std::string& database_url, const std::string& schema,
                                   const BulkOptions& options,
                                   const std::function<void(const BulkProgress&)>& progress) {
  if (options.batch_size <= 0) throw std::invalid_argument("bulk_build: batch_size must be > 0");
  pqxx::connection conn(database_url);
  set_up_session(conn);
  // One builder of a schema's read models at a time: every flush takes this lock and checks that
  // the checkpoint is still the one this call started from or last wrote.
  const std::string lock_name = schema + "." + kCheckpointName;

  Model model;
  std::optional<infra::GlobalCheckpoint> stored;  // the checkpoint in the table
  std::int64_t stored_max_position = 0;
  {
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(conn);
    if (tx.exec_params("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema).empty()) {
      throw std::runtime_error("bulk_build: schema " + schema + " does not exist");
    }
    auto t = [&](const char* name) { return table(tx, schema, name); };
    if (auto r = tx.exec("SELECT consumer_group FROM " + t("rm_kafka_offsets") + " LIMIT 1");
        !r.empty()) {
      throw WrongSource("the read models in schema " + schema +
                        " are projected from Kafka (consumer group " + r[0][0].c_str() +
                        "); build them in an empty schema");
    }
    auto cp = tx.exec_params("SELECT last_tx::text, last_position, max_position FROM " +
                                 t("rm_checkpoints") + " WHERE name = $1",
                             kCheckpointName);
    if (!cp.empty()) {
      stored = infra::GlobalCheckpoint{cp[0][0].c_str(), cp[0][1].as<std::int64_t>()};
      stored_max_position = cp[0][2].as<std::int64_t>();
      model.load(tx, schema);
    } else {
      std::string any_rows = "SELECT ";
      for (const char* name : {"rm_users", "rm_categories", "rm_products", "rm_cart_items",
                               "rm_orders", "rm_payments", "rm_sessions"}) {
        if (any_rows.size() > 7) any_rows += " OR ";
        any_rows += "EXISTS (SELECT 1 FROM " + t(name) + ")";
      }
      if (tx.exec(any_rows)[0][0].as<bool>()) {
        throw std::runtime_error("bulk_build: the read models in schema " + schema +
                                 " have rows but no checkpoint; build them in empty tables");
      }
    }
    tx.commit();
  }

  infra::GlobalCheckpoint cp = stored.value_or(infra::GlobalCheckpoint{});
  const auto head = read_head(conn);
  if (!head || at_or_after(cp, *head)) return cp;

  std::int64_t folded = 0, since_flush = 0, max_position = stored_max_position;
  auto flush = [&] {
    pqxx::work tx(conn);
    tx.exec_params("SELECT pg_advisory_xact_lock(2, hashtext($1))", lock_name);
    auto r = tx.exec_params("SELECT last_tx::text, last_position FROM " +
                                table(tx, schema, "rm_checkpoints") + " WHERE name = $1",
                            kCheckpointName);
    const bool same = r.empty() ? !stored
                                : stored && stored->tx == r[0][0].c_str() &&
                                      stored->position == r[0][1].as<std::int64_t>();
    if (!same) {
      throw std::runtime_error("bulk_build: the checkpoint of schema " + schema +
                               " was changed by another process");
    }
    model.flush(tx, schema);
    tx.exec_params("INSERT INTO " + table(tx, schema, "rm_checkpoints") +
                       " AS c (name, last_tx, last_position, max_position, updated_at) "
                       "VALUES ($1, $2::xid8, $3, $4, now()) ON CONFLICT (name) DO UPDATE SET "
                       "last_tx = EXCLUDED.last_tx, last_position = EXCLUDED.last_position, "
                       "max_position = GREATEST(c.max_position, EXCLUDED.max_position), "
                       "updated_at = now()",
                   kCheckpointName, cp.tx, cp.position, max_position);
    tx.commit();
    stored = cp;
    since_flush = 0;
  };

  EventStream events(database_url, cp, *head, static_cast<std::size_t>(options.batch_size));
  for (bool reached = false; !reached;) {
    const auto batch = events.next();
    if (batch.empty()) {
      throw std::runtime_error("bulk_build: the event store ended before the event at position " +
                               std::to_string(head->position));
    }
    for (const auto& e : batch) {
      try {
        model.apply(e);
      } catch (const std::exception& error) {
        throw std::runtime_error("bulk_build: event at position " + std::to_string(e.position) +
                                 " (" + e.type + "): " + error.what());
      }
      max_position = std::max(max_position, e.position);
    }
    const auto n = static_cast<std::int64_t>(batch.size());
    folded += n;
    since_flush += n;
    cp = {std::to_string(batch.back().tx), batch.back().position};
    reached = at_or_after(cp, *head);
    if (progress) progress({folded, cp.position, head->position});
    if (reached || since_flush >= options.flush_every) flush();
  }
  return cp;
}

}  // namespace shop::projector
