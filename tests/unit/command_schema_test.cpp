// Request bodies against the command schemas: what passes, and what fails naming the field.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "shop/infra/schema.h"

#include <rapidjson/internal/regex.h>

namespace {

using shop::infra::SchemaRegistry;

const char* const kUuid = "0f8fad5b-d9cb-469f-a165-70867728950e";

std::vector<std::string> validate(const std::string& schema, const std::string& body) {
  shop::json::Document doc;
  const std::string err = shop::json::parse(body, doc);
  if (!err.empty()) {
    ADD_FAILURE() << "test body is not JSON: " << body;
    return {"not JSON"};
  }
  return SchemaRegistry::instance().validate(schema, doc);
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : "; ") + s;
  return out;
}

::testing::AssertionResult passes(const std::string& schema, const std::string& body) {
  const auto problems = validate(schema, body);
  if (problems.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << schema << " refused " << body << ": " << joined(problems);
}

// Fails, and some problem mentions every one of `words` (the field, and what is wrong with it).
::testing::AssertionResult fails_naming(const std::string& schema, const std::string& body,
                                        std::initializer_list<std::string_view> words) {
  const auto problems = validate(schema, body);
  if (problems.empty()) return ::testing::AssertionFailure() << schema << " accepted " << body;
  for (const auto& p : problems) {
    bool all = true;
    for (auto w : words) all = all && p.find(w) != std::string::npos;
    if (all) return ::testing::AssertionSuccess();
  }
  auto failure = ::testing::AssertionFailure();
  failure << schema << " refused " << body << " with \"" << joined(problems)
          << "\", which does not mention";
  for (auto w : words) failure << " '" << w << "'";
  return failure;
}

std::string with_uuid(const std::string& before, const std::string& after) {
  return before + kUuid + after;
}

std::string product_body(const std::string& price) {
  return R"({"name":"Mug","description":"Blue","price":")" + price +
         R"(","stock":10,"category_id":")" + kUuid + R"(","sku":"MUG-1"})";
}

// ------------------------------------------------------------------------------------- presence
TEST(CommandSchemaTest, EveryCommandHasASchema) {
  const auto& registry = SchemaRegistry::instance();
  for (const char* name :
       {"commands/add_cart_item", "commands/adjust_stock", "commands/cancel_order",
        "commands/change_cart_item", "commands/create_category", "commands/create_product",
        "commands/login", "commands/register", "commands/sandbox_webhook", "commands/ship_order",
        "commands/start_payment", "commands/update_product", "commands/refresh_token"}) {
    EXPECT_TRUE(registry.has(name)) << name;
    EXPECT_FALSE(registry.text(name).empty()) << name;
  }
  EXPECT_FALSE(registry.has("commands/nope"));
  EXPECT_TRUE(registry.text("commands/nope").empty());
  shop::json::Document doc;
  doc.SetObject();
  EXPECT_THROW((void)registry.validate("commands/nope", doc), std::logic_error);
}

// ----------------------------------------------------------------------------------- valid bodies
TEST(CommandSchemaTest, ValidBodiesPass) {
  EXPECT_TRUE(passes("commands/register",
                     R"({"email":"ann@example.com","password":"correct horse","name":"Ann"})"));
  EXPECT_TRUE(passes("commands/login", R"({"email":"ann@example.com","password":"x"})"));
  EXPECT_TRUE(passes("commands/refresh_token", R"({"refresh":"a.b.c"})"));
  EXPECT_FALSE(passes("commands/refresh_token", R"({"refresh":""})"));
  EXPECT_FALSE(passes("commands/refresh_token", R"({})"));
  EXPECT_FALSE(passes("commands/refresh_token", R"({"refresh":"a.b.c","x":1})"));
  EXPECT_FALSE(passes("commands/refresh_token", R"({"refresh":7})"));
  EXPECT_TRUE(passes("commands/create_category", R"({"name":"Kitchen"})"));
  EXPECT_TRUE(passes("commands/create_category",
                     with_uuid(R"({"name":"Mugs","parent_id":")", R"("})")));
  EXPECT_TRUE(passes("commands/create_product", product_body("1299.99")));
  EXPECT_TRUE(passes("commands/create_product", product_body("0")));
  EXPECT_TRUE(passes("commands/create_product", product_body("12.5")));
  EXPECT_TRUE(passes("commands/create_product", product_body("9999999999.999")));
  EXPECT_TRUE(passes("commands/update_product", R"({"price":"15.00"})"));
  EXPECT_TRUE(passes("commands/update_product", R"({"name":"Mug XL","sku":"MUG_XL.2-b"})"));
  EXPECT_TRUE(passes("commands/adjust_stock", R"({"delta":-5})"));
  EXPECT_TRUE(passes("commands/adjust_stock", R"({"delta":1000000000})"));
  EXPECT_TRUE(
      passes("commands/add_cart_item", with_uuid(R"({"product_id":")", R"(","quantity":1})")));
  EXPECT_TRUE(
      passes("commands/add_cart_item", with_uuid(R"({"product_id":")", R"(","quantity":1000})")));
  EXPECT_TRUE(passes("commands/add_cart_item",
                     R"({"product_id":"0F8FAD5B-D9CB-469F-A165-70867728950E","quantity":2})"));
  EXPECT_TRUE(passes("commands/change_cart_item", R"({"quantity":0})"));
  EXPECT_TRUE(passes("commands/change_cart_item", R"({"quantity":1000})"));
  EXPECT_TRUE(passes("commands/cancel_order", R"({})"));
  EXPECT_TRUE(passes("commands/cancel_order", R"({"reason":"too slow"})"));
  EXPECT_TRUE(passes("commands/ship_order", R"({"carrier":"DHL","tracking_number":"JJD01"})"));
  EXPECT_TRUE(passes("commands/start_payment", R"({"provider":"sandbox"})"));
  EXPECT_TRUE(passes("commands/sandbox_webhook",
                     with_uuid(R"({"payment_id":")", R"(","status":"succeeded"})")));
  EXPECT_TRUE(passes("commands/sandbox_webhook",
                     with_uuid(R"({"payment_id":")", R"(","status":"failed","reason":"no"})")));
}

