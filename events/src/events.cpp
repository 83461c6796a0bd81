#include "shop/events/events.h"

#include <algorithm>

namespace shop::events {

namespace {
template <class... Ts>
std::vector<std::string_view> type_names(std::variant<Ts...>*) {
  return {Ts::kType...};
}

template <class... Ts>
std::vector<std::string_view> category_names(std::variant<Ts...>*) {
  std::vector<std::string_view> out;
  for (auto c : {Ts::kCategory...}) {
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

template <std::size_t I = 0>
Event decode_at(std::string_view type, const json::Value& payload) {
  if constexpr (I == std::variant_size_v<Event>) {
    throw codec::DecodeError("unknown event type " + std::string(type));
  } else {
    using T = std::variant_alternative_t<I, Event>;
    if (T::kType == type) return Event{codec::from_json<T>(payload)};
    return decode_at<I + 1>(type, payload);
  }
}
}  // namespace

std::string_view type_of(const Event& e) {
  return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::kType; }, e);
}

int schema_version_of(const Event& e) {
  return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::kSchemaVersion; }, e);
}

std::string stream_of(const Event& e) {
  return std::visit([](const auto& v) { return v.stream_id(); }, e);
}

std::string data_of(const Event& e) {
  return std::visit([](const auto& v) { return codec::to_json(v); }, e);
}

const std::vector<std::string_view>& all_types() {
  static const std::vector<std::string_view> names = type_names(static_cast<Event*>(nullptr));
  return names;
}

const std::vector<std::string_view>& all_categories() {
  static const std::vector<std::string_view> names =
      category_names(static_cast<Event*>(nullptr));
  return names;
}

Event decode(std::string_view type, int schema_version, std::string_view data) {
  if (schema_version != 1) {
    throw codec::DecodeError("unsupported schema version " + std::to_string(schema_version) +
                             " of " + std::string(type));
  }
  json::Document doc;
  if (auto err = json::parse(data, doc); !err.empty()) {
    throw codec::DecodeError("malformed payload of " + std::string(type) + ": " + err);
  }
  return decode_at(type, doc);
}

std::string_view category_of(std::string_view stream_id) {
  auto dash = stream_id.find('-');
  return dash == std::string_view::npos ? stream_id : stream_id.substr(0, dash);
}

}  // namespace shop::events
