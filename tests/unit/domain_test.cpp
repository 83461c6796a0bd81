// The write model, one rule at a time: given events / when command / then events (or an error).
#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <sstream>
#include <string>

#include "shop/domain/aggregates.h"
#include "shop/domain/password_policy.h"

namespace {

namespace ev = shop::events;
using namespace shop::domain;

// ---------------------------------------------------------------- given / when / then helpers

// given: the state folded from a stream's history.
template <class State>
State given(std::initializer_list<ev::Event> history) {
  State s{};
  for (const auto& e : history) s = evolve(std::move(s), e);
  return s;
}

std::string describe(const Events& es) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < es.size(); ++i) {
    out << (i ? ", " : "") << ev::type_of(es[i]) << ev::data_of(es[i]);
  }
  out << "]";
  return out.str();
}

std::string describe(const DomainError& e) {
  std::string out = e.code + " (" + e.message + ")";
  for (const auto& d : e.details) out += " [" + d + "]";
  return out;
}

// then: exactly these events, compared by type name and every field of their payload.
::testing::AssertionResult emits(const Decision& d, const Events& expected) {
  if (!d.ok()) {
    return ::testing::AssertionFailure() << "expected " << describe(expected) << ", got error "
                                         << describe(d.error());
  }
  const Events& got = d.value();
  bool same = got.size() == expected.size();
  for (std::size_t i = 0; same && i < got.size(); ++i) {
    same = ev::type_of(got[i]) == ev::type_of(expected[i]) &&
           ev::data_of(got[i]) == ev::data_of(expected[i]);
  }
  if (!same) {
    return ::testing::AssertionFailure() << "expected " << describe(expected) << "\n     got "
                                         << describe(got);
  }
  return ::testing::AssertionSuccess();
}

// then: nothing happens (a no-op or an idempotent repeat), and it is not an error.
::testing::AssertionResult emits_nothing(const Decision& d) { return emits(d, {}); }

