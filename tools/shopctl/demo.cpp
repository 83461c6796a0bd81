#include "demo.h"

#include <pqxx/pqxx>

namespace shop::tools {

namespace {
struct DemoProduct {
  const char* category;
  const char* sku;
  const char* name;
  const char* description;
  Minor price;  // cents
  int stock;
};

const DemoProduct kProducts[] = {
    {"Laptops", "LAP-AERO-14", "Aero 14 Laptop", "14-inch ultralight, 16 GB RAM, 512 GB SSD",
     129999, 25},
    {"Laptops", "LAP-FORGE-16", "Forge 16 Gaming Laptop",
     "16-inch 240 Hz display, RTX-class graphics, 32 GB RAM", 219900, 10},
    {"Laptops", "LAP-NOTE-13", "Note 13 Chromebook", "13-inch, 8 GB RAM, all-day battery", 44900,
     40},
    {"Desktops", "DSK-TOWER-X", "Tower X Workstation", "16-core CPU, 64 GB RAM, 2 TB NVMe",
     289900, 5},
    {"Desktops", "DSK-MINI-5", "Mini 5 Desktop", "Palm-sized desktop for the office, 16 GB RAM",
     59900, 30},
    {"Monitors", "MON-27-4K", "Vista 27\" 4K Monitor", "27-inch IPS, 4K, USB-C 90 W", 44999, 18},
    {"Monitors", "MON-34-UW", "Vista 34\" Ultrawide", "34-inch curved, 144 Hz", 69900, 8},
    {"Monitors", "MON-24-FHD", "Vista 24\" Full HD", "24-inch, 75 Hz, slim bezels", 14900, 60},
    {"Keyboards", "KBD-MECH-TKL", "Click TKL Mechanical Keyboard", "Tenkeyless, hot-swap switches",
     8999, 100},
    {"Keyboards", "KBD-SLIM-BT", "Slim Bluetooth Keyboard", "Multi-device, rechargeable", 4999,
     120},
    {"Mice", "MSE-PRO-WL", "Pro Wireless Mouse", "26k DPI sensor, 70 h battery", 7999, 150},
    {"Mice", "MSE-ERGO-V", "Ergo Vertical Mouse", "Vertical grip for all-day comfort", 5999, 80},
};

// The category tree, parents first: name and parent's name.
const std::pair<const char*, const char*> kCategories[] = {
    {"Computers", nullptr},  {"Laptops", "Computers"}, {"Desktops", "Computers"},
    {"Monitors", nullptr},   {"Accessories", nullptr}, {"Keyboards", "Accessories"},
    {"Mice", "Accessories"},
};
}  // namespace

int seed_demo(command::CommandService& service, infra::EventStore& store) {
  {
    auto s = store.begin();
    auto r = s->tx().exec("SELECT 1 FROM unique_claims WHERE scope = 'sku' LIMIT 1");
    if (!r.empty()) return 0;
  }
  auto ctx = command::Context::make(std::nullopt);
  std::map<std::string, std::string> ids;
  for (const auto& [name, parent] : kCategories) {
    const std::string id = new_uuid();
    service.create_category(
        {id, name, parent ? std::optional<std::string>(ids.at(parent)) : std::nullopt}, ctx);
    ids[name] = id;
  }
  int n = 0;
  for (const auto& p : kProducts) {
    service.create_product(
        {new_uuid(), p.name, p.description, p.sku, ids.at(p.category), p.price, p.stock}, ctx);
    ++n;
  }
  return n;
}

std::map<std::string, std::string> demo_categories(command::CommandService& service,
                                                   infra::EventStore& store) {
  std::map<std::string, std::string> found;
  {
    auto s = store.begin();
    for (const auto& row : s->tx().exec("SELECT data->>'name', data->>'category_id' FROM events "
                                        "WHERE type = 'CategoryCreated' ORDER BY position")) {
      found.emplace(row[0].c_str(), row[1].c_str());  // the first of each name stays
    }
  }
  std::map<std::string, std::string> ids;
  auto ctx = command::Context::make(std::nullopt);
  for (const auto& [name, parent] : kCategories) {
    if (auto it = found.find(name); it != found.end()) {
      ids[name] = it->second;
      continue;
    }
    const std::string id = new_uuid();
    service.create_category(
        {id, name, parent ? std::optional<std::string>(ids.at(parent)) : std::nullopt}, ctx);
    ids[name] = id;
  }
  return ids;
}

}  // namespace shop::tools
