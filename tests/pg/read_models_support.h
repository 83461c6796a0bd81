// Shared by the projector tests that compare read models built different ways (from the store,
// from Kafka, in shuffled orders): a storefront scenario that makes events of every stream
// category depend on one another, and a dump of every read-model table.
#pragma once

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <random>
#include <string>
#include <vector>

#include "shop/command/service.h"
#include "shop/events/types.h"

namespace shop::testing {

// The schema of the live version of the read models (rm_v1, rm_v2, ...: see infra/pg.h).
inline std::string live_read_models_schema(pqxx::connection_base& c) {
  pqxx::work tx(c);
  const auto r =
      tx.exec("SELECT schema_prefix || live_version FROM projections WHERE name = 'read_models'");
  return r[0][0].c_str();
}

inline std::string dump_read_models_in(pqxx::connection_base& c, const std::string& schema);

// Every read-model table of the live version except the projectors' own bookkeeping (checkpoint
// and Kafka offsets), each as one text: its rows as JSON objects with every column, ordered by
// primary key.
inline std::string dump_read_models(pqxx::connection_base& c) {
  return dump_read_models_in(c, live_read_models_schema(c));
}

// The same dump (same text) of the read-model tables in `schema`: a version of the read models
// (rm_v1, rm_v2, ...), or any schema holding tables of the same names.
inline std::string dump_read_models_in(pqxx::connection_base& c, const std::string& schema) {
  pqxx::work tx(c);
  std::string out;
  const auto tables = tx.exec_params(
      "SELECT c.relname, (SELECT string_agg(quote_ident(a.attname), ', ' "
      "                   ORDER BY array_position(i.indkey::int2[], a.attnum))"
      "                     FROM pg_index i JOIN pg_attribute a"
      "                       ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
      "                    WHERE i.indrelid = c.oid AND i.indisprimary)"
      "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
      " WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'rm\\_%'"
      "   AND c.relname NOT IN ('rm_checkpoints', 'rm_kafka_offsets')"
      " ORDER BY c.relname",
      schema);
  EXPECT_FALSE(tables.empty()) << "no read-model tables in schema " << schema;
  for (const auto& t : tables) {
    const std::string name = t[0].c_str();
    EXPECT_FALSE(t[1].is_null()) << name << " has no primary key";
    const std::string key = t[1].is_null() ? "1" : t[1].c_str();
    const auto rows = tx.exec("SELECT to_jsonb(t)::text FROM " + tx.quote_name(schema) + "." +
                              tx.quote_name(name) + " t ORDER BY " + key);
    out += "== " + name + " (" + std::to_string(rows.size()) + " rows)\n";
    for (const auto& r : rows) out += std::string(r[0].c_str()) + "\n";
  }
  return out;
}

// Empties every read-model table and the projectors' places, as before a rebuild.
inline void reset_read_models(pqxx::connection_base& c) {
  pqxx::work tx(c);
  tx.exec("SELECT projection_reset('read_models')");  // the live version's tables
  tx.commit();
}

// A random but reproducible storefront: categories, products, customers filling and changing
// carts, prices and names changed while products sit in carts, checkouts, payments that fail,
// succeed or come twice, cancellations, shipping, stock adjustments, a discontinued product;
// sessions started, refreshed, logged out and revoked on reuse; profiles, roles and passwords
// changed.
// Commands the domain refuses (an empty cart, an order no longer pending, ...) are skipped.
class Scenario {
 public:
  Scenario(command::CommandService& service, unsigned seed) : s_(service), rng_(seed) {}

  void setup(int users = 8, int products = 6) {
    const auto root = new_uuid(), child = new_uuid();
    s_.create_category({root, "Computers", std::nullopt}, ctx());
    s_.create_category({child, "Laptops", root}, ctx());
    for (int i = 0; i < products; ++i) {
      const auto id = new_uuid();
      s_.create_product({id, "Product " + std::to_string(i), "about " + std::to_string(i),
                         "SKU-" + id.substr(0, 8), i % 2 ? root : child,
                         1000 + 250 * static_cast<std::int64_t>(i), 500},
                        ctx());
      products_.push_back(id);
    }
    for (int i = 0; i < users; ++i) {
      auto u = s_.register_user("customer-" + new_uuid() + "@example.com", "long password",
                                "Customer " + std::to_string(i), {"customer"}, ctx());
      users_.push_back(u.id);
    }
  }