// then: the rule says no, with this code.
::testing::AssertionResult fails_with(const Decision& d, std::string_view code) {
  if (d.ok()) {
    return ::testing::AssertionFailure() << "expected error " << code << ", got events "
                                         << describe(d.value());
  }
  if (d.error().code != code) {
    return ::testing::AssertionFailure() << "expected error " << code << ", got "
                                         << describe(d.error());
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- fixtures: ids and histories
const std::string kUser = "11111111-1111-4111-8111-111111111111";
const std::string kOtherUser = "11111111-1111-4111-8111-222222222222";
const std::string kCategory = "22222222-2222-4222-8222-222222222222";
const std::string kParent = "22222222-2222-4222-8222-333333333333";
const std::string kOtherCategory = "22222222-2222-4222-8222-444444444444";
const std::string kMug = "33333333-3333-4333-8333-333333333333";
const std::string kPen = "33333333-3333-4333-8333-444444444444";
const std::string kLamp = "33333333-3333-4333-8333-555555555555";
const std::string kOrder = "44444444-4444-4444-8444-444444444444";
const std::string kPayment = "55555555-5555-4555-8555-555555555555";
const std::string kOtherPayment = "55555555-5555-4555-8555-666666666666";

ev::CategoryCreated category_created(const std::string& id) {
  return {.category_id = id, .name = "Kitchen", .parent_id = std::nullopt};
}

ev::ProductCreated product_created(const std::string& id, const std::string& name,
                                   std::int64_t price, std::int64_t stock) {
  return {.product_id = id, .name = name, .description = name + " description",
          .sku = "SKU-" + name, .category_id = kCategory, .price = price, .stock = stock};
}

ev::CartItemAdded item_added(const std::string& product_id, const std::string& name,
                             std::int64_t unit_price, std::int64_t quantity,
                             std::int64_t line_quantity) {
  return {.user_id = kUser, .product_id = product_id, .name = name, .unit_price = unit_price,
          .quantity = quantity, .line_quantity = line_quantity};
}

// An order for 2 mugs at 1200 and 1 pen at 300.
ev::OrderPlaced order_placed() {
  return {.order_id = kOrder, .order_number = "SO-000001", .user_id = kUser, .currency = "EUR",
          .lines = {{.product_id = kMug, .name = "Mug", .unit_price = 1200, .quantity = 2,
                     .line_total = 2400},
                    {.product_id = kPen, .name = "Pen", .unit_price = 300, .quantity = 1,
                     .line_total = 300}},
          .total = 2700};
}

ev::OrderPaid order_paid(const std::string& payment_id = kPayment) {
  return {.order_id = kOrder, .payment_id = payment_id, .amount = 2700};
}
ev::OrderShipped order_shipped() {
  return {.order_id = kOrder, .carrier = "DHL", .tracking_number = "TRACK-1"};
}
ev::OrderCancelled order_cancelled() { return {.order_id = kOrder, .reason = "changed my mind"}; }

ev::PaymentInitiated payment_initiated() {
  return {.payment_id = kPayment, .order_id = kOrder, .user_id = kUser, .provider = "sandbox",
          .currency = "EUR", .amount = 2700};
}

// =========================================================================================== user
TEST(UserTest, RegisterCreatesTheUser) {
  const auto user = given<UserState>({});
  EXPECT_TRUE(emits(decide(user, RegisterUser{.user_id = kUser, .email = "ann@example.com",
                                              .name = "Ann", .roles = {"customer"}}),
                    {ev::UserRegistered{.user_id = kUser, .email = "ann@example.com",
                                        .name = "Ann", .roles = {"customer"}}}));
}

TEST(UserTest, RegisterTwiceIsAlreadyExists) {
  const auto user = given<UserState>({ev::UserRegistered{
      .user_id = kUser, .email = "ann@example.com", .name = "Ann", .roles = {"customer"}}});
  EXPECT_TRUE(fails_with(decide(user, RegisterUser{.user_id = kUser, .email = "ann@example.com",
                                                   .name = "Ann", .roles = {"customer"}}),
                         "already_exists"));
}

TEST(UserTest, EvolveKeepsIdentityAndRoles) {
  const auto user = given<UserState>({ev::UserRegistered{.user_id = kUser,
                                                         .email = "ann@example.com",
                                                         .name = "Ann",
                                                         .roles = {"customer", "staff"}}});
  EXPECT_TRUE(user.exists);
  EXPECT_EQ(user.id, kUser);
  EXPECT_EQ(user.email, "ann@example.com");
  EXPECT_TRUE(user.has_role("staff"));
  EXPECT_TRUE(user.has_role("customer"));
  EXPECT_FALSE(user.has_role("admin"));
}

// ======================================================================================== session
const std::string kSession = "66666666-6666-4666-8666-666666666666";
const std::string kRefresh1 = "77777777-7777-4777-8777-000000000001";
const std::string kRefresh2 = "77777777-7777-4777-8777-000000000002";
const std::string kRefresh3 = "77777777-7777-4777-8777-000000000003";
const std::string kExpiry1 = "2026-12-01T10:00:00.000000Z";
const std::string kExpiry2 = "2026-12-02T10:00:00.000000Z";

ev::SessionStarted session_started() {
  return {
      .session_id = kSession, .user_id = kUser, .refresh_id = kRefresh1, .expires_at = kExpiry1};
}
ev::RefreshTokenRotated rotated_to_2() {
  return {.session_id = kSession,
          .user_id = kUser,
          .spent_refresh_id = kRefresh1,
          .refresh_id = kRefresh2,
          .expires_at = kExpiry2};
}

TEST(SessionTest, StartSession) {
  EXPECT_TRUE(emits(decide(SessionState{}, StartSession{kSession, kUser, kRefresh1, kExpiry1}),
                    {session_started()}));
  EXPECT_TRUE(fails_with(decide(given<SessionState>({session_started()}),
                                StartSession{kSession, kUser, kRefresh1, kExpiry1}),
                         "already_exists"));
}

TEST(SessionTest, TheCurrentRefreshTokenIsRotated) {
  const auto s = given<SessionState>({session_started()});
  EXPECT_TRUE(emits(decide(s, RotateRefreshToken{kUser, kRefresh1, kRefresh2, kExpiry2}),
                    {rotated_to_2()}));
  const auto after = given<SessionState>({session_started(), rotated_to_2()});
  EXPECT_EQ(after.refresh_id, kRefresh2);
  EXPECT_EQ(after.expires_at, kExpiry2);
  EXPECT_FALSE(after.revoked);
  EXPECT_TRUE(emits(decide(after, RotateRefreshToken{kUser, kRefresh2, kRefresh3, kExpiry2}),
                    {ev::RefreshTokenRotated{.session_id = kSession,
                                             .user_id = kUser,
                                             .spent_refresh_id = kRefresh2,
                                             .refresh_id = kRefresh3,
                                             .expires_at = kExpiry2}}));
}

TEST(SessionTest, ASpentRefreshTokenPresentedAgainRevokesTheFamily) {
  const auto s = given<SessionState>({session_started(), rotated_to_2()});
  const Decision d = decide(s, RotateRefreshToken{kUser, kRefresh1, kRefresh3, kExpiry2});
  EXPECT_TRUE(emits(d, {ev::SessionRevoked{
                           .session_id = kSession, .user_id = kUser, .reason = "reuse_detected"}}));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(revokes_session(d.value()));
  // Afterwards not even the current token works.
  const auto revoked = given<SessionState>(
      {session_started(), rotated_to_2(),
       ev::SessionRevoked{.session_id = kSession, .user_id = kUser, .reason = "reuse_detected"}});
  EXPECT_TRUE(revoked.revoked);
  EXPECT_EQ(revoked.revoke_reason, "reuse_detected");
  EXPECT_TRUE(fails_with(decide(revoked, RotateRefreshToken{kUser, kRefresh2, kRefresh3, kExpiry2}),
                         "invalid_token"));
}

TEST(SessionTest, RotationOfAnUnknownSessionOrAnotherUsersIsInvalid) {
  EXPECT_TRUE(
      fails_with(decide(SessionState{}, RotateRefreshToken{kUser, kRefresh1, kRefresh2, kExpiry2}),
                 "invalid_token"));
  const auto s = given<SessionState>({session_started()});
  EXPECT_TRUE(fails_with(decide(s, RotateRefreshToken{kOtherUser, kRefresh1, kRefresh2, kExpiry2}),
                         "invalid_token"));
  const Decision ok = decide(s, RotateRefreshToken{kUser, kRefresh1, kRefresh2, kExpiry2});
  ASSERT_TRUE(ok.ok());
  EXPECT_FALSE(revokes_session(ok.value()));
}

TEST(SessionTest, LogoutRevokesOnce) {
  const auto s = given<SessionState>({session_started(), rotated_to_2()});
  EXPECT_TRUE(
      emits(decide(s, RevokeSession{kUser, "logout"}),
            {ev::SessionRevoked{.session_id = kSession, .user_id = kUser, .reason = "logout"}}));
  EXPECT_TRUE(emits(
      decide(s, RevokeSession{kUser, "logout_all"}),
      {ev::SessionRevoked{.session_id = kSession, .user_id = kUser, .reason = "logout_all"}}));
  const auto revoked = given<SessionState>(
      {session_started(),
       ev::SessionRevoked{.session_id = kSession, .user_id = kUser, .reason = "logout"}});
  EXPECT_TRUE(emits_nothing(decide(revoked, RevokeSession{kUser, "logout"})));
  EXPECT_TRUE(emits_nothing(decide(revoked, RevokeSession{kUser, "logout_all"})));
}

TEST(SessionTest, LogoutOfAnotherUsersOrAnUnknownSessionIsNotFound) {
  const auto s = given<SessionState>({session_started()});
  EXPECT_TRUE(fails_with(decide(s, RevokeSession{kOtherUser, "logout"}), "not_found"));
  EXPECT_TRUE(fails_with(decide(SessionState{}, RevokeSession{kUser, "logout"}), "not_found"));
  EXPECT_TRUE(fails_with(decide(s, RevokeSession{kUser, "reuse_detected"}), "invalid_value"));
}

// ======================================================================================= category
TEST(CategoryTest, CreateRootCategory) {
  const auto category = given<CategoryState>({});
  EXPECT_TRUE(emits(decide(category, CreateCategory{.category_id = kCategory, .name = "Kitchen"},
                           CategoryState{}),
                    {ev::CategoryCreated{.category_id = kCategory, .name = "Kitchen",
                                         .parent_id = std::nullopt}}));
}

TEST(CategoryTest, CreateUnderAnExistingParent) {
  const auto parent = given<CategoryState>({category_created(kParent)});
  EXPECT_TRUE(emits(decide(CategoryState{},
                           CreateCategory{.category_id = kCategory, .name = "Mugs",
                                          .parent_id = kParent},
                           parent),
                    {ev::CategoryCreated{.category_id = kCategory, .name = "Mugs",
                                         .parent_id = kParent}}));
}

TEST(CategoryTest, MissingParentIsNotFound) {
  const auto parent = given<CategoryState>({});
  EXPECT_TRUE(fails_with(decide(CategoryState{},
                                CreateCategory{.category_id = kCategory, .name = "Mugs",
                                               .parent_id = kParent},
                                parent),
                         "not_found"));
}

TEST(CategoryTest, CreateTwiceIsAlreadyExists) {
  const auto category = given<CategoryState>({category_created(kCategory)});
  EXPECT_TRUE(fails_with(
      decide(category, CreateCategory{.category_id = kCategory, .name = "Kitchen"}, {}),
      "already_exists"));
}

TEST(CategoryTest, EvolveKeepsParent) {
  const auto category = given<CategoryState>({ev::CategoryCreated{
      .category_id = kCategory, .name = "Mugs", .parent_id = kParent}});
  EXPECT_TRUE(category.exists);
  EXPECT_EQ(category.name, "Mugs");
  EXPECT_EQ(category.parent_id, kParent);
}

// ======================================================================================== product
CreateProduct create_mug() {
  return {.product_id = kMug, .name = "Mug", .description = "Mug description", .sku = "SKU-Mug",
          .category_id = kCategory, .price = 1200, .stock = 10};
}

TEST(ProductTest, CreateInAnExistingCategory) {
  const auto category = given<CategoryState>({category_created(kCategory)});
  EXPECT_TRUE(emits(decide(ProductState{}, create_mug(), category),
                    {product_created(kMug, "Mug", 1200, 10)}));
}

TEST(ProductTest, CreateInAnUnknownCategoryIsNotFound) {
  EXPECT_TRUE(fails_with(decide(ProductState{}, create_mug(), CategoryState{}), "not_found"));
}

TEST(ProductTest, CreateTwiceIsAlreadyExists) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  const auto category = given<CategoryState>({category_created(kCategory)});
  EXPECT_TRUE(fails_with(decide(product, create_mug(), category), "already_exists"));
}

TEST(ProductTest, CreateWithNegativePriceOrStockIsInvalid) {
  const auto category = given<CategoryState>({category_created(kCategory)});
  auto c = create_mug();
  c.price = -1;
  EXPECT_TRUE(fails_with(decide(ProductState{}, c, category), "invalid_value"));
  c = create_mug();
  c.stock = -1;
  EXPECT_TRUE(fails_with(decide(ProductState{}, c, category), "invalid_value"));
}

TEST(ProductTest, UpdateEmitsOnlyTheChangedFields) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  // name is given but unchanged; price and description change.
  EXPECT_TRUE(emits(decide(product,
                           UpdateProduct{.name = "Mug", .description = "Bigger",
                                         .price = 1500},
                           CategoryState{}),
                    {ev::ProductUpdated{.product_id = kMug, .description = "Bigger",
                                        .price = 1500}}));
}