// -------------------------------------------------------------------------------------- failures
TEST(CommandSchemaTest, MissingFieldIsNamed) {
  EXPECT_TRUE(fails_naming("commands/register",
                           R"({"email":"ann@example.com","password":"0123456789"})",
                           {"name", "required"}));
  EXPECT_TRUE(fails_naming("commands/add_cart_item", R"({"quantity":1})",
                           {"product_id", "required"}));
  EXPECT_TRUE(fails_naming("commands/add_cart_item", with_uuid(R"({"product_id":")", R"("})"),
                           {"quantity", "required"}));
  EXPECT_TRUE(fails_naming("commands/ship_order", R"({"carrier":"DHL"})",
                           {"tracking_number", "required"}));
  EXPECT_TRUE(fails_naming("commands/start_payment", R"({})", {"provider", "required"}));
}

TEST(CommandSchemaTest, UnknownFieldIsNamed) {
  EXPECT_TRUE(fails_naming(
      "commands/register",
      R"({"email":"ann@example.com","password":"0123456789","name":"Ann","roles":["admin"]})",
      {"roles", "unknown field"}));
  EXPECT_TRUE(fails_naming("commands/change_cart_item", R"({"quantity":1,"price":"0"})",
                           {"price", "unknown field"}));
  EXPECT_TRUE(fails_naming("commands/cancel_order", R"({"reason":"x","refund":true})",
                           {"refund", "unknown field"}));
}

// The exact problems a client sees.
TEST(CommandSchemaTest, ProblemsReadAsFieldColonReason) {
  using V = std::vector<std::string>;
  EXPECT_EQ(validate("commands/register", "{}"),
            (V{"email: is required", "password: is required", "name: is required"}));
  EXPECT_EQ(validate("commands/change_cart_item", R"({"quantity":"1"})"),
            V{"quantity: must be of type integer"});
  EXPECT_EQ(validate("commands/change_cart_item", R"({"quantity":1001})"),
            V{"quantity: is too large"});
  EXPECT_EQ(validate("commands/change_cart_item", R"({"quantity":1,"price":"0"})"),
            V{"price: unknown field"});
  // An unknown field whose value is an object is named itself, not by its members.
  EXPECT_EQ(validate("commands/change_cart_item", R"({"quantity":1,"meta":{"a":1,"b":2}})"),
            V{"meta: unknown field"});
  EXPECT_EQ(validate("commands/update_product", "{}"), V{"body: needs at least one field"});
  EXPECT_EQ(validate("commands/start_payment", R"({"provider":"paypal"})"),
            V{"provider: must be one of sandbox"});
}

TEST(CommandSchemaTest, WrongTypeIsNamed) {
  EXPECT_TRUE(fails_naming("commands/add_cart_item",
                           with_uuid(R"({"product_id":")", R"(","quantity":"2"})"),
                           {"quantity", "integer"}));
  EXPECT_TRUE(fails_naming("commands/add_cart_item",
                           with_uuid(R"({"product_id":")", R"(","quantity":1.5})"),
                           {"quantity", "integer"}));
  EXPECT_TRUE(fails_naming("commands/create_product",
                           R"({"name":"Mug","description":"","price":12.5,"stock":1,)"
                           R"("category_id":")" + std::string(kUuid) + R"(","sku":"M"})",
                           {"price", "string"}));
  EXPECT_TRUE(fails_naming("commands/register",
                           R"({"email":"ann@example.com","password":"0123456789","name":7})",
                           {"name", "string"}));
  EXPECT_TRUE(fails_naming("commands/adjust_stock", R"({"delta":null})", {"delta", "integer"}));
  EXPECT_TRUE(fails_naming("commands/cancel_order", R"([])", {"body", "object"}));
}

