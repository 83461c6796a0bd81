// Every event the domain emits matches its published JSON Schema and survives a JSON round trip.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "shop/domain/aggregates.h"
#include "shop/events/types.h"
#include "shop/infra/schema.h"

namespace {

namespace ev = shop::events;
using namespace shop::domain;
using shop::infra::SchemaRegistry;

template <class State>
State given(std::initializer_list<ev::Event> history) {
  State s{};
  for (const auto& e : history) s = evolve(std::move(s), e);
  return s;
}

const std::string kUser = "11111111-1111-4111-8111-111111111111";
const std::string kCategory = "22222222-2222-4222-8222-222222222222";
const std::string kChild = "22222222-2222-4222-8222-333333333333";
const std::string kOtherCategory = "22222222-2222-4222-8222-444444444444";
const std::string kMug = "33333333-3333-4333-8333-333333333333";
const std::string kPen = "33333333-3333-4333-8333-444444444444";
const std::string kOrder = "44444444-4444-4444-8444-444444444444";
const std::string kPayment = "55555555-5555-4555-8555-555555555555";
const std::string kFailedPayment = "55555555-5555-4555-8555-666666666666";

// The events of a representative set of decisions, as the command side would append them.
class Scenario {
 public:
  Scenario() { build(); }
  const Events& events() const { return events_; }

 private:
  void take(const Decision& d, const char* what) {
    if (!d.ok()) {
      ADD_FAILURE() << what << " failed: " << d.error().code << " " << d.error().message;
      return;
    }
    for (const auto& e : d.value()) events_.push_back(e);
  }

