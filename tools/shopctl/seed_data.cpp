#include "seed_data.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace shop::tools::seed {

namespace {

std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The kinds of random streams (see Rng): one per kind of item, so that adding products does not
// change the customers, and so on.
enum Kind : std::uint64_t { kProduct = 1, kCustomer = 2, kOrder = 3 };

using Names = std::vector<std::string_view>;

std::string str(std::int64_t n) {
  return std::to_string(n);
}

std::string padded(std::int64_t n, int width) {
  std::string s = std::to_string(n);
  if (static_cast<int>(s.size()) < width)
    s.insert(0, static_cast<std::size_t>(width) - s.size(), '0');
  return s;
}

// "1299.99"-style prices: whole dollars rounded to a price point, minus one cent.
Minor price_point(double dollars) {
  const double step = dollars < 100 ? 5 : dollars < 1000 ? 10 : 50;
  const auto whole = static_cast<Minor>(std::max(1.0, std::round(dollars / step)) * step);
  return whole * 100 - 1;
}

std::string storage(int gigabytes) {
  return gigabytes >= 1024 ? str(gigabytes / 1024) + " TB" : str(gigabytes) + " GB";
}

// The brands are made up, like the demo catalog's.
const Names kBrands = {"Aero",   "Forge",    "Nimbus",  "Vertex",  "Zenith", "Orion",
                       "Lumen",  "Strata",   "Kestrel", "Halcyon", "Vista",  "Click",
                       "Quanta", "Arclight", "Tundra",  "Corvid"};

std::string sku_prefix(std::string_view shelf_code, std::string_view brand) {
  std::string s(shelf_code);
  s += '-';
  for (std::size_t i = 0; i < 3 && i < brand.size(); ++i) {
    s += static_cast<char>(std::toupper(static_cast<unsigned char>(brand[i])));
  }
  return s;
}

void laptop(Rng& r, ProductSpec& p, std::int64_t number) {
  static const Names lines = {"Book", "Pro", "Air", "Ultra", "Studio", "Flex", "Blade", "Go"};
  static const std::vector<int> sizes = {13, 14, 14, 15, 16, 16, 17};
  static const std::vector<int> ram = {8, 16, 16, 32, 32, 64};
  static const std::vector<int> ssd = {256, 512, 512, 1024, 1024, 2048};
  static const Names panels = {"IPS", "OLED", "IPS 120 Hz", "IPS 165 Hz", "mini-LED"};
  const auto brand = r.pick(kBrands);
  const auto line = r.pick(lines);
  const int size = r.pick(sizes), memory = r.pick(ram), disk = r.pick(ssd);
  const int gpu = line == "Blade" || line == "Studio" ? static_cast<int>(r.between(1, 2))
                                                      : (r.chance(0.15) ? 1 : 0);
  static const Names gpus = {"integrated graphics", "RTX 4060-class graphics",
                             "RTX 4080-class graphics"};
  const int cores = static_cast<int>(r.pick(std::vector<int>{8, 10, 12, 14, 16}));
  p.name = std::string(brand) + " " + std::string(line) + " " + str(size) + " Laptop (" +
           str(memory) + " GB, " + storage(disk) + ")";
  p.description = str(size) + "-inch " + std::string(r.pick(panels)) + " display, " + str(cores) +
                  "-core CPU, " + str(memory) + " GB RAM, " + storage(disk) + " SSD, " +
                  std::string(gpus[static_cast<std::size_t>(gpu)]) + ", " + str(r.between(8, 22)) +
                  " h battery";
  p.sku = sku_prefix("LAP", brand) + str(size) + "-" + padded(number, 6);
  p.price = price_point(349 + memory * 11 + disk * 0.18 + gpu * 520 + (size - 13) * 40 +
                        (line == "Pro" || line == "Studio" ? 250 : 0) + r.between(0, 120));
  p.spare_stock = r.between(3, 40);
  p.popularity = 1.0;
}

void desktop(Rng& r, ProductSpec& p, std::int64_t number) {
  static const Names forms = {"Tower",   "Mini",         "Workstation",
                              "Creator", "Gaming Tower", "All-in-One"};
  static const std::vector<int> cores = {6, 8, 12, 16, 24, 32};
  static const std::vector<int> ram = {16, 32, 32, 64, 128};
  static const std::vector<int> ssd = {512, 1024, 2048, 4096};
  const auto brand = r.pick(kBrands);
  const auto form = r.pick(forms);
  const int core = r.pick(cores), memory = r.pick(ram), disk = r.pick(ssd);
  const int model = static_cast<int>(r.between(3, 9));
  p.name = std::string(brand) + " " + std::string(form) + " " + str(model) + " Desktop (" +
           str(core) + "-core, " + str(memory) + " GB)";
  p.description = str(core) + "-core CPU, " + str(memory) + " GB RAM, " + storage(disk) +
                  " NVMe SSD" +
                  (form == "Gaming Tower" ? ", RTX 4070-class graphics, 850 W PSU"
                   : form == "Mini"       ? ", fits in one hand, two 4K outputs"
                   : form == "All-in-One" ? ", 27-inch 4K display built in"
                                          : ", tool-free case, Wi-Fi 6E");
  p.sku = sku_prefix("DSK", brand) + str(model) + "-" + padded(number, 6);
  p.price = price_point(299 + core * 38 + memory * 7 + disk * 0.12 +
                        (form == "Gaming Tower"  ? 700
                         : form == "Workstation" ? 500
                                                 : 0) +
                        (form == "All-in-One" ? 400 : 0) + r.between(0, 150));
  p.spare_stock = r.between(3, 25);
  p.popularity = 0.5;
}

void monitor(Rng& r, ProductSpec& p, std::int64_t number) {
  static const std::vector<int> sizes = {22, 24, 24, 27, 27, 27, 32, 34, 38, 49};
  static const std::vector<int> rates = {60, 75, 100, 144, 165, 240};
  static const Names panels = {"IPS", "IPS", "VA", "OLED"};
  const auto brand = r.pick(kBrands);
  const int size = r.pick(sizes), hz = r.pick(rates);
  const auto panel = r.pick(panels);
  std::string res = size <= 24   ? (r.chance(0.7) ? "Full HD" : "QHD")
                    : size <= 32 ? (r.chance(0.5) ? "4K" : "QHD")
                    : size <= 38 ? "UWQHD"
                                 : "DQHD";
  const bool curved = size >= 34;
  p.name = std::string(brand) + " " + str(size) + "\" " + res + " " + std::string(panel) +
           (curved ? " Curved" : "") + " Monitor";
  p.description =
      str(size) + "-inch " + std::string(panel) + ", " + res + ", " + str(hz) + " Hz" +
      (r.chance(0.4) ? ", USB-C " + str(r.pick(std::vector<int>{15, 65, 90})) + " W" : "") +
      (r.chance(0.5) ? ", height-adjustable stand" : ", VESA mount");
  p.sku = sku_prefix("MON", brand) + str(size) + "-" + padded(number, 6);
  const double res_factor = res == "Full HD" ? 1 : res == "QHD" ? 1.5 : res == "4K" ? 2.3 : 2.8;
  p.price = price_point(40 + size * 4.5 * res_factor + (hz - 60) * 1.2 +
                        (panel == "OLED" ? 450 : 0) + r.between(0, 60));
  p.spare_stock = r.between(4, 60);
  p.popularity = 0.8;
}

void keyboard(Rng& r, ProductSpec& p, std::int64_t number) {
  static const Names layouts = {"Full-size", "TKL", "75%", "65%", "60%"};
  static const Names kinds = {"Mechanical", "Mechanical", "Low-Profile", "Membrane"};
  static const Names switches = {"linear red", "tactile brown", "clicky blue", "silent linear"};
  static const Names links = {"wired USB-C", "Bluetooth and 2.4 GHz", "Bluetooth"};
  static const Names models = {"K", "Type", "Key", "Strike", "Tact", "Glide"};
  const auto brand = r.pick(kBrands);
  const auto layout = r.pick(layouts);
  const auto kind = r.pick(kinds);
  const auto link = r.pick(links);
  const int model = static_cast<int>(r.between(1, 9)) * 10;
  p.name = std::string(brand) + " " + std::string(r.pick(models)) + str(model) + " " +
           std::string(layout) + " " + std::string(kind) + " Keyboard";
  p.description = std::string(layout) + " layout, " +
                  (kind == "Membrane" ? std::string("quiet membrane keys")
                                      : std::string(r.pick(switches)) + " switches") +
                  ", " + std::string(link) +
                  (r.chance(0.5) ? ", per-key RGB" : ", white backlight");
  p.sku = sku_prefix("KBD", brand) + str(model) + "-" + padded(number, 6);
  p.price = price_point(19 +
                        (kind == "Mechanical"    ? 60
                         : kind == "Low-Profile" ? 40
                                                 : 0) +
                        (link == "wired USB-C" ? 0 : 30) + r.between(0, 90));
  p.spare_stock = r.between(10, 150);
  p.popularity = 1.5;
}

void mouse(Rng& r, ProductSpec& p, std::int64_t number) {
  static const Names kinds = {"Wireless Gaming Mouse", "Wired Gaming Mouse",  "Ergo Vertical Mouse",
                              "Travel Mouse",          "Silent Office Mouse", "Trackball"};
  static const std::vector<int> dpi = {4000, 8000, 16000, 26000, 30000};
  const auto brand = r.pick(kBrands);
  const auto kind = r.pick(kinds);
  const int model = static_cast<int>(r.between(1, 9));
  const int sensor = r.pick(dpi);
  p.name = std::string(brand) + " M" + str(model) + " " + std::string(kind);
  p.description = str(sensor / 1000) + "k DPI sensor, " + str(r.between(55, 120)) + " g" +
                  (kind.find("Wireless") != std::string_view::npos || kind == "Travel Mouse"
                       ? ", " + str(r.between(40, 120)) + " h battery"
                       : ", braided cable") +
                  (kind == "Ergo Vertical Mouse" ? ", 57-degree grip" : "");
  p.sku = sku_prefix("MSE", brand) + "M" + str(model) + "-" + padded(number, 6);
  p.price = price_point(12 + sensor / 400.0 + (kind == "Wireless Gaming Mouse" ? 50 : 0) +
                        (kind == "Trackball" ? 40 : 0) + r.between(0, 40));
  p.spare_stock = r.between(10, 200);
  p.popularity = 1.5;
}

// Given names and family names from many places; `ascii` is the form an e-mail address uses.
struct Name {
  std::string_view text, ascii;
};
const std::vector<Name> kGivenNames = {
    {"Anna", "anna"},       {"Ben", "ben"},
    {"Chloe", "chloe"},     {"David", "david"},
    {"Elena", "elena"},     {"Felix", "felix"},
    {"Grace", "grace"},     {"Hiro", "hiro"},
    {"Isabel", "isabel"},   {"Jonas", "jonas"},
    {"Kaito", "kaito"},     {"Laura", "laura"},
    {"Marco", "marco"},     {"Nadia", "nadia"},
    {"Omar", "omar"},       {"Priya", "priya"},
    {"Quentin", "quentin"}, {"Rosa", "rosa"},
    {"Samir", "samir"},     {"Tara", "tara"},
    {"Umar", "umar"},       {"Valentina", "valentina"},
    {"Wei", "wei"},         {"Ximena", "ximena"},
    {"Yuki", "yuki"},       {"Zoe", "zoe"},
    {"Amelia", "amelia"},   {"Bruno", "bruno"},
    {"Carmen", "carmen"},   {"Daniel", "daniel"},
    {"Emma", "emma"},       {"Farah", "farah"},
    {"Gabriel", "gabriel"}, {"Hannah", "hannah"},
    {"Ivan", "ivan"},       {"Julia", "julia"},
    {"Kofi", "kofi"},       {"Lena", "lena"},
    {"Mateo", "mateo"},     {"Noah", "noah"},
    {"Olivia", "olivia"},   {"Pablo", "pablo"},
    {"Rahul", "rahul"},     {"Sofia", "sofia"},
    {"Thomas", "thomas"},   {"Uma", "uma"},
    {"Victor", "victor"},   {"William", "william"},
    {"Aisha", "aisha"},     {"Chen", "chen"},
    {"Dmitri", "dmitri"},   {"Fatima", "fatima"},
    {"Lucas", "lucas"},     {"Mia", "mia"},
    {"Nikolai", "nikolai"}, {"Sara", "sara"},
    {"José", "jose"},       {"Zoë", "zoe"},
    {"Jürgen", "juergen"},  {"Léa", "lea"},
    {"Björn", "bjorn"},     {"Inés", "ines"},
    {"Chidi", "chidi"},     {"Mei", "mei"},
};
const std::vector<Name> kFamilyNames = {
    {"Smith", "smith"},       {"Müller", "mueller"},      {"García", "garcia"},
    {"Rossi", "rossi"},       {"Tanaka", "tanaka"},       {"Kowalski", "kowalski"},
    {"Nguyen", "nguyen"},     {"Johnson", "johnson"},     {"Schmidt", "schmidt"},
    {"Martin", "martin"},     {"Silva", "silva"},         {"Kim", "kim"},
    {"Patel", "patel"},       {"Andersson", "andersson"}, {"Novak", "novak"},
    {"Dubois", "dubois"},     {"Hernández", "hernandez"}, {"Okafor", "okafor"},
    {"Ivanova", "ivanova"},   {"Brown", "brown"},         {"Wilson", "wilson"},
    {"Lopez", "lopez"},       {"Fischer", "fischer"},     {"Moreau", "moreau"},
    {"Yamamoto", "yamamoto"}, {"Chen", "chen"},           {"Singh", "singh"},
    {"Costa", "costa"},       {"Jensen", "jensen"},       {"Horvat", "horvat"},
    {"O'Brien", "obrien"},    {"Walker", "walker"},       {"Bianchi", "bianchi"},
    {"Khan", "khan"},         {"Sato", "sato"},           {"Weber", "weber"},
    {"Nowak", "nowak"},       {"Haddad", "haddad"},       {"Mensah", "mensah"},
    {"Larsen", "larsen"},     {"Ferreira", "ferreira"},   {"Popescu", "popescu"},
    {"Taylor", "taylor"},     {"Becker", "becker"},       {"Ali", "ali"},
    {"Park", "park"},         {"Romero", "romero"},       {"Virtanen", "virtanen"},
};
// Reserved example domains: no seeded address can ever reach anyone.
const Names kMailDomains = {"example.com", "example.net", "example.org", "mail.example",
                            "inbox.example"};

const Names kCancelReasons = {"changed my mind", "found a better price elsewhere",
                              "ordered the wrong model", "delivery takes too long",
                              "ordered twice by mistake"};
const Names kDeclineReasons = {"card declined", "insufficient funds",
                               "3-D Secure authentication failed", "card expired"};

std::string digits(Rng& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('0' + r.between(0, 9));
  return s;
}

void ship_with(Rng& r, OrderPlan& o) {
  switch (r.between(0, 3)) {
    case 0: {
      o.carrier = "UPS";
      static const std::string_view alnum = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
      o.tracking_number = "1Z";
      for (int i = 0; i < 6; ++i) {
        o.tracking_number += alnum[static_cast<std::size_t>(r.between(0, alnum.size() - 1))];
      }
      o.tracking_number += digits(r, 10);
      break;
    }
    case 1:
      o.carrier = "DHL";
      o.tracking_number = digits(r, 10);
      break;
    case 2:
      o.carrier = "FedEx";
      o.tracking_number = digits(r, 12);
      break;
    default:
      o.carrier = "USPS";
      o.tracking_number = "9400" + digits(r, 18);
      break;
  }
}

}  // namespace