TEST(ProductTest, UpdateWithTheSameValuesEmitsNothing) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  EXPECT_TRUE(emits_nothing(decide(product,
                                   UpdateProduct{.name = "Mug",
                                                 .description = "Mug description",
                                                 .sku = "SKU-Mug", .category_id = kCategory,
                                                 .price = 1200},
                                   CategoryState{})));
  EXPECT_TRUE(emits_nothing(decide(product, UpdateProduct{}, CategoryState{})));
}

TEST(ProductTest, UpdateSeesEarlierUpdates) {
  const auto product = given<ProductState>(
      {product_created(kMug, "Mug", 1200, 10),
       ev::ProductUpdated{.product_id = kMug, .name = "Big mug", .price = 1500}});
  EXPECT_EQ(product.name, "Big mug");
  EXPECT_EQ(product.price, 1500);
  EXPECT_EQ(product.sku, "SKU-Mug");
  EXPECT_TRUE(emits_nothing(
      decide(product, UpdateProduct{.name = "Big mug", .price = 1500}, CategoryState{})));
  EXPECT_TRUE(emits(decide(product, UpdateProduct{.name = "Mug"}, CategoryState{}),
                    {ev::ProductUpdated{.product_id = kMug, .name = "Mug"}}));
}

TEST(ProductTest, UpdateToAnUnknownCategoryIsNotFound) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  EXPECT_TRUE(fails_with(
      decide(product, UpdateProduct{.category_id = kOtherCategory}, CategoryState{}),
      "not_found"));
}