TEST(CommandSchemaTest, TooLongOrTooShortIsNamed) {
  const std::string long_name(101, 'x');
  EXPECT_TRUE(fails_naming(
      "commands/register",
      R"({"email":"ann@example.com","password":"0123456789","name":")" + long_name + R"("})",
      {"name", "too long"}));
  EXPECT_TRUE(passes(  // 100 characters are fine
      "commands/register",
      R"({"email":"ann@example.com","password":"0123456789","name":")" + long_name.substr(1) +
          R"("})"));
  EXPECT_TRUE(fails_naming("commands/register",
                           R"({"email":"ann@example.com","password":"short","name":"Ann"})",
                           {"password", "too short"}));
  EXPECT_TRUE(fails_naming("commands/cancel_order",
                           R"({"reason":")" + std::string(501, 'r') + R"("})",
                           {"reason", "too long"}));
  EXPECT_TRUE(fails_naming("commands/create_category", R"({"name":""})", {"name", "too short"}));
}

TEST(CommandSchemaTest, BadUuidIsNamed) {
  for (const char* bad : {"not-a-uuid", "0f8fad5b-d9cb-469f-a165-70867728950",
                          "0f8fad5bd9cb469fa16570867728950e",
                          "0f8fad5b-d9cb-469f-a165-70867728950e0",
                          "gf8fad5b-d9cb-469f-a165-70867728950e",
                          " 0f8fad5b-d9cb-469f-a165-70867728950e"}) {
    EXPECT_TRUE(fails_naming("commands/add_cart_item",
                             R"({"product_id":")" + std::string(bad) + R"(","quantity":1})",
                             {"product_id", "invalid format"}))
        << bad;
  }
  EXPECT_TRUE(fails_naming("commands/create_category", R"({"name":"Mugs","parent_id":"x"})",
                           {"parent_id", "invalid format"}));
  EXPECT_TRUE(fails_naming("commands/sandbox_webhook",
                           R"({"payment_id":"123","status":"succeeded"})",
                           {"payment_id", "invalid format"}));
}

TEST(CommandSchemaTest, BadMoneyIsNamed) {
  for (const char* bad : {"-1", "1.", ".5", "1.2345", "1e3", "12,50", " 1", "1 ", "", "abc",
                          "1234567890123", "+1", "0x10"}) {
    EXPECT_TRUE(fails_naming("commands/create_product", product_body(bad), {"price"})) << bad;
    EXPECT_TRUE(fails_naming("commands/update_product",
                             R"({"price":")" + std::string(bad) + R"("})",
                             {"price", "invalid format"}))
        << bad;
  }
}

TEST(CommandSchemaTest, OutOfRangeQuantityIsNamed) {
  EXPECT_TRUE(fails_naming("commands/add_cart_item",
                           with_uuid(R"({"product_id":")", R"(","quantity":0})"),
                           {"quantity", "too small"}));
  EXPECT_TRUE(fails_naming("commands/add_cart_item",
                           with_uuid(R"({"product_id":")", R"(","quantity":-3})"),
                           {"quantity", "too small"}));
  EXPECT_TRUE(fails_naming("commands/add_cart_item",
                           with_uuid(R"({"product_id":")", R"(","quantity":1001})"),
                           {"quantity", "too large"}));
  EXPECT_TRUE(fails_naming("commands/change_cart_item", R"({"quantity":-1})",
                           {"quantity", "too small"}));
  EXPECT_TRUE(fails_naming("commands/change_cart_item", R"({"quantity":1001})",
                           {"quantity", "too large"}));
  EXPECT_TRUE(fails_naming("commands/adjust_stock", R"({"delta":1000000001})",
                           {"delta", "too large"}));
  EXPECT_TRUE(fails_naming("commands/create_product",
                           R"({"name":"Mug","description":"","price":"1","stock":-1,)"
                           R"("category_id":")" + std::string(kUuid) + R"(","sku":"M"})",
                           {"stock", "too small"}));
}

TEST(CommandSchemaTest, EnumsAndEmptyUpdates) {
  EXPECT_TRUE(fails_naming("commands/start_payment", R"({"provider":"paypal"})",
                           {"provider", "sandbox"}));
  EXPECT_TRUE(fails_naming("commands/sandbox_webhook",
                           with_uuid(R"({"payment_id":")", R"(","status":"pending"})"),
                           {"status", "succeeded"}));
  EXPECT_TRUE(fails_naming("commands/update_product", R"({})", {"at least one field"}));
  EXPECT_TRUE(fails_naming("commands/update_product", R"({"sku":"-starts-with-dash"})",
                           {"sku", "invalid format"}));
  EXPECT_TRUE(fails_naming("commands/update_product", R"({"sku":"has space"})",
                           {"sku", "invalid format"}));
}