  // One random command; returns the position of its last event (0 when refused).
  std::int64_t step() {
    try {
      const unsigned r = pick(100);
      if (r < 25) return s_.add_cart_item(any(users_), any(products_), 1 + pick(3), ctx()).position;
      if (r < 30) return s_.change_cart_item(any(users_), any(products_), pick(4), ctx()).position;
      if (r < 33) return s_.remove_cart_item(any(users_), any(products_), ctx()).position;
      if (r < 45) {
        domain::UpdateProduct u;
        if (pick(3) != 0) u.price = 900 + 10 * static_cast<std::int64_t>(pick(100));
        if (pick(3) == 0) u.name = "Renamed " + std::to_string(pick(1000));
        if (pick(5) == 0) u.description = "new description";
        if (!u.price && !u.name && !u.description) u.price = 999;
        return s_.update_product(any(products_), u, std::nullopt, std::nullopt, ctx()).position;
      }
      if (r < 57) {
        const auto user = any(users_);
        auto o = s_.place_order(user, std::nullopt, ctx());
        orders_.push_back({o.order_id, user});
        return o.position;
      }
      if (orders_.empty()) return 0;
      const auto order = any(orders_);
      if (r < 70) {
        auto p = s_.start_payment(order.first, order.second, false, "sandbox", ctx());
        payments_.push_back(p.payment_id);
        return p.position;
      }
      if (r < 82) {
        if (payments_.empty()) return 0;
        const bool ok = pick(5) < 3;
        return s_.settle_payment(any(payments_), {ok, ok ? "" : "declined"}, ctx()).position;
      }
      if (r < 87) {
        return s_.cancel_order(order.first, order.second, false, "changed my mind", ctx()).position;
      }
      if (r < 91) {
        return s_.ship_order(order.first, {"UPS", "1Z" + std::to_string(pick(99999))}, ctx())
            .position;
      }
      if (r < 94) return s_.deliver_order(order.first, ctx()).position;
      if (r < 99) return s_.adjust_stock(any(products_), 1 + pick(20), ctx()).position;
      if (discontinued_) return 0;
      discontinued_ = true;
      return s_.discontinue_product(any(products_), std::nullopt, ctx()).position;
    } catch (const command::CommandRejected&) {
      return 0;
    }
  }

  void run(int steps) {
    for (int i = 0; i < steps; ++i) step();
  }

  // Carts left full, then every product renamed and repriced, then more of some lines added
  // (their snapshot is newer than the change), then some prices changed again.
  void finish() {
    for (const auto& user : users_) {
      for (int i = 0; i < 2; ++i) {
        try {
          s_.add_cart_item(user, any(products_), 1 + pick(2), ctx());
        } catch (const command::CommandRejected&) {
        }
      }
    }
    for (const auto& product : products_) {
      try {
        s_.update_product(product,
                          {.name = "Final " + std::to_string(pick(1000)),
                           .price = 500 + 10 * static_cast<std::int64_t>(pick(100))},
                          std::nullopt, std::nullopt, ctx());
      } catch (const command::CommandRejected&) {
      }
    }
    for (std::size_t i = 0; i < users_.size(); i += 2) {
      try {
        s_.add_cart_item(users_[i], any(products_), 1, ctx());
      } catch (const command::CommandRejected&) {
      }
    }
    for (std::size_t i = 0; i < products_.size(); i += 3) {
      try {
        s_.update_product(products_[i], {.price = 777}, std::nullopt, std::nullopt, ctx());
      } catch (const command::CommandRejected&) {
      }
    }
    // Sessions: every customer signs in twice and refreshes; then some log out, some present a
    // spent refresh token (the session is revoked), some log out everywhere.
    for (std::size_t i = 0; i < users_.size(); ++i) {
      try {
        const auto first = s_.start_session(users_[i], ctx());
        const auto second = s_.start_session(users_[i], ctx());
        const auto rotated = s_.refresh(first.refresh, ctx());
        if (i % 4 == 0) s_.logout(rotated.refresh, ctx());
        if (i % 4 == 1) (void)s_.refresh(first.refresh, ctx());  // reuse: revoked
        if (i % 4 == 2) s_.logout_all(users_[i], ctx());
        if (i % 4 == 3) (void)s_.refresh(second.refresh, ctx());
      } catch (const command::CommandRejected&) {
      }
    }
    // Accounts: names and mobile numbers changed, numbers removed, roles granted and taken away
    // (which ends the user's sessions), passwords changed (which ends the other sessions).
    const std::string admin = new_uuid();
    for (std::size_t i = 0; i < users_.size(); ++i) {
      const std::string phone = "+4917012" + std::to_string(100000 + i);
      try {
        if (i % 3 == 0) {
          s_.change_profile(users_[i], {.name = "Renamed " + std::to_string(i), .phone = phone},
                            ctx());
        }
        if (i % 3 == 1) {
          s_.change_profile(users_[i], {.phone = phone}, ctx());
          s_.change_profile(users_[i], {.remove_phone = true}, ctx());
        }
        if (i % 5 == 0) s_.set_roles(users_[i], {"staff", "customer"}, admin, ctx());
        if (i % 5 == 1) {
          s_.set_roles(users_[i], {"customer", "staff"}, admin, ctx());
          s_.set_roles(users_[i], {"customer"}, admin, ctx());
        }
        if (i % 4 == 0) {
          s_.change_password(users_[i], "", "long password", "another long password", ctx());
        }
      } catch (const command::CommandRejected&) {
      }
    }
  }

 private:
  static command::Context ctx() { return command::Context::make(std::nullopt); }
  unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  template <class T>
  const T& any(const std::vector<T>& v) {
    return v[pick(static_cast<unsigned>(v.size()))];
  }

  command::CommandService& s_;
  std::mt19937 rng_;
  std::vector<std::string> products_, users_, payments_;
  std::vector<std::pair<std::string, std::string>> orders_;  // order id, user id
  bool discontinued_ = false;
};

}  // namespace shop::testing