TEST(ProductTest, UpdateToAnExistingCategory) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  const auto other = given<CategoryState>({category_created(kOtherCategory)});
  EXPECT_TRUE(emits(decide(product, UpdateProduct{.category_id = kOtherCategory}, other),
                    {ev::ProductUpdated{.product_id = kMug, .category_id = kOtherCategory}}));
}

TEST(ProductTest, UpdateOfAnUnknownOrDiscontinuedProductIsNotFound) {
  EXPECT_TRUE(
      fails_with(decide(ProductState{}, UpdateProduct{.name = "X"}, CategoryState{}), "not_found"));
  const auto gone = given<ProductState>(
      {product_created(kMug, "Mug", 1200, 10), ev::ProductDiscontinued{.product_id = kMug}});
  EXPECT_TRUE(fails_with(decide(gone, UpdateProduct{.name = "X"}, CategoryState{}), "not_found"));
}

TEST(ProductTest, UpdateToANegativePriceIsInvalid) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  EXPECT_TRUE(
      fails_with(decide(product, UpdateProduct{.price = -5}, CategoryState{}), "invalid_value"));
}

TEST(StockTest, AdjustUpAndDown) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  EXPECT_TRUE(emits(decide(product, AdjustStock{.delta = 5}),
                    {ev::StockAdjusted{.product_id = kMug, .delta = 5, .stock_after = 15}}));
  EXPECT_TRUE(emits(decide(product, AdjustStock{.delta = -10}),
                    {ev::StockAdjusted{.product_id = kMug, .delta = -10, .stock_after = 0}}));
}

TEST(StockTest, NeverBelowZero) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  const auto d = decide(product, AdjustStock{.delta = -11});
  ASSERT_TRUE(fails_with(d, "insufficient_stock"));
  ASSERT_EQ(d.error().details.size(), 1u);
  EXPECT_NE(d.error().details[0].find("10"), std::string::npos);
}

TEST(StockTest, ZeroDeltaEmitsNothing) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  EXPECT_TRUE(emits_nothing(decide(product, AdjustStock{.delta = 0})));
}

TEST(StockTest, AdjustUnknownProductIsNotFound) {
  EXPECT_TRUE(fails_with(decide(ProductState{}, AdjustStock{.delta = 1}), "not_found"));
}

TEST(StockTest, StockFollowsReservationsReleasesAndAdjustments) {
  const auto product = given<ProductState>(
      {product_created(kMug, "Mug", 1200, 10),
       ev::StockReserved{.product_id = kMug, .order_id = kOrder, .quantity = 4, .stock_after = 6},
       ev::StockAdjusted{.product_id = kMug, .delta = -1, .stock_after = 5},
       ev::StockReleased{.product_id = kMug, .order_id = kOrder, .quantity = 4,
                         .stock_after = 9}});
  EXPECT_EQ(product.stock, 9);
  EXPECT_TRUE(emits(decide(product, AdjustStock{.delta = -9}),
                    {ev::StockAdjusted{.product_id = kMug, .delta = -9, .stock_after = 0}}));
  EXPECT_TRUE(fails_with(decide(product, AdjustStock{.delta = -10}), "insufficient_stock"));
}

TEST(ProductTest, DiscontinueIsIdempotent) {
  const auto product = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  EXPECT_TRUE(emits(decide(product, DiscontinueProduct{}),
                    {ev::ProductDiscontinued{.product_id = kMug}}));
  const auto gone = given<ProductState>(
      {product_created(kMug, "Mug", 1200, 10), ev::ProductDiscontinued{.product_id = kMug}});
  EXPECT_FALSE(gone.available());
  EXPECT_TRUE(emits_nothing(decide(gone, DiscontinueProduct{})));
}

TEST(ProductTest, DiscontinueUnknownProductIsNotFound) {
  EXPECT_TRUE(fails_with(decide(ProductState{}, DiscontinueProduct{}), "not_found"));
}

// =========================================================================================== cart
const ProductState& mug() {
  static const auto p = given<ProductState>({product_created(kMug, "Mug", 1200, 10)});
  return p;
}

TEST(CartTest, AddToAnEmptyCartSnapshotsNameAndPrice) {
  const auto cart = given<CartState>({});
  EXPECT_TRUE(
      emits(decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 2}, mug()),
            {item_added(kMug, "Mug", 1200, 2, 2)}));
}

TEST(CartTest, AddToAnExistingLineAddsUp) {
  const auto cart = given<CartState>({item_added(kMug, "Mug", 1000, 2, 2)});
  // The price snapshot is refreshed; line_quantity is the line's quantity afterwards.
  EXPECT_TRUE(
      emits(decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 3}, mug()),
            {item_added(kMug, "Mug", 1200, 3, 5)}));
}

TEST(CartTest, EvolveKeepsOneLinePerProduct) {
  const auto cart = given<CartState>(
      {item_added(kMug, "Mug", 1000, 2, 2), item_added(kPen, "Pen", 300, 1, 1),
       item_added(kMug, "Mug", 1200, 3, 5)});
  ASSERT_EQ(cart.lines.size(), 2u);
  ASSERT_NE(cart.line(kMug), nullptr);
  EXPECT_EQ(cart.line(kMug)->quantity, 5);
  EXPECT_EQ(cart.line(kMug)->unit_price, 1200);
  EXPECT_EQ(cart.line(kPen)->quantity, 1);
  EXPECT_EQ(cart.user_id, kUser);
}