// ------------------------------------------------------------------------------------ random

Rng::Rng(std::uint64_t seed, std::uint64_t kind, std::uint64_t index)
    : state_(mix(mix(mix(seed) ^ kind) + index)) {}

std::uint64_t Rng::next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return mix(state_);
}

std::int64_t Rng::between(std::int64_t lo, std::int64_t hi) {
  // The modulo's bias is below 2^-40 for the small ranges used here.
  const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  return lo + static_cast<std::int64_t>(next() % span);
}

double Rng::unit() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

WeightedPick::WeightedPick(const std::vector<double>& weights) {
  double sum = 0;
  cumulative_.reserve(weights.size());
  for (double w : weights) cumulative_.push_back(sum += w);
  if (cumulative_.empty() || sum <= 0) throw std::invalid_argument("nothing to pick from");
}

int WeightedPick::operator()(Rng& rng) const {
  const double x = rng.unit() * cumulative_.back();
  const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), x);
  return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(it - cumulative_.begin()),
                                                cumulative_.size() - 1));
}

// ---------------------------------------------------------------------------------- products

std::string_view shelf_name(Shelf shelf) {
  switch (shelf) {
    case Shelf::laptops:
      return "Laptops";
    case Shelf::desktops:
      return "Desktops";
    case Shelf::monitors:
      return "Monitors";
    case Shelf::keyboards:
      return "Keyboards";
    case Shelf::mice:
      return "Mice";
  }
  return "";
}