  void build() {
    take(decide(UserState{}, RegisterUser{.user_id = kUser, .email = "ann@example.com",
                                          .name = "Ann", .roles = {"customer"}}),
         "register");
    take(decide(UserState{},
                RegisterUser{.user_id = shop::uuid_from_name("staff"),
                             .email = "bob@shop.example.org", .name = "Bob",
                             .roles = {"staff", "admin"}}),
         "register staff");

    const auto ann = given<UserState>({ev::UserRegistered{
        .user_id = kUser, .email = "ann@example.com", .name = "Ann", .roles = {"customer"}}});
    take(decide(ann, ChangeProfile{.name = "Ann Smith", .phone = "+4917012345678"}),
         "change profile");
    take(decide(evolve(ann, ev::UserProfileChanged{.user_id = kUser, .phone = "+4917012345678"}),
                ChangeProfile{.remove_phone = true}),
         "remove the phone number");
    take(decide(ann, SetRoles{shop::uuid_from_name("staff"), {"staff", "customer"}}, {}),
         "grant a role");
    const std::string session = "66666666-6666-4666-8666-666666666666";
    const std::string r1 = "77777777-7777-4777-8777-000000000001";
    const std::string r2 = "77777777-7777-4777-8777-000000000002";
    take(decide(SessionState{}, StartSession{session, kUser, r1, "2026-12-01T10:00:00.000000Z"}),
         "start session");
    const auto started =
        given<SessionState>({ev::SessionStarted{.session_id = session,
                                                .user_id = kUser,
                                                .refresh_id = r1,
                                                .expires_at = "2026-12-01T10:00:00.000000Z"}});
    take(decide(started, RotateRefreshToken{kUser, r1, r2, "2026-12-02T10:00:00.123456Z"}),
         "rotate");
    take(decide(started, RevokeSession{kUser, "logout"}), "logout");
    take(decide(started, RevokeSession{kUser, "logout_all"}), "logout everywhere");
    take(decide(started, RotateRefreshToken{kUser, r2, r2, "2026-12-02T10:00:00Z"}),
         "reuse of a spent refresh token");
    take(decide(ann, ChangePassword{}, {{session, started}}), "change password");
    take(decide(evolve(ann, ev::UserRolesChanged{.user_id = kUser, .roles = {"customer", "staff"}}),
                SetRoles{shop::uuid_from_name("staff"), {"customer"}}, {{session, started}}),
         "take a role away");

    take(decide(CategoryState{}, CreateCategory{.category_id = kCategory, .name = "Kitchen"},
                CategoryState{}),
         "create root category");
    const auto kitchen = given<CategoryState>(
        {ev::CategoryCreated{.category_id = kCategory, .name = "Kitchen"}});
    take(decide(CategoryState{},
                CreateCategory{.category_id = kChild, .name = "Mugs", .parent_id = kCategory},
                kitchen),
         "create child category");

    const CreateProduct create_mug{.product_id = kMug, .name = "Mug", .description = "",
                                   .sku = "MUG-1", .category_id = kCategory, .price = 1200,
                                   .stock = 10};
    take(decide(ProductState{}, create_mug, kitchen), "create product");
    auto mug = given<ProductState>({ev::ProductCreated{
        .product_id = kMug, .name = "Mug", .description = "", .sku = "MUG-1",
        .category_id = kCategory, .price = 1200, .stock = 10}});
    take(decide(mug, UpdateProduct{.price = 1300}, CategoryState{}), "update price");
    const auto other = given<CategoryState>(
        {ev::CategoryCreated{.category_id = kOtherCategory, .name = "Office"}});
    take(decide(mug,
                UpdateProduct{.name = "Mug XL", .description = "A big mug", .sku = "MUG-XL",
                              .category_id = kOtherCategory, .price = 0},
                other),
         "update everything");
    take(decide(mug, AdjustStock{.delta = 5}), "stock up");
    take(decide(mug, AdjustStock{.delta = -10}), "stock down to zero");
    take(decide(mug, DiscontinueProduct{}), "discontinue");

    const auto pen = given<ProductState>({ev::ProductCreated{
        .product_id = kPen, .name = "Pen", .description = "Blue", .sku = "PEN-1",
        .category_id = kCategory, .price = 250, .stock = 3}});
    take(decide(CartState{}, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 2},
                mug),
         "add to cart");
    const auto cart = given<CartState>(
        {ev::CartItemAdded{.user_id = kUser, .product_id = kMug, .name = "Mug",
                           .unit_price = 1200, .quantity = 2, .line_quantity = 2},
         ev::CartItemAdded{.user_id = kUser, .product_id = kPen, .name = "Pen",
                           .unit_price = 250, .quantity = 3, .line_quantity = 3}});
    take(decide(cart, ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 4},
                mug),
         "change quantity");
    take(decide(cart, ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 0},
                mug),
         "change quantity to 0");
    take(decide(cart, RemoveCartItem{.user_id = kUser, .product_id = kPen}), "remove");

    const PlaceOrder place{.order_id = kOrder, .order_number = "SO-000042", .user_id = kUser,
                           .currency = "EUR"};
    const Decision placed = decide(cart, place, {{kMug, mug}, {kPen, pen}});
    take(placed, "checkout");
    OrderState order;
    if (placed.ok()) {
      for (const auto& e : placed.value()) {
        order = evolve(order, e);
        mug = evolve(mug, e);
      }
    }
    std::map<std::string, ProductState> products{{kMug, mug}, {kPen, pen}};
    take(decide(order, CancelOrder{.reason = "changed my mind"}, products), "cancel");
    take(decide(order, CancelOrder{}, products), "cancel without a reason");

    take(decide(order, InitiatePayment{.payment_id = kPayment, .provider = "sandbox"}),
         "initiate payment");
    const auto payment = given<PaymentState>({ev::PaymentInitiated{
        .payment_id = kPayment, .order_id = kOrder, .user_id = kUser, .provider = "sandbox",
        .currency = "EUR", .amount = order.total}});
    const Decision captured = decide(payment, SettlePayment{.succeeded = true}, order);
    take(captured, "capture");
    const auto failing = given<PaymentState>({ev::PaymentInitiated{
        .payment_id = kFailedPayment, .order_id = kOrder, .user_id = kUser,
        .provider = "sandbox", .currency = "EUR", .amount = order.total}});
    take(decide(failing, SettlePayment{.succeeded = false}, order), "payment failure");

    if (captured.ok()) {
      for (const auto& e : captured.value()) order = evolve(order, e);
    }
    take(decide(order, ShipOrder{.carrier = "DHL", .tracking_number = "JJD000123"}), "ship");
    order = evolve(order, ev::OrderShipped{.order_id = kOrder, .carrier = "DHL",
                                           .tracking_number = "JJD000123"});
    take(decide(order, DeliverOrder{}), "deliver");
  }

  Events events_;
};