TEST(CartTest, AddQuantityBounds) {
  const auto plenty = given<ProductState>({product_created(kMug, "Mug", 1200, 100000)});
  const auto cart = given<CartState>({});
  for (std::int64_t q : {0, -1, -1000, 1001}) {
    EXPECT_TRUE(fails_with(
        decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = q}, plenty),
        "invalid_quantity"))
        << "quantity " << q;
  }
  EXPECT_TRUE(emits(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 1000}, plenty),
      {item_added(kMug, "Mug", 1200, 1000, 1000)}));
  EXPECT_TRUE(emits(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 1}, plenty),
      {item_added(kMug, "Mug", 1200, 1, 1)}));
}

TEST(CartTest, AddBeyondTheLineLimitIsInvalid) {
  const auto plenty = given<ProductState>({product_created(kMug, "Mug", 1200, 100000)});
  const auto cart = given<CartState>({item_added(kMug, "Mug", 1200, 600, 600)});
  EXPECT_TRUE(fails_with(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 401}, plenty),
      "invalid_quantity"));
  EXPECT_TRUE(emits(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 400}, plenty),
      {item_added(kMug, "Mug", 1200, 400, 1000)}));
}

TEST(CartTest, AddUnknownOrDiscontinuedProductIsNotFound) {
  const auto cart = given<CartState>({});
  EXPECT_TRUE(fails_with(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 1},
             ProductState{}),
      "not_found"));
  const auto gone = given<ProductState>(
      {product_created(kMug, "Mug", 1200, 10), ev::ProductDiscontinued{.product_id = kMug}});
  EXPECT_TRUE(fails_with(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 1}, gone),
      "not_found"));
}

TEST(CartTest, AddMoreThanStockIsInsufficientStock) {
  const auto cart = given<CartState>({});
  EXPECT_TRUE(fails_with(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 11}, mug()),
      "insufficient_stock"));
  EXPECT_TRUE(emits(
      decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 10}, mug()),
      {item_added(kMug, "Mug", 1200, 10, 10)}));
  // What is already in the line counts.
  const auto some = given<CartState>({item_added(kMug, "Mug", 1200, 8, 8)});
  EXPECT_TRUE(fails_with(
      decide(some, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 3}, mug()),
      "insufficient_stock"));
}

TEST(CartTest, ChangeQuantity) {
  const auto cart = given<CartState>({item_added(kMug, "Mug", 1200, 2, 2)});
  EXPECT_TRUE(emits(
      decide(cart,
             ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 4}, mug()),
      {ev::CartItemQuantityChanged{.user_id = kUser, .product_id = kMug, .quantity = 4}}));
  const auto after = given<CartState>(
      {item_added(kMug, "Mug", 1200, 2, 2),
       ev::CartItemQuantityChanged{.user_id = kUser, .product_id = kMug, .quantity = 4}});
  EXPECT_EQ(after.line(kMug)->quantity, 4);
}

TEST(CartTest, ChangeQuantityToZeroRemovesTheLine) {
  const auto cart = given<CartState>({item_added(kMug, "Mug", 1200, 2, 2)});
  EXPECT_TRUE(emits(
      decide(cart,
             ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 0}, mug()),
      {ev::CartItemRemoved{.user_id = kUser, .product_id = kMug}}));
}

TEST(CartTest, ChangeQuantityToTheSameValueEmitsNothing) {
  const auto cart = given<CartState>({item_added(kMug, "Mug", 1200, 2, 2)});
  EXPECT_TRUE(emits_nothing(decide(
      cart, ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 2}, mug())));
}

TEST(CartTest, ChangeQuantityRules) {
  const auto cart = given<CartState>({item_added(kMug, "Mug", 1200, 2, 2)});
  EXPECT_TRUE(fails_with(
      decide(cart,
             ChangeCartItemQuantity{.user_id = kUser, .product_id = kPen, .quantity = 1}, mug()),
      "not_found"));
  EXPECT_TRUE(fails_with(
      decide(cart,
             ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 11}, mug()),
      "insufficient_stock"));
  EXPECT_TRUE(fails_with(
      decide(cart,
             ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 1001},
             mug()),
      "invalid_quantity"));
  EXPECT_TRUE(fails_with(
      decide(cart,
             ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = -1}, mug()),
      "invalid_quantity"));
  const auto gone = given<ProductState>(
      {product_created(kMug, "Mug", 1200, 10), ev::ProductDiscontinued{.product_id = kMug}});
  EXPECT_TRUE(fails_with(
      decide(cart,
             ChangeCartItemQuantity{.user_id = kUser, .product_id = kMug, .quantity = 3}, gone),
      "not_found"));
}

TEST(CartTest, RemoveLine) {
  const auto cart = given<CartState>(
      {item_added(kMug, "Mug", 1200, 2, 2), item_added(kPen, "Pen", 300, 1, 1)});
  EXPECT_TRUE(emits(decide(cart, RemoveCartItem{.user_id = kUser, .product_id = kMug}),
                    {ev::CartItemRemoved{.user_id = kUser, .product_id = kMug}}));
  const auto after = given<CartState>(
      {item_added(kMug, "Mug", 1200, 2, 2), item_added(kPen, "Pen", 300, 1, 1),
       ev::CartItemRemoved{.user_id = kUser, .product_id = kMug}});
  EXPECT_EQ(after.line(kMug), nullptr);
  ASSERT_EQ(after.lines.size(), 1u);
  EXPECT_EQ(after.lines[0].product_id, kPen);
  EXPECT_TRUE(fails_with(decide(after, RemoveCartItem{.user_id = kUser, .product_id = kMug}),
                         "not_found"));
}

// ======================================================================================= checkout
PlaceOrder place_order() {
  return {.order_id = kOrder, .order_number = "SO-000001", .user_id = kUser, .currency = "EUR"};
}