ProductSpec make_product(std::uint64_t seed, int index, std::int64_t number) {
  Rng r(seed, kProduct, static_cast<std::uint64_t>(index));
  ProductSpec p;
  // The mix of a computer shop's shelves: many accessories, fewer big-ticket machines.
  static const WeightedPick shelves({0.24, 0.11, 0.2, 0.21, 0.24});
  p.shelf = kShelves[shelves(r)];
  switch (p.shelf) {
    case Shelf::laptops:
      laptop(r, p, number);
      break;
    case Shelf::desktops:
      desktop(r, p, number);
      break;
    case Shelf::monitors:
      monitor(r, p, number);
      break;
    case Shelf::keyboards:
      keyboard(r, p, number);
      break;
    case Shelf::mice:
      mouse(r, p, number);
      break;
  }
  // A few bestsellers, a long tail.
  const double u = r.unit();
  p.popularity *= 0.15 + 6 * u * u * u;
  if (r.chance(0.1)) {
    // A sale (10-25% off) or a new list price.
    const double factor = r.chance(0.7) ? 1 - 0.05 * static_cast<double>(r.between(2, 5))
                                        : 1 + 0.05 * static_cast<double>(r.between(1, 2));
    p.new_price = price_point(static_cast<double>(p.price + 1) / 100 * factor);
    if (*p.new_price == p.price) p.new_price.reset();
  }
  p.restocked = r.chance(0.3);
  p.discontinued_at_end = r.chance(0.02);
  return p;
}