const Scenario& scenario() {
  static const Scenario s;
  return s;
}

std::vector<std::string> validate_json(const std::string& schema, const std::string& text) {
  shop::json::Document doc;
  const std::string err = shop::json::parse(text, doc);
  if (!err.empty()) return {"not JSON: " + err};
  return SchemaRegistry::instance().validate(schema, doc);
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : "; ") + s;
  return out;
}

// ------------------------------------------------------------------------------------- schemas
TEST(EventSchemaTest, EveryEventTypeHasASchema) {
  const auto& registry = SchemaRegistry::instance();
  ASSERT_EQ(ev::all_types().size(), std::variant_size_v<ev::Event>);
  for (auto type : ev::all_types()) {
    EXPECT_TRUE(registry.has("events/" + std::string(type))) << type;
  }
}

TEST(EventSchemaTest, EverySchemaUnderEventsIsAnEventType) {
  const std::set<std::string_view> types(ev::all_types().begin(), ev::all_types().end());
  std::size_t count = 0;
  for (const auto& name : SchemaRegistry::instance().names()) {
    if (!name.starts_with("events/")) continue;
    ++count;
    EXPECT_TRUE(types.count(std::string_view(name).substr(7))) << name << " has no event type";
  }
  EXPECT_EQ(count, types.size());
}

TEST(EventSchemaTest, TheScenarioCoversEveryEventType) {
  std::set<std::string_view> seen;
  for (const auto& e : scenario().events()) seen.insert(ev::type_of(e));
  for (auto type : ev::all_types()) EXPECT_TRUE(seen.count(type)) << type << " never emitted";
  EXPECT_EQ(seen.size(), ev::all_types().size());
}

TEST(EventSchemaTest, EveryEmittedEventMatchesItsSchema) {
  ASSERT_FALSE(scenario().events().empty());
  for (const auto& e : scenario().events()) {
    const std::string type(ev::type_of(e));
    const std::string data = ev::data_of(e);
    const auto problems = validate_json("events/" + type, data);
    EXPECT_TRUE(problems.empty()) << type << " " << data << ": " << joined(problems);
  }
}