TEST(CommandSchemaTest, RegisterRejectsMalformedEmail) {
  for (const char* bad : {"not-an-email", "ann@example", "a b@example.com", "@example.com",
                          "ann@@example.com"}) {
    EXPECT_TRUE(fails_naming("commands/register",
                             R"({"email":")" + std::string(bad) +
                                 R"(","password":"0123456789","name":"Ann"})",
                             {"email", "invalid format"}))
        << bad;
  }
}

void collect_patterns(const shop::json::Value& v, std::vector<std::string>& out) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      if (std::string_view(m.name.GetString()) == "pattern" && m.value.IsString()) {
        out.emplace_back(m.value.GetString());
      } else {
        collect_patterns(m.value, out);
      }
    }
  } else if (v.IsArray()) {
    for (const auto& item : v.GetArray()) collect_patterns(item, out);
  }
}

// RapidJSON's validator silently ignores a "pattern" its internal regex cannot compile (such as
// one using "\s"), so every pattern of every schema must compile.
TEST(CommandSchemaTest, EverySchemaPatternCompiles) {
  const auto& registry = SchemaRegistry::instance();
  for (const auto& name : registry.names()) {
    shop::json::Document doc;
    ASSERT_TRUE(shop::json::parse(registry.text(name), doc).empty()) << name;
    std::vector<std::string> patterns;
    collect_patterns(doc, patterns);
    for (const auto& p : patterns) {
      const rapidjson::internal::Regex regex(p.c_str());
      EXPECT_TRUE(regex.IsValid()) << name << ": " << p;
    }
  }
}

// ---------------------------------------------------------------------------------- accounts
TEST(CommandSchemaTest, AccountBodies) {
  EXPECT_TRUE(passes("commands/update_profile", R"({"name":"Ann Smith"})"));
  EXPECT_TRUE(passes("commands/update_profile", R"({"phone":"+49 170 1234-567"})"));
  EXPECT_TRUE(passes("commands/update_profile", R"({"name":"Ann","phone":null})"));
  EXPECT_TRUE(fails_naming("commands/update_profile", R"({})", {"at least one field"}));
  EXPECT_TRUE(fails_naming("commands/update_profile", R"({"name":""})", {"name"}));
  EXPECT_TRUE(fails_naming("commands/update_profile", R"({"phone":"0170 1234567"})", {"phone"}));
  EXPECT_TRUE(fails_naming("commands/update_profile", R"({"phone":7})", {"phone"}));
  // Nothing but the profile: no roles, e-mail address or ids through this door.
  for (const char* field : {"roles", "email", "id", "user_id", "password", "created_at"}) {
    EXPECT_TRUE(fails_naming("commands/update_profile",
                             std::string(R"({"name":"Ann",")") + field + R"(":["admin"]})",
                             {field, "unknown field"}))
        << field;
  }

  EXPECT_TRUE(passes("commands/change_password",
                     R"({"current_password":"old one","new_password":"a new passphrase"})"));
  EXPECT_TRUE(fails_naming("commands/change_password", R"({"new_password":"a new passphrase"})",
                           {"current_password", "required"}));
  EXPECT_TRUE(fails_naming("commands/change_password",
                           R"({"current_password":"x","new_password":"y","user_id":"u"})",
                           {"user_id", "unknown field"}));
  EXPECT_TRUE(
      fails_naming("commands/change_password",
                   R"({"current_password":"x","new_password":")" + std::string(129, 'a') + R"("})",
                   {"new_password"}));

  EXPECT_TRUE(passes("commands/set_roles", R"({"roles":["customer"]})"));
  EXPECT_TRUE(passes("commands/set_roles", R"({"roles":["admin","staff","customer"]})"));
  EXPECT_TRUE(fails_naming("commands/set_roles", R"({"roles":[]})", {"roles"}));
  EXPECT_TRUE(fails_naming("commands/set_roles", R"({"roles":["root"]})", {"roles"}));
  EXPECT_TRUE(fails_naming("commands/set_roles", R"({"roles":["staff","staff"]})", {"roles"}));
  EXPECT_TRUE(fails_naming("commands/set_roles", R"({"roles":"admin"})", {"roles"}));
  EXPECT_TRUE(fails_naming("commands/set_roles", R"({})", {"roles", "required"}));
  EXPECT_TRUE(fails_naming("commands/set_roles", R"({"roles":["staff"],"user_id":"x"})",
                           {"user_id", "unknown field"}));
}

}  // namespace