// --------------------------------------------------------------------------------- customers

CustomerSpec make_customer(std::uint64_t seed, int index, std::int64_t number) {
  Rng r(seed, kCustomer, static_cast<std::uint64_t>(index));
  const auto& given = r.pick(kGivenNames);
  const auto& family = r.pick(kFamilyNames);
  CustomerSpec c;
  c.name = std::string(given.text) + " " + std::string(family.text);
  std::string local;
  switch (r.between(0, 3)) {
    case 0:
      local = std::string(given.ascii) + "." + std::string(family.ascii);
      break;
    case 1:
      local = std::string(given.ascii.substr(0, 1)) + std::string(family.ascii);
      break;
    case 2:
      local = std::string(given.ascii) + "_" + std::string(family.ascii);
      break;
    default:
      local = std::string(given.ascii) + std::string(family.ascii.substr(0, 1));
      break;
  }
  c.email = local + str(number) + "@" + std::string(r.pick(kMailDomains));
  return c;
}

std::vector<double> customer_loyalty(int users) {
  std::vector<double> w(static_cast<std::size_t>(users));
  for (int i = 0; i < users; ++i) w[static_cast<std::size_t>(i)] = 1 / std::pow(i + 1.0, 0.6);
  return w;
}

// ------------------------------------------------------------------------------------ orders

