#pragma once

#include <map>
#include <string_view>

namespace shop::schemas {
// Every schema file, by its path under schemas/ ("commands/register.json", "events/OrderPlaced.json").
const std::map<std::string_view, std::string_view>& embedded();
}  // namespace shop::schemas