TEST(CheckoutTest, EmptyCartIsCartEmpty) {
  EXPECT_TRUE(fails_with(decide(given<CartState>({}), place_order(), {}), "cart_empty"));
  const auto emptied = given<CartState>(
      {item_added(kMug, "Mug", 1200, 2, 2), ev::CartItemRemoved{.user_id = kUser,
                                                                .product_id = kMug}});
  EXPECT_TRUE(fails_with(decide(emptied, place_order(), {{kMug, mug()}}), "cart_empty"));
}

TEST(CheckoutTest, CheckedOutCartIsEmpty) {
  const auto cart = given<CartState>(
      {item_added(kMug, "Mug", 1200, 2, 2),
       ev::CartCheckedOut{.user_id = kUser, .order_id = kOrder}});
  EXPECT_TRUE(cart.lines.empty());
  EXPECT_TRUE(fails_with(decide(cart, place_order(), {{kMug, mug()}}), "cart_empty"));
}

TEST(CheckoutTest, UnknownOrDiscontinuedProductIsUnavailable) {
  const auto cart = given<CartState>(
      {item_added(kMug, "Mug", 1200, 2, 2), item_added(kPen, "Pen", 300, 1, 1)});
  // The pen is not among the products at all.
  auto d = decide(cart, place_order(), {{kMug, mug()}});
  ASSERT_TRUE(fails_with(d, "product_unavailable"));
  EXPECT_EQ(d.error().details, std::vector<std::string>{kPen});
  // The pen was discontinued.
  const auto gone = given<ProductState>(
      {product_created(kPen, "Pen", 300, 5), ev::ProductDiscontinued{.product_id = kPen}});
  d = decide(cart, place_order(), {{kMug, mug()}, {kPen, gone}});
  ASSERT_TRUE(fails_with(d, "product_unavailable"));
  EXPECT_EQ(d.error().details, std::vector<std::string>{kPen});
}

TEST(CheckoutTest, InsufficientStockEmitsNothing) {
  const auto cart = given<CartState>(
      {item_added(kMug, "Mug", 1200, 2, 2), item_added(kPen, "Pen", 300, 3, 3)});
  // Enough mugs, but only 2 pens left since they were added.
  const auto pen = given<ProductState>(
      {product_created(kPen, "Pen", 300, 5),
       ev::StockAdjusted{.product_id = kPen, .delta = -3, .stock_after = 2}});
  const auto d = decide(cart, place_order(), {{kMug, mug()}, {kPen, pen}});
  ASSERT_TRUE(fails_with(d, "insufficient_stock"));
  ASSERT_EQ(d.error().details.size(), 1u);
  EXPECT_NE(d.error().details[0].find(kPen), std::string::npos);
  EXPECT_NE(d.error().details[0].find("2 available"), std::string::npos);
}

TEST(CheckoutTest, PlacesTheOrderAtCurrentPricesReservesStockAndEmptiesTheCart) {
  // Added at 1000 and 250; the prices have changed since.
  const auto cart = given<CartState>(
      {item_added(kMug, "Mug", 1000, 2, 2), item_added(kPen, "Pen", 250, 3, 3)});
  const auto mug_now = given<ProductState>(
      {product_created(kMug, "Mug", 1000, 10),
       ev::ProductUpdated{.product_id = kMug, .name = "Mug XL", .price = 1200}});
  const auto pen_now = given<ProductState>(
      {product_created(kPen, "Pen", 250, 3),
       ev::ProductUpdated{.product_id = kPen, .price = 300}});
  EXPECT_TRUE(emits(
      decide(cart, place_order(), {{kMug, mug_now}, {kPen, pen_now}, {kLamp, ProductState{}}}),
      {ev::OrderPlaced{.order_id = kOrder, .order_number = "SO-000001", .user_id = kUser,
                       .currency = "EUR",
                       .lines = {{.product_id = kMug, .name = "Mug XL", .unit_price = 1200,
                                  .quantity = 2, .line_total = 2400},
                                 {.product_id = kPen, .name = "Pen", .unit_price = 300,
                                  .quantity = 3, .line_total = 900}},
                       .total = 3300},
       ev::StockReserved{.product_id = kMug, .order_id = kOrder, .quantity = 2,
                         .stock_after = 8},
       ev::StockReserved{.product_id = kPen, .order_id = kOrder, .quantity = 3,
                         .stock_after = 0},
       ev::CartCheckedOut{.user_id = kUser, .order_id = kOrder}}));
}

TEST(CheckoutTest, PlacedOrderIsPending) {
  const auto order = given<OrderState>({order_placed()});
  EXPECT_TRUE(order.exists);
  EXPECT_EQ(order.status, "pending");
  EXPECT_EQ(order.total, 2700);
  EXPECT_EQ(order.lines.size(), 2u);
  EXPECT_EQ(order.currency, "EUR");
  EXPECT_FALSE(order.paid_by.has_value());
}

// ========================================================================================= cancel
std::map<std::string, ProductState> stock_now() {
  return {{kMug, given<ProductState>({product_created(kMug, "Mug", 1200, 8)})},
          {kPen, given<ProductState>({product_created(kPen, "Pen", 300, 4)})}};
}

TEST(CancelTest, PendingOrderIsCancelledAndStockReleasedPerProduct) {
  const auto order = given<OrderState>({order_placed()});
  EXPECT_TRUE(emits(
      decide(order, CancelOrder{.reason = "changed my mind"}, stock_now()),
      {ev::OrderCancelled{.order_id = kOrder, .reason = "changed my mind"},
       ev::StockReleased{.product_id = kMug, .order_id = kOrder, .quantity = 2,
                         .stock_after = 10},
       ev::StockReleased{.product_id = kPen, .order_id = kOrder, .quantity = 1,
                         .stock_after = 5}}));
}