namespace {
std::vector<double> popularity(const std::vector<ProductSpec>& products) {
  std::vector<double> w;
  w.reserve(products.size());
  for (const auto& p : products) w.push_back(p.popularity);
  return w;
}
}  // namespace

OrderPlanner::OrderPlanner(std::uint64_t seed, int users, const std::vector<ProductSpec>& products)
    : seed_(seed),
      products_(products),
      by_loyalty_(customer_loyalty(users)),
      by_popularity_(popularity(products)) {}

OrderPlan OrderPlanner::plan(int index) const {
  Rng r(seed_, kOrder, static_cast<std::uint64_t>(index));
  OrderPlan o;
  o.user = by_loyalty_(r);

  // 1-4 different products (never more than the catalog has).
  static const WeightedPick line_counts({0.4, 0.3, 0.18, 0.12});
  const auto wanted =
      std::min<std::size_t>(static_cast<std::size_t>(line_counts(r)) + 1, products_.size());
  auto in_order = [&](int product) {
    return std::any_of(o.lines.begin(), o.lines.end(),
                       [&](const OrderLine& l) { return l.product == product; });
  };
  while (o.lines.size() < wanted) {
    int product = by_popularity_(r);
    // A popular product drawn twice: the next one in the catalog instead, so that a catalog of a
    // few bestsellers still fills a cart quickly.
    while (in_order(product)) product = (product + 1) % static_cast<int>(products_.size());
    const Shelf shelf = products_[static_cast<std::size_t>(product)].shelf;
    static const WeightedPick machines({0.9, 0.08, 0.02});
    static const WeightedPick accessories({0.7, 0.2, 0.07, 0.03});
    const bool accessory = shelf == Shelf::keyboards || shelf == Shelf::mice;
    o.lines.push_back({product, (accessory ? accessories(r) : machines(r)) + 1});
  }

  // How the cart got there: mostly straight adds; sometimes a quantity changed on the way (the
  // first guess never above 3), a product added twice, or one added and taken out again.
  for (const auto& line : o.lines) {
    const double u = r.unit();
    if (u < 0.12) {
      std::int64_t first = r.between(1, 3);
      if (first == line.quantity) first = first == 1 ? 2 : first - 1;
      o.steps.push_back({CartStep::Kind::add, line.product, first});
      o.steps.push_back({CartStep::Kind::change, line.product, line.quantity});
    } else if (u < 0.18 && line.quantity >= 2) {
      o.steps.push_back({CartStep::Kind::add, line.product, 1});
      o.steps.push_back({CartStep::Kind::add, line.product, line.quantity - 1});
    } else {
      o.steps.push_back({CartStep::Kind::add, line.product, line.quantity});
    }
  }
  if (products_.size() > o.lines.size() && r.chance(0.1)) {
    int extra = by_popularity_(r);
    while (in_order(extra)) extra = (extra + 1) % static_cast<int>(products_.size());
    const auto at =
        static_cast<std::size_t>(r.between(0, static_cast<std::int64_t>(o.steps.size())));
    o.steps.insert(o.steps.begin() + static_cast<std::ptrdiff_t>(at),
                   CartStep{CartStep::Kind::add, extra, 1});
    const auto out = static_cast<std::size_t>(
        r.between(static_cast<std::int64_t>(at) + 1, static_cast<std::int64_t>(o.steps.size())));
    // Taken out with the remove button, or by setting the quantity to 0.
    o.steps.insert(o.steps.begin() + static_cast<std::ptrdiff_t>(out),
                   r.chance(0.7) ? CartStep{CartStep::Kind::remove, extra, 0}
                                 : CartStep{CartStep::Kind::change, extra, 0});
  }

  // What happens to the order.
  const double fate = r.unit();
  if (fate < 0.05) {
    // Placed, never paid: still waiting.
  } else if (fate < 0.12) {
    o.cancelled = true;
  } else if (fate < 0.145) {
    o.payment_declined = true;
    o.cancelled = true;
  } else {
    o.payment_declined = fate < 0.17;  // declined once, then paid with another card
    o.paid = true;
    const double next = r.unit();
    o.shipped = next >= 0.1;
    o.delivered = next >= 0.25;
  }
  if (o.payment_declined) o.decline_reason = std::string(r.pick(kDeclineReasons));
  if (o.cancelled) {
    o.cancel_reason = o.payment_declined ? "payment failed" : std::string(r.pick(kCancelReasons));
  }
  if (o.shipped) ship_with(r, o);
  return o;
}

}  // namespace shop::tools::seed
