// Page cursors for keyset pagination. A cursor names the last row of a page by its sort key and
// id; it is opaque to clients (url-safe base64) and signed (HMAC-SHA256), so that a cursor that
// was altered, or that belongs to another list or another sort, is refused instead of being
// trusted.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace shop::query {

struct CursorPosition {
  std::string key;  // the sort key of the last row, as text
  std::string id;   // the id of the last row
};

class CursorCodec {
 public:
  explicit CursorCodec(std::string_view secret);
  // `scope` names the list and its sort ("products:-price"): a cursor only decodes in its scope.
  std::string encode(std::string_view scope, const CursorPosition& position) const;
  // Nullopt for anything that encode() did not produce for this scope.
  std::optional<CursorPosition> decode(std::string_view scope, std::string_view cursor) const;

 private:
  std::string mac(std::string_view payload) const;
  std::string key_;
};

// RFC 4648 url-safe alphabet without padding.
std::string base64url_encode(std::string_view bytes);
// Nullopt on a character outside the alphabet, padding, or an impossible length.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace shop::query