TEST(CancelTest, LinesOfOneProductAreReleasedTogether) {
  auto placed = order_placed();
  placed.lines.push_back({.product_id = kMug, .name = "Mug", .unit_price = 1200, .quantity = 3,
                          .line_total = 3600});
  placed.total += 3600;
  const auto order = given<OrderState>({placed});
  EXPECT_TRUE(emits(
      decide(order, CancelOrder{.reason = "r"}, stock_now()),
      {ev::OrderCancelled{.order_id = kOrder, .reason = "r"},
       ev::StockReleased{.product_id = kMug, .order_id = kOrder, .quantity = 5,
                         .stock_after = 13},
       ev::StockReleased{.product_id = kPen, .order_id = kOrder, .quantity = 1,
                         .stock_after = 5}}));
}

TEST(CancelTest, OnlyPendingOrdersCanBeCancelled) {
  const auto paid = given<OrderState>({order_placed(), order_paid()});
  EXPECT_TRUE(fails_with(decide(paid, CancelOrder{}, stock_now()), "invalid_order_status"));
  const auto shipped = given<OrderState>({order_placed(), order_paid(), order_shipped()});
  EXPECT_TRUE(fails_with(decide(shipped, CancelOrder{}, stock_now()), "invalid_order_status"));
  const auto cancelled = given<OrderState>({order_placed(), order_cancelled()});
  EXPECT_EQ(cancelled.status, "cancelled");
  EXPECT_TRUE(fails_with(decide(cancelled, CancelOrder{}, stock_now()), "invalid_order_status"));
  EXPECT_TRUE(fails_with(decide(OrderState{}, CancelOrder{}, stock_now()), "not_found"));
}

// =================================================================================== ship/deliver
TEST(ShipTest, OnlyPaidOrdersShip) {
  const auto paid = given<OrderState>({order_placed(), order_paid()});
  EXPECT_TRUE(emits(decide(paid, ShipOrder{.carrier = "DHL", .tracking_number = "TRACK-1"}),
                    {order_shipped()}));
  const ShipOrder ship{.carrier = "DHL", .tracking_number = "TRACK-1"};
  EXPECT_TRUE(fails_with(decide(given<OrderState>({order_placed()}), ship),
                         "invalid_order_status"));
  EXPECT_TRUE(fails_with(decide(given<OrderState>({order_placed(), order_cancelled()}), ship),
                         "invalid_order_status"));
  EXPECT_TRUE(fails_with(
      decide(given<OrderState>({order_placed(), order_paid(), order_shipped()}), ship),
      "invalid_order_status"));
  EXPECT_TRUE(fails_with(decide(OrderState{}, ship), "not_found"));
}

TEST(DeliverTest, OnlyShippedOrdersAreDelivered) {
  const auto shipped = given<OrderState>({order_placed(), order_paid(), order_shipped()});
  EXPECT_EQ(shipped.status, "shipped");
  EXPECT_TRUE(emits(decide(shipped, DeliverOrder{}), {ev::OrderDelivered{.order_id = kOrder}}));
  EXPECT_TRUE(fails_with(decide(given<OrderState>({order_placed()}), DeliverOrder{}),
                         "invalid_order_status"));
  EXPECT_TRUE(fails_with(decide(given<OrderState>({order_placed(), order_paid()}), DeliverOrder{}),
                         "invalid_order_status"));
  const auto delivered = given<OrderState>(
      {order_placed(), order_paid(), order_shipped(), ev::OrderDelivered{.order_id = kOrder}});
  EXPECT_EQ(delivered.status, "delivered");
  EXPECT_TRUE(fails_with(decide(delivered, DeliverOrder{}), "invalid_order_status"));
  EXPECT_TRUE(fails_with(decide(OrderState{}, DeliverOrder{}), "not_found"));
}

// ======================================================================================== payment
TEST(PaymentTest, InitiateOnAPendingOrderForItsTotal) {
  const auto order = given<OrderState>({order_placed()});
  EXPECT_TRUE(emits(decide(order, InitiatePayment{.payment_id = kPayment, .provider = "sandbox"}),
                    {payment_initiated()}));
}

TEST(PaymentTest, InitiateOnlyWhilePending) {
  const InitiatePayment pay{.payment_id = kPayment, .provider = "sandbox"};
  EXPECT_TRUE(fails_with(decide(given<OrderState>({order_placed(), order_paid()}), pay),
                         "invalid_order_status"));
  EXPECT_TRUE(fails_with(decide(given<OrderState>({order_placed(), order_cancelled()}), pay),
                         "invalid_order_status"));
  EXPECT_TRUE(fails_with(decide(OrderState{}, pay), "not_found"));
}

TEST(PaymentTest, SuccessCapturesAndPaysTheOrder) {
  const auto payment = given<PaymentState>({payment_initiated()});
  const auto order = given<OrderState>({order_placed()});
  EXPECT_TRUE(emits(decide(payment, SettlePayment{.succeeded = true}, order),
                    {ev::PaymentCaptured{.payment_id = kPayment, .order_id = kOrder,
                                         .amount = 2700},
                     order_paid()}));
  const auto paid = given<OrderState>({order_placed(), order_paid()});
  EXPECT_EQ(paid.status, "paid");
  EXPECT_EQ(paid.paid_by, kPayment);
}

TEST(PaymentTest, SettlingAgainChangesNothing) {
  const auto captured = given<PaymentState>(
      {payment_initiated(),
       ev::PaymentCaptured{.payment_id = kPayment, .order_id = kOrder, .amount = 2700}});
  EXPECT_EQ(captured.status, "captured");
  const auto paid = given<OrderState>({order_placed(), order_paid()});
  EXPECT_TRUE(emits_nothing(decide(captured, SettlePayment{.succeeded = true}, paid)));
  EXPECT_TRUE(emits_nothing(decide(captured, SettlePayment{.succeeded = false}, paid)));
  const auto failed = given<PaymentState>(
      {payment_initiated(),
       ev::PaymentFailed{.payment_id = kPayment, .order_id = kOrder, .reason = "declined"}});
  EXPECT_EQ(failed.status, "failed");
  const auto pending = given<OrderState>({order_placed()});
  EXPECT_TRUE(emits_nothing(decide(failed, SettlePayment{.succeeded = true}, pending)));
}

