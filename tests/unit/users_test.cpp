// Accounts, one rule at a time: profiles (name, mobile number), password changes and roles, as
// given events / when command / then events (or an error); and mobile numbers in E.164 form.
#include <gtest/gtest.h>

#include <initializer_list>
#include <sstream>
#include <string>

#include "shop/domain/aggregates.h"
#include "shop/domain/phone.h"

namespace {

namespace ev = shop::events;
using namespace shop::domain;

// ---------------------------------------------------------------- given / when / then helpers

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

// then: exactly these events, compared by type name and every field of their payload.
::testing::AssertionResult emits(const Decision& d, const Events& expected) {
  if (!d.ok()) {
    return ::testing::AssertionFailure() << "expected " << describe(expected) << ", got error "
                                         << d.error().code << " (" << d.error().message << ")";
  }
  const Events& got = d.value();
  bool same = got.size() == expected.size();
  for (std::size_t i = 0; same && i < got.size(); ++i) {
    same = ev::type_of(got[i]) == ev::type_of(expected[i]) &&
           ev::data_of(got[i]) == ev::data_of(expected[i]);
  }
  if (!same) {
    return ::testing::AssertionFailure()
           << "expected " << describe(expected) << "\n     got " << describe(got);
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult emits_nothing(const Decision& d) {
  return emits(d, {});
}

::testing::AssertionResult fails_with(const Decision& d, std::string_view code) {
  if (d.ok()) {
    return ::testing::AssertionFailure()
           << "expected error " << code << ", got events " << describe(d.value());
  }
  if (d.error().code != code) {
    return ::testing::AssertionFailure() << "expected error " << code << ", got " << d.error().code
                                         << " (" << d.error().message << ")";
  }
  return ::testing::AssertionSuccess();
}

// ------------------------------------------------------------------------------------ fixtures
const std::string kUser = "11111111-1111-4111-8111-111111111111";
const std::string kAdmin = "11111111-1111-4111-8111-999999999999";
const std::string kOtherUser = "11111111-1111-4111-8111-222222222222";
const std::string kSession1 = "66666666-6666-4666-8666-000000000001";
const std::string kSession2 = "66666666-6666-4666-8666-000000000002";
const std::string kSession3 = "66666666-6666-4666-8666-000000000003";
const std::string kOtherSession = "66666666-6666-4666-8666-000000000009";
const std::string kPhone = "+4917012345678";
const std::string kOtherPhone = "+14155550123";

ev::UserRegistered registered(std::vector<std::string> roles = {"customer"}) {
  return {.user_id = kUser, .email = "ann@example.com", .name = "Ann", .roles = std::move(roles)};
}

SessionState session(const std::string& id, const std::string& user = kUser) {
  return given<SessionState>({ev::SessionStarted{.session_id = id,
                                                 .user_id = user,
                                                 .refresh_id = id,
                                                 .expires_at = "2026-12-01T10:00:00.000000Z"}});
}

SessionState revoked_session(const std::string& id) {
  auto s = session(id);
  return evolve(std::move(s),
                ev::SessionRevoked{.session_id = id, .user_id = kUser, .reason = "logout"});
}

// Three live sessions of the user, one already ended, and one of someone else (which a decision
// about this user must never touch).
UserSessions sessions() {
  return {{kSession1, session(kSession1)},
          {kSession2, session(kSession2)},
          {kSession3, revoked_session(kSession3)},
          {kOtherSession, session(kOtherSession, kOtherUser)}};
}

ev::SessionRevoked revoked(const std::string& id, const char* reason) {
  return {.session_id = id, .user_id = kUser, .reason = reason};
}

// ====================================================================================== phones
TEST(PhoneTest, E164IsAPlusAndEightToFifteenDigitsNotStartingWithZero) {
  EXPECT_TRUE(is_e164("+4917012345678"));
  EXPECT_TRUE(is_e164("+12345678"));           // 8 digits
  EXPECT_TRUE(is_e164("+123456789012345"));    // 15 digits
  EXPECT_FALSE(is_e164("+1234567"));           // 7
  EXPECT_FALSE(is_e164("+1234567890123456"));  // 16
  EXPECT_FALSE(is_e164("+0123456789"));
  EXPECT_FALSE(is_e164("4917012345678"));
  EXPECT_FALSE(is_e164("+49 170 1234567"));
  EXPECT_FALSE(is_e164("+4917012345678x"));
  EXPECT_FALSE(is_e164(""));
  EXPECT_FALSE(is_e164("+"));
}

TEST(PhoneTest, SpacesAndDashesAreDroppedAndNothingElseIsAccepted) {
  EXPECT_EQ(normalize_phone("+4917012345678"), "+4917012345678");
  EXPECT_EQ(normalize_phone("+49 170 1234-5678"), "+4917012345678");
  EXPECT_EQ(normalize_phone("+1-415-555-0123"), "+14155550123");
  EXPECT_EQ(normalize_phone("+ 1 415 555 0123 "), "+14155550123");
  EXPECT_EQ(normalize_phone("0049 170 12345678"), std::nullopt);  // no '+'
  EXPECT_EQ(normalize_phone("+1 (415) 555-0123"), std::nullopt);
  EXPECT_EQ(normalize_phone("+49.170.12345678"), std::nullopt);
  EXPECT_EQ(normalize_phone("+49 170 CALL ME"), std::nullopt);
  EXPECT_EQ(normalize_phone("+0 170 12345678"), std::nullopt);
  EXPECT_EQ(normalize_phone("+123 4567"), std::nullopt);             // 7 digits
  EXPECT_EQ(normalize_phone("+1234 5678 9012 3456"), std::nullopt);  // 16 digits
  EXPECT_EQ(normalize_phone(std::string(10000, '1')), std::nullopt);
  EXPECT_EQ(normalize_phone("+" + std::string(10000, '1')), std::nullopt);
  EXPECT_EQ(normalize_phone("+4917012345678\n"), std::nullopt);
  EXPECT_EQ(normalize_phone(""), std::nullopt);
  EXPECT_EQ(normalize_phone("++4917012345678"), std::nullopt);
}

// ===================================================================================== profile
TEST(ProfileTest, OnlyWhatChangesIsInTheEvent) {
  const auto user = given<UserState>({registered()});
  EXPECT_TRUE(emits(decide(user, ChangeProfile{.name = "Ann Smith"}),
                    {ev::UserProfileChanged{.user_id = kUser, .name = "Ann Smith"}}));
  EXPECT_TRUE(emits(decide(user, ChangeProfile{.phone = kPhone}),
                    {ev::UserProfileChanged{.user_id = kUser, .phone = kPhone}}));
  // The same name with a new number: only the number.
  EXPECT_TRUE(emits(decide(user, ChangeProfile{.name = "Ann", .phone = kPhone}),
                    {ev::UserProfileChanged{.user_id = kUser, .phone = kPhone}}));
  EXPECT_TRUE(emits(decide(user, ChangeProfile{.name = "Ann B.", .phone = kPhone}),
                    {ev::UserProfileChanged{.user_id = kUser, .name = "Ann B.", .phone = kPhone}}));
}

TEST(ProfileTest, NothingDifferentChangesNothing) {
  const auto user =
      given<UserState>({registered(), ev::UserProfileChanged{.user_id = kUser, .phone = kPhone}});
  EXPECT_TRUE(emits_nothing(decide(user, ChangeProfile{})));
  EXPECT_TRUE(emits_nothing(decide(user, ChangeProfile{.name = "Ann", .phone = kPhone})));
  // Removing a number the account does not have.
  const auto without = given<UserState>({registered()});
  EXPECT_TRUE(emits_nothing(decide(without, ChangeProfile{.remove_phone = true})));
}

TEST(ProfileTest, EvolveKeepsNameAndNumber) {
  auto user = given<UserState>(
      {registered(), ev::UserProfileChanged{.user_id = kUser, .name = "Ann B.", .phone = kPhone}});
  EXPECT_EQ(user.name, "Ann B.");
  EXPECT_EQ(user.phone, kPhone);
  EXPECT_EQ(user.email, "ann@example.com");
  user = evolve(user, ev::UserProfileChanged{.user_id = kUser, .phone = kOtherPhone});
  EXPECT_EQ(user.name, "Ann B.");
  EXPECT_EQ(user.phone, kOtherPhone);
  user = evolve(user, ev::UserProfileChanged{.user_id = kUser, .phone_removed = true});
  EXPECT_EQ(user.phone, std::nullopt);
  EXPECT_EQ(user.name, "Ann B.");
}

TEST(ProfileTest, RemovingTheNumberSaysSoExplicitly) {
  const auto user =
      given<UserState>({registered(), ev::UserProfileChanged{.user_id = kUser, .phone = kPhone}});
  const Decision d = decide(user, ChangeProfile{.remove_phone = true});
  EXPECT_TRUE(emits(d, {ev::UserProfileChanged{.user_id = kUser, .phone_removed = true}}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ev::data_of(d.value()[0]),
            R"({"user_id":")" + kUser + R"(","name":null,"phone":null,"phone_removed":true})");
}

TEST(ProfileTest, BadValuesAreRefused) {
  const auto user = given<UserState>({registered()});
  EXPECT_TRUE(fails_with(decide(user, ChangeProfile{.name = ""}), "invalid_value"));
  EXPECT_TRUE(fails_with(decide(user, ChangeProfile{.phone = "+49 170 1234567"}), "invalid_value"));
  EXPECT_TRUE(fails_with(decide(user, ChangeProfile{.phone = "017012345678"}), "invalid_value"));
  EXPECT_TRUE(fails_with(decide(user, ChangeProfile{.phone = kPhone, .remove_phone = true}),
                         "invalid_value"));
}

TEST(ProfileTest, AnUnknownUserIsNotFound) {
  EXPECT_TRUE(fails_with(decide(UserState{}, ChangeProfile{.name = "X"}), "not_found"));
}

// ==================================================================================== password
TEST(PasswordTest, ChangeEndsEveryOtherLiveSessionOfTheUser) {
  const auto user = given<UserState>({registered()});
  EXPECT_TRUE(
      emits(decide(user, ChangePassword{.keep_session_id = kSession2}, sessions()),
            {ev::UserPasswordChanged{.user_id = kUser}, revoked(kSession1, "password_changed")}));
  // From outside any session of the list (or with no sessions at all): every live one ends.
  EXPECT_TRUE(
      emits(decide(user, ChangePassword{}, sessions()),
            {ev::UserPasswordChanged{.user_id = kUser}, revoked(kSession1, "password_changed"),
             revoked(kSession2, "password_changed")}));
  EXPECT_TRUE(emits(decide(user, ChangePassword{.keep_session_id = kSession1}, {}),
                    {ev::UserPasswordChanged{.user_id = kUser}}));
}

TEST(PasswordTest, TheEventHoldsNoSecret) {
  const auto user = given<UserState>({registered()});
  const Decision d = decide(user, ChangePassword{.keep_session_id = kSession1}, {});
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d.value().size(), 1u);
  EXPECT_EQ(ev::data_of(d.value()[0]), R"({"user_id":")" + kUser + R"("})");
}

TEST(PasswordTest, AnUnknownUserIsNotFound) {
  EXPECT_TRUE(fails_with(decide(UserState{}, ChangePassword{}, sessions()), "not_found"));
}

// ======================================================================================= roles
TEST(RolesTest, RoleSetsHaveOneWrittenForm) {
  EXPECT_EQ(role_set({"admin", "customer"}), (std::vector<std::string>{"customer", "admin"}));
  EXPECT_EQ(role_set({"staff", "staff"}), (std::vector<std::string>{"staff"}));
  EXPECT_EQ(role_set({"admin", "staff", "customer"}),
            (std::vector<std::string>{"customer", "staff", "admin"}));
  EXPECT_EQ(role_set({}), std::nullopt);
  EXPECT_EQ(role_set({"customer", "root"}), std::nullopt);
  EXPECT_EQ(role_set({"Admin"}), std::nullopt);
  EXPECT_EQ(role_set({""}), std::nullopt);
}

TEST(RolesTest, GrantingARoleEndsNoSession) {
  const auto user = given<UserState>({registered()});
  EXPECT_TRUE(emits(decide(user, SetRoles{kAdmin, {"staff", "customer"}}, sessions()),
                    {ev::UserRolesChanged{.user_id = kUser, .roles = {"customer", "staff"}}}));
  const auto staff = given<UserState>(
      {registered(), ev::UserRolesChanged{.user_id = kUser, .roles = {"customer", "staff"}}});
  EXPECT_TRUE(staff.has_role("staff"));
  EXPECT_TRUE(staff.has_role("customer"));
  EXPECT_FALSE(staff.has_role("admin"));
}

TEST(RolesTest, TakingARoleAwayEndsEveryLiveSessionOfTheUser) {
  const auto staff = given<UserState>({registered({"customer", "staff"})});
  EXPECT_TRUE(emits(decide(staff, SetRoles{kAdmin, {"customer"}}, sessions()),
                    {ev::UserRolesChanged{.user_id = kUser, .roles = {"customer"}},
                     revoked(kSession1, "roles_changed"), revoked(kSession2, "roles_changed")}));
  // A swap takes one away too.
  EXPECT_TRUE(emits(decide(staff, SetRoles{kAdmin, {"admin"}}, sessions()),
                    {ev::UserRolesChanged{.user_id = kUser, .roles = {"admin"}},
                     revoked(kSession1, "roles_changed"), revoked(kSession2, "roles_changed")}));
  const auto after =
      given<UserState>({registered({"customer", "staff"}),
                        ev::UserRolesChanged{.user_id = kUser, .roles = {"customer"}}});
  EXPECT_FALSE(after.has_role("staff"));
}

TEST(RolesTest, TheSameSetChangesNothing) {
  const auto user = given<UserState>({registered({"staff", "customer"})});
  EXPECT_TRUE(emits_nothing(decide(user, SetRoles{kAdmin, {"customer", "staff"}}, sessions())));
  EXPECT_TRUE(
      emits_nothing(decide(user, SetRoles{kAdmin, {"staff", "customer", "staff"}}, sessions())));
}

TEST(RolesTest, AnAdminCannotDropTheirOwnAdminRole) {
  const auto admin = given<UserState>({ev::UserRegistered{
      .user_id = kAdmin, .email = "root@shop.example", .name = "Root", .roles = {"admin"}}});
  EXPECT_TRUE(
      fails_with(decide(admin, SetRoles{kAdmin, {"staff"}}, {}), "cannot_remove_own_admin"));
  EXPECT_TRUE(
      fails_with(decide(admin, SetRoles{kAdmin, {"customer"}}, {}), "cannot_remove_own_admin"));
  // Adding to their own roles is fine; so is another admin taking it away.
  EXPECT_TRUE(emits(decide(admin, SetRoles{kAdmin, {"admin", "staff"}}, {}),
                    {ev::UserRolesChanged{.user_id = kAdmin, .roles = {"staff", "admin"}}}));
  EXPECT_TRUE(emits(decide(admin, SetRoles{kOtherUser, {"staff"}}, {}),
                    {ev::UserRolesChanged{.user_id = kAdmin, .roles = {"staff"}}}));
}

TEST(RolesTest, BadSetsAndUnknownUsersAreRefused) {
  const auto user = given<UserState>({registered()});
  EXPECT_TRUE(fails_with(decide(user, SetRoles{kAdmin, {}}, {}), "invalid_value"));
  EXPECT_TRUE(fails_with(decide(user, SetRoles{kAdmin, {"root"}}, {}), "invalid_value"));
  EXPECT_TRUE(
      fails_with(decide(user, SetRoles{kAdmin, {"customer", "owner"}}, {}), "invalid_value"));
  EXPECT_TRUE(fails_with(decide(UserState{}, SetRoles{kAdmin, {"staff"}}, {}), "not_found"));
}

TEST(RolesTest, RemovesARole) {
  EXPECT_TRUE(removes_a_role({"customer", "staff"}, {"customer"}));
  EXPECT_TRUE(removes_a_role({"customer"}, {"staff"}));
  EXPECT_FALSE(removes_a_role({"customer"}, {"customer", "staff"}));
  EXPECT_FALSE(removes_a_role({}, {"customer"}));
  EXPECT_FALSE(removes_a_role({"staff", "customer"}, {"customer", "staff"}));
}

}  // namespace
