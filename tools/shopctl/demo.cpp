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
}  // namespace

int seed_demo(command::CommandService& service, infra::EventStore& store) {
  {
    auto s = store.begin();
    auto r = s->tx().exec("SELECT 1 FROM unique_claims WHERE scope = 'sku' LIMIT 1");
    if (!r.empty()) return 0;
  }
  auto ctx = command::Context::make(std::nullopt);
  std::map<std::string, std::string> ids;
  auto category = [&](const std::string& name, std::optional<std::string> parent) {
    const std::string id = new_uuid();
    service.create_category({id, name, std::move(parent)}, ctx);
    ids[name] = id;
    return id;
  };
  const auto computers = category("Computers", std::nullopt);
  category("Laptops", computers);
  category("Desktops", computers);
  category("Monitors", std::nullopt);
  const auto accessories = category("Accessories", std::nullopt);
  category("Keyboards", accessories);
  category("Mice", accessories);
  int n = 0;
  for (const auto& p : kProducts) {
    service.create_product(
        {new_uuid(), p.name, p.description, p.sku, ids.at(p.category), p.price, p.stock}, ctx);
    ++n;
  }
  return n;
}

}  // namespace shop::tools
