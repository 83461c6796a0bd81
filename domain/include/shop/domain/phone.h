// Mobile numbers as the shop keeps them: E.164, a '+', the country code and the subscriber number,
// 8 to 15 digits in all, the first not 0 ("+4917012345678"). Every account's number is kept, and
// claimed (unique_claims scope "phone"), in exactly this form, so that one number is one value.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace shop::domain {

// Whether `phone` is a number in the form above, with nothing else in it.
bool is_e164(std::string_view phone);

// The number in the form above, from what a person types: a leading '+', then digits, which may
// be grouped by spaces and dashes ("+49 170 123-4567"). nullopt for anything else (no '+', letters,
// parentheses, too few or too many digits, a leading 0 after the '+').
std::optional<std::string> normalize_phone(std::string_view typed);

}  // namespace shop::domain
