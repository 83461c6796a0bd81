// The rules a new password must meet: at least 10 characters, not the account's e-mail address
// (nor its part before the '@'), and not one of the passwords most often found in leaked lists.
// Pure: the caller hashes the password only once it passes.
#pragma once

#include <optional>
#include <string_view>

#include "shop/domain/result.h"

namespace shop::domain {

inline constexpr std::size_t kMinPasswordLength = 10;

// nullopt when `password` may be used for the account `email`, else a "weak_password" error
// saying which rule it breaks.
std::optional<DomainError> check_password(std::string_view password, std::string_view email);

}  // namespace shop::domain
