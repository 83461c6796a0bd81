// The project's one way into RapidJSON: include this header before any other RapidJSON header.
// It turns RapidJSON's internal assertions into exceptions (a malformed document must never abort
// a service) and enables std::string support.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#ifndef RAPIDJSON_HAS_STDSTRING
#define RAPIDJSON_HAS_STDSTRING 1
#endif
#ifndef RAPIDJSON_ASSERT
#define RAPIDJSON_ASSERT(x) \
  ((x) ? static_cast<void>(0) : throw ::shop::json::AssertionError("rapidjson: " #x))
#endif

namespace shop::json {
struct AssertionError : std::logic_error {
  using std::logic_error::logic_error;
};
}  // namespace shop::json

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace shop::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Parses text into doc. Returns an empty string on success, else a human-readable reason.
std::string parse(std::string_view text, Document& doc);

// Serialises a value to compact JSON text.
std::string to_string(const Value& value);

// Accessors that never assert: they return the fallback when the member is missing or of another
// type. (RapidJSON 1.1.0 scalar comparisons recurse forever under C++20; use these instead.)
const Value* member(const Value& object, const char* name);
std::string get_string(const Value& object, const char* name, std::string fallback = {});
long long get_int(const Value& object, const char* name, long long fallback = 0);
bool get_bool(const Value& object, const char* name, bool fallback = false);

// Escapes a string for inclusion in JSON text (with the quotes).
std::string quote(std::string_view text);

}  // namespace shop::json
