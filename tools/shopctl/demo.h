#pragma once

#include "shop/command/service.h"

namespace shop::tools {
// Loads a small computer-shop catalog through the command service. Returns the number of
// products created (0 when the catalog already has products).
int seed_demo(command::CommandService& service, infra::EventStore& store);
}  // namespace shop::tools