TEST(PaymentTest, FailureIsRecorded) {
  const auto payment = given<PaymentState>({payment_initiated()});
  const auto order = given<OrderState>({order_placed()});
  EXPECT_TRUE(emits(decide(payment, SettlePayment{.succeeded = false, .reason = "card expired"},
                           order),
                    {ev::PaymentFailed{.payment_id = kPayment, .order_id = kOrder,
                                       .reason = "card expired"}}));
  EXPECT_TRUE(emits(decide(payment, SettlePayment{.succeeded = false}, order),
                    {ev::PaymentFailed{.payment_id = kPayment, .order_id = kOrder,
                                       .reason = "declined"}}));
}

TEST(PaymentTest, CaptureOnACancelledOrderOnlyCaptures) {
  const auto payment = given<PaymentState>({payment_initiated()});
  const auto cancelled = given<OrderState>({order_placed(), order_cancelled()});
  EXPECT_TRUE(emits(decide(payment, SettlePayment{.succeeded = true}, cancelled),
                    {ev::PaymentCaptured{.payment_id = kPayment, .order_id = kOrder,
                                         .amount = 2700}}));
}

TEST(PaymentTest, CaptureOnAnOrderPaidByAnotherPaymentOnlyCaptures) {
  const auto payment = given<PaymentState>({payment_initiated()});
  const auto paid = given<OrderState>({order_placed(), order_paid(kOtherPayment)});
  EXPECT_TRUE(emits(decide(payment, SettlePayment{.succeeded = true}, paid),
                    {ev::PaymentCaptured{.payment_id = kPayment, .order_id = kOrder,
                                         .amount = 2700}}));
}

TEST(PaymentTest, SettleUnknownPaymentIsNotFound) {
  EXPECT_TRUE(fails_with(
      decide(PaymentState{}, SettlePayment{.succeeded = true}, given<OrderState>({order_placed()})),
      "not_found"));
}

// ============================================================================== a whole life cycle
TEST(LifecycleTest, CartToDeliveredOrder) {
  // The decisions' own events, fed back, drive the next decision.
  auto cart = given<CartState>({});
  auto product = mug();
  const auto add = decide(cart, AddCartItem{.user_id = kUser, .product_id = kMug, .quantity = 3},
                          product);
  ASSERT_TRUE(add.ok());
  for (const auto& e : add.value()) cart = evolve(cart, e);

  const auto placed = decide(cart, place_order(), {{kMug, product}});
  ASSERT_TRUE(placed.ok());
  OrderState order;
  for (const auto& e : placed.value()) {
    cart = evolve(cart, e);
    order = evolve(order, e);
    product = evolve(product, e);
  }
  EXPECT_TRUE(cart.lines.empty());
  EXPECT_EQ(product.stock, 7);
  EXPECT_EQ(order.total, 3600);

  const auto init = decide(order, InitiatePayment{.payment_id = kPayment, .provider = "sandbox"});
  ASSERT_TRUE(init.ok());
  PaymentState payment;
  for (const auto& e : init.value()) payment = evolve(payment, e);
  EXPECT_EQ(payment.amount, 3600);

  const auto settled = decide(payment, SettlePayment{.succeeded = true}, order);
  ASSERT_TRUE(settled.ok());
  for (const auto& e : settled.value()) {
    payment = evolve(payment, e);
    order = evolve(order, e);
  }
  EXPECT_EQ(order.status, "paid");
  EXPECT_TRUE(emits_nothing(decide(payment, SettlePayment{.succeeded = true}, order)));

  const auto shipped = decide(order, ShipOrder{.carrier = "UPS", .tracking_number = "1Z"});
  ASSERT_TRUE(shipped.ok());
  for (const auto& e : shipped.value()) order = evolve(order, e);
  const auto delivered = decide(order, DeliverOrder{});
  ASSERT_TRUE(delivered.ok());
  for (const auto& e : delivered.value()) order = evolve(order, e);
  EXPECT_EQ(order.status, "delivered");
}

}  // namespace

namespace shop::domain {
namespace {

TEST(PasswordPolicyTest, LongUncommonPasswordsThatAreNotTheEmailPass) {
  EXPECT_FALSE(check_password("correct-horse-42", "ann@example.com").has_value());
  EXPECT_FALSE(check_password("ünïcödé-wörds", "ann@example.com").has_value());
}

TEST(PasswordPolicyTest, ShortCommonOrEmailPasswordsAreWeak) {
  auto code = [](std::string_view p, std::string_view e) {
    auto r = check_password(p, e);
    return r ? r->code : std::string("ok");
  };
  EXPECT_EQ(code("short-pw", "ann@example.com"), "weak_password");
  EXPECT_EQ(code("ééééééééé", "ann@example.com"), "weak_password");  // 9 characters, 18 bytes
  EXPECT_EQ(code("Ann@Example.com", "ann@example.com"), "weak_password");
  EXPECT_EQ(code("annabelle.smith", "annabelle.smith@example.com"), "weak_password");
  EXPECT_EQ(code("Password123", "ann@example.com"), "weak_password");
  EXPECT_EQ(code("qwertyuiop", "ann@example.com"), "weak_password");
  EXPECT_NE(check_password("qwertyuiop", "a@b.c")->message.find("common"), std::string::npos);
}

}  // namespace
}  // namespace shop::domain
