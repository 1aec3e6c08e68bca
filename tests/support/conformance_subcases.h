// Runs a conformance suite (llmassist/testing/*_conformance.h) under doctest: each check a subcase
// named after it, a failed one reporting its failures, a skipped one saying why.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "llmassist/testing/conformance.h"

namespace llmassist::testing {

// Call inside a TEST_CASE. `run_one(name)` runs the check called `name` and gives its result.
template <typename RunOne>
void run_checks_as_subcases(const std::vector<std::string>& names, const RunOne& run_one) {
  for (const std::string& name : names) {
    SUBCASE(name.c_str()) {
      const CheckResult r = run_one(name);
      if (r.skipped) MESSAGE(name << ": skipped: " << r.message);
      CHECK_MESSAGE(r.passed, name << ":\n" << r.message);
    }
  }
}

}  // namespace llmassist::testing