// The schemas are not vacuous: payloads that break them are refused, naming the field.
TEST(EventSchemaTest, SchemasRejectBrokenPayloads) {
  struct Case {
    const char* schema;
    std::string data;
    const char* field;
  };
  const std::string id = kOrder;
  const std::vector<Case> cases = {
      {"events/StockReserved",
       R"({"product_id":")" + kMug + R"(","order_id":")" + id +
           R"(","quantity":1,"stock_after":-1})",
       "stock_after"},
      {"events/StockReserved",
       R"({"product_id":"nope","order_id":")" + id + R"(","quantity":1,"stock_after":0})",
       "product_id"},
      {"events/OrderDelivered", R"({"order_id":")" + id + R"(","extra":1})", "extra"},
      {"events/OrderDelivered", R"({})", "order_id"},
      {"events/OrderPlaced",
       R"({"order_id":")" + id + R"(","order_number":"SO-1","user_id":")" + kUser +
           R"(","lines":[],"total":0,"currency":"EUR"})",
       "lines"},
      {"events/OrderPlaced",
       R"({"order_id":")" + id + R"(","order_number":"SO-1","user_id":")" + kUser +
           R"(","lines":[{"product_id":")" + kMug +
           R"(","name":"Mug","unit_price":1,"quantity":1,"line_total":1}],)"
           R"("total":1,"currency":"eur"})",
       "currency"},
      {"events/OrderPlaced",
       R"({"order_id":")" + id + R"(","order_number":"SO-1","user_id":")" + kUser +
           R"(","lines":[{"product_id":")" + kMug +
           R"(","name":"Mug","unit_price":1,"quantity":1,"line_total":1,"colour":"red"}],)"
           R"("total":1,"currency":"EUR"})",
       "lines/0/colour: unknown field"},
      {"events/PaymentCaptured",
       R"({"payment_id":")" + kPayment + R"(","order_id":")" + id + R"(","amount":"12.00"})",
       "amount"},
      {"events/ProductUpdated",
       R"({"product_id":")" + kMug +
           R"(","name":null,"description":null,"sku":null,"category_id":null,"price":-1})",
       "price"},
      {"events/UserRegistered",
       R"({"user_id":")" + kUser + R"(","email":"a@b.c","name":"A","roles":["root"]})", "roles"},
      {"events/SessionRevoked",
       R"({"session_id":")" + kUser + R"(","user_id":")" + kUser + R"(","reason":"bored"})",
       "reason"},
      {"events/UserProfileChanged",
       R"({"user_id":")" + kUser + R"(","name":null,"phone":"017012345678","phone_removed":false})",
       "phone"},
      {"events/UserProfileChanged",
       R"({"user_id":")" + kUser + R"(","name":"","phone":null,"phone_removed":false})", "name"},
      {"events/UserProfileChanged",
       R"({"user_id":")" + kUser +
           R"(","name":null,"phone":"+4917012345678","phone_removed":true})",
       "anyOf"},
      {"events/UserProfileChanged", R"({"user_id":")" + kUser + R"(","name":"A","phone":null})",
       "phone_removed"},
      {"events/UserPasswordChanged",
       R"({"user_id":")" + kUser + R"(","password_hash":"$argon2id$..."})", "password_hash"},
      {"events/UserRolesChanged", R"({"user_id":")" + kUser + R"(","roles":[]})", "roles"},
      {"events/UserRolesChanged", R"({"user_id":")" + kUser + R"(","roles":["owner"]})", "roles"},
      {"events/UserRolesChanged", R"({"user_id":")" + kUser + R"(","roles":["staff","staff"]})",
       "roles"},
      {"events/SessionStarted",
       R"({"session_id":")" + kUser + R"(","user_id":")" + kUser + R"(","refresh_id":")" + kUser +
           R"(","expires_at":"2026-12-01 10:00"})",
       "expires_at"},
  };
  for (const auto& c : cases) {
    const auto problems = validate_json(c.schema, c.data);
    ASSERT_FALSE(problems.empty()) << c.schema << " accepted " << c.data;
    EXPECT_NE(joined(problems).find(c.field), std::string::npos)
        << c.schema << " " << c.data << ": " << joined(problems);
  }
}

// ------------------------------------------------------------------------------------ round trip
TEST(EventCodecTest, EveryEventSurvivesAJsonRoundTrip) {
  for (const auto& e : scenario().events()) {
    const std::string type(ev::type_of(e));
    const std::string data = ev::data_of(e);
    const ev::Event back = ev::decode(type, ev::schema_version_of(e), data);
    EXPECT_EQ(ev::type_of(back), type);
    EXPECT_EQ(ev::data_of(back), data);
    EXPECT_EQ(ev::stream_of(back), ev::stream_of(e));
  }
}

TEST(EventCodecTest, RecordedEventDecodes) {
  const ev::Event e = ev::OrderDelivered{.order_id = kOrder};
  ev::RecordedEvent r;
  r.type = "OrderDelivered";
  r.schema_version = 1;
  r.data = ev::data_of(e);
  const ev::Event back = r.decode();
  ASSERT_TRUE(std::holds_alternative<ev::OrderDelivered>(back));
  EXPECT_EQ(std::get<ev::OrderDelivered>(back).order_id, kOrder);
}

TEST(EventCodecTest, PayloadFormIsStable) {
  // The stored form is a contract with the projector and analysts: field names and order.
  EXPECT_EQ(ev::data_of(ev::StockReserved{.product_id = "p", .order_id = "o", .quantity = 2,
                                          .stock_after = 3}),
            R"({"product_id":"p","order_id":"o","quantity":2,"stock_after":3})");
  EXPECT_EQ(ev::data_of(ev::CategoryCreated{.category_id = "c", .name = "N\"ame"}),
            R"({"category_id":"c","name":"N\"ame","parent_id":null})");
  EXPECT_EQ(ev::data_of(ev::ProductUpdated{.product_id = "p", .price = 5}),
            R"({"product_id":"p","name":null,"description":null,"sku":null,)"
            R"("category_id":null,"price":5})");
}

