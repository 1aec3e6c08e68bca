#include <doctest/doctest.h>

#include "llmassist/types.h"

using namespace llmassist;

TEST_CASE("types: status, role and mode names round-trip, unknown names are refused") {
  for (int i = 0; i < 8; ++i) {
    const auto s = static_cast<ReplyStatus>(i);
    CHECK(parse_reply_status(to_string(s)) == s);
  }
  for (int i = 0; i < 4; ++i) {
    const auto r = static_cast<Role>(i);
    CHECK(parse_role(to_string(r)) == r);
  }
  CHECK(parse_chat_mode("operator") == ChatMode::kOperator);
  CHECK_FALSE(parse_reply_status("Pending").has_value());
  CHECK_FALSE(parse_role("").has_value());
  // The seed API's names keep their meaning.
  CHECK(to_string(ReplyStatus::kNew) == "new");
  CHECK(to_string(ReplyStatus::kPending) == "pending");
  CHECK(to_string(ReplyStatus::kApproved) == "approved");
  CHECK(to_string(ReplyStatus::kRejected) == "rejected");
}

TEST_CASE("types: the reply lifecycle allows exactly the documented transitions") {
  using S = ReplyStatus;
  const S all[] = {S::kNew,      S::kGenerating, S::kPending, S::kApproved,
                   S::kRejected, S::kSent,       S::kFailed,  S::kCancelled};
  // The full table, so that any change to the rules is a deliberate change to this test.
  const char* expected[8] = {
      // to: new gen pend appr rej sent fail canc
      "01000001",  // from new
      "11110011",  // from generating
      "00111001",  // from pending
      "00010111",  // from approved
      "01000001",  // from rejected
      "00000000",  // from sent
      "00000000",  // from cancelled (row index 7 below)
      "01011011",  // from failed: by hand (approved), a new draft (rejected, generating)
  };
  const S row_order[8] = {S::kNew,      S::kGenerating, S::kPending,   S::kApproved,
                          S::kRejected, S::kSent,       S::kCancelled, S::kFailed};
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 8; ++c) {
      INFO("from " << to_string(row_order[r]) << " to " << to_string(all[c]));
      CHECK(is_legal_transition(row_order[r], all[c]) == (expected[r][c] == '1'));
    }
  }
}
