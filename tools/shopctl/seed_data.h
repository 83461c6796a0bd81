// The data `shopctl seed-demo --products N --users N --orders N` generates: computer-shop
// products, customers and shopping sessions, all derived from a seed. Pure: no I/O, no clock, no
// ids (the command service makes those). The same seed gives the same data on every machine and
// with any number of threads: every item is drawn from its own random stream, keyed by the seed,
// the kind of item and its index.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shop/events/types.h"

namespace shop::tools::seed {

// splitmix64. The standard distributions are not used: their algorithms are each library's own,
// and the data must not change with the compiler.
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t kind, std::uint64_t index);
  std::uint64_t next();
  std::int64_t between(std::int64_t lo, std::int64_t hi);  // inclusive; lo <= hi
  double unit();                                           // [0, 1)
  bool chance(double p) { return unit() < p; }
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<std::size_t>(between(0, static_cast<std::int64_t>(items.size()) - 1))];
  }

 private:
  std::uint64_t state_;
};

// Picks indices in proportion to their weights.
class WeightedPick {
 public:
  explicit WeightedPick(const std::vector<double>& weights);
  int operator()(Rng& rng) const;

 private:
  std::vector<double> cumulative_;
};

// The demo catalog's leaf categories, which the seeded products are spread over.
enum class Shelf { laptops, desktops, monitors, keyboards, mice };
inline constexpr Shelf kShelves[] = {Shelf::laptops, Shelf::desktops, Shelf::monitors,
                                     Shelf::keyboards, Shelf::mice};
std::string_view shelf_name(Shelf shelf);  // the category's name: "Laptops", ...

struct ProductSpec {
  Shelf shelf = Shelf::laptops;
  std::string name, description, sku;
  Minor price = 0;               // minor units (cents)
  std::int64_t spare_stock = 0;  // the stock left once every seeded order has been placed
  double popularity = 1;         // relative chance of landing in a cart
  // Catalog work after the product is created, before any order: a price change (a sale or a
  // new list price), and a delivery of stock (then the product is created with less stock).
  std::optional<Minor> new_price;
  bool restocked = false;
  bool discontinued_at_end = false;  // end of line, once the orders are done
};
// `number` makes the SKU unique (the product's number in the whole catalog).
ProductSpec make_product(std::uint64_t seed, int index, std::int64_t number);

struct CustomerSpec {
  std::string name, email;
};
// `number` makes the e-mail address unique (the customer's number among all accounts).
CustomerSpec make_customer(std::uint64_t seed, int index, std::int64_t number);

struct CartStep {
  enum class Kind { add, change, remove } kind = Kind::add;
  int product = 0;            // index into the seeded products
  std::int64_t quantity = 0;  // add: how many more; change: the new quantity (0 removes)
};

struct OrderLine {
  int product = 0;
  std::int64_t quantity = 0;
};

// One customer's shopping session: fill the cart, check out, then what happens to the order.
struct OrderPlan {
  int user = 0;                 // index into the seeded customers
  std::vector<CartStep> steps;  // the cart holds exactly `lines` afterwards
  std::vector<OrderLine> lines;
  bool payment_declined = false;  // a first payment attempt that the provider declines
  bool paid = false;              // a payment that the provider captures (after a decline, a retry)
  bool cancelled = false;         // by the customer, while the order waits for payment
  bool shipped = false, delivered = false;
  std::string decline_reason, cancel_reason, carrier, tracking_number;
};

// Plans the seeded orders: who buys (a few regulars place many orders, most customers a few),
// what (bestsellers sell more; accessories come in twos and threes more often than laptops) and
// what happens next (paid, shipped, delivered, cancelled, a declined card).
class OrderPlanner {
 public:
  OrderPlanner(std::uint64_t seed, int users, const std::vector<ProductSpec>& products);
  OrderPlan plan(int index) const;

 private:
  std::uint64_t seed_;
  const std::vector<ProductSpec>& products_;
  WeightedPick by_loyalty_, by_popularity_;
};

}  // namespace shop::tools::seed