TEST(EventCodecTest, OptionalFieldsMayBeAbsentOrNull) {
  const ev::Event e = ev::decode("ProductUpdated", 1, R"({"product_id":"p","sku":"S-2"})");
  const auto& u = std::get<ev::ProductUpdated>(e);
  EXPECT_EQ(u.product_id, "p");
  EXPECT_EQ(u.sku, "S-2");
  EXPECT_FALSE(u.name.has_value());
  EXPECT_FALSE(u.price.has_value());
  const ev::Event n = ev::decode("CategoryCreated", 1,
                                 R"({"category_id":"c","name":"N","parent_id":null})");
  EXPECT_FALSE(std::get<ev::CategoryCreated>(n).parent_id.has_value());
}

TEST(EventCodecTest, StreamsAreCategoryDashId) {
  const ev::Event e = ev::OrderPaid{.order_id = kOrder, .payment_id = kPayment, .amount = 1};
  EXPECT_EQ(ev::stream_of(e), "order-" + kOrder);
  EXPECT_EQ(ev::category_of(ev::stream_of(e)), "order");
  EXPECT_EQ(ev::stream_of(ev::CartCheckedOut{.user_id = kUser, .order_id = kOrder}),
            "cart-" + kUser);
  EXPECT_EQ(ev::stream_of(ev::StockReserved{.product_id = kMug, .order_id = kOrder}),
            "product-" + kMug);
  EXPECT_EQ(ev::category_of("nodash"), "nodash");
}

TEST(EventCodecTest, DecodeRejectsBadInput) {
  const std::string mug = R"({"product_id":")" + kMug + R"("})";
  // A valid payload decodes, so each failure below is due to its one defect.
  EXPECT_NO_THROW(ev::decode("ProductDiscontinued", 1, mug));
  EXPECT_THROW(ev::decode("NoSuchEvent", 1, mug), shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("", 1, mug), shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("ProductDiscontinued", 2, mug), shop::codec::DecodeError);
  // malformed payloads
  EXPECT_THROW(ev::decode("ProductDiscontinued", 1, "{"), shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("ProductDiscontinued", 1, ""), shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("ProductDiscontinued", 1, mug + " trailing"), shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("ProductDiscontinued", 1, "[]"), shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("ProductDiscontinued", 1, "null"), shop::codec::DecodeError);
  // missing field
  EXPECT_THROW(ev::decode("ProductDiscontinued", 1, "{}"), shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("StockAdjusted", 1, R"({"product_id":"p","delta":1})"),
               shop::codec::DecodeError);
  // wrong types
  EXPECT_THROW(ev::decode("ProductDiscontinued", 1, R"({"product_id":7})"),
               shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("StockAdjusted", 1, R"({"product_id":"p","delta":"1","stock_after":1})"),
               shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("StockAdjusted", 1, R"({"product_id":"p","delta":1.5,"stock_after":1})"),
               shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("UserRegistered", 1,
                          R"({"user_id":"u","email":"e","name":"n","roles":"customer"})"),
               shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("UserRegistered", 1,
                          R"({"user_id":"u","email":"e","name":"n","roles":[1]})"),
               shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("OrderPlaced", 1,
                          R"({"order_id":"o","order_number":"n","user_id":"u","lines":[{}],)"
                          R"("total":0,"currency":"EUR"})"),
               shop::codec::DecodeError);
  EXPECT_THROW(ev::decode("CartCheckedOut", 1, R"({"user_id":null,"order_id":"o"})"),
               shop::codec::DecodeError);
}

TEST(EventCodecTest, DecodeErrorNamesTheField) {
  try {
    (void)ev::decode("StockAdjusted", 1, R"({"product_id":"p","delta":1})");
    FAIL() << "no DecodeError";
  } catch (const shop::codec::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("stock_after"), std::string::npos) << e.what();
  }
  try {
    (void)ev::decode("StockAdjusted", 1, R"({"product_id":"p","delta":true,"stock_after":1})");
    FAIL() << "no DecodeError";
  } catch (const shop::codec::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("delta"), std::string::npos) << e.what();
  }
}

}  // namespace
