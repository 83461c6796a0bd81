#pragma once

#include <map>
#include <string>

#include "shop/command/service.h"

namespace shop::tools {
// Loads a small computer-shop catalog through the command service. Returns the number of
// products created (0 when the catalog already has products).
int seed_demo(command::CommandService& service, infra::EventStore& store);

// The ids of the demo catalog's categories by name ("Computers", "Laptops", ..., "Mice"), found
// by their CategoryCreated events (the first of each name). Any that is missing (a catalog that
// staff built without the demo) is created through the command service.
std::map<std::string, std::string> demo_categories(command::CommandService& service,
                                                   infra::EventStore& store);
}  // namespace shop::tools
