// Pre-registration of claims. `subliminal run CONFIG --expect CLAIMS.json` records the claim file in
// the run's manifest before the first stage runs: its content, sha256, the time, what the run had
// already done then, and where git tracks the file (the commit that last changed it and whether the
// working copy differed). `subliminal check` and report.md then say of every claim whether it was
// pre-registered, registered only after results existed, changed after registration, added after the
// run started, or declared post hoc by its own file ("post_hoc": "why").
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "subliminal/report/aggregate.h"

namespace subliminal::report {

// Where git tracks `file`: {"tracked", "commit", "commit_time", "modified"} ({"tracked": false} outside
// a repository or for a file git does not know).
nlohmann::json git_file_info(const std::filesystem::path& file);

// The record of one registration. `stages_done`: the stages already done when it was made (a resumed
// run); a stage named eval/... or summary means results existed.
nlohmann::json registration_record(const std::string& source, const nlohmann::json& claims, const std::string& content,
                                   const nlohmann::json& git, const std::vector<std::string>& stages_done);
// Parses a claim file's text (ConfigError naming the file on bad JSON or no "claims" array).
nlohmann::json parse_claim_file(const std::string& text, const std::string& label);

struct ClaimStatus {
  std::string status;  // pre-registered | registered after results | changed after registration | added after the run started | not registered
  bool pre_registered = false;
  bool post_hoc = false;  // the file declares itself post hoc
  std::string detail;
};
// The status of each claim of `expect` against the registrations of `manifest` (its "claims" array).
std::vector<ClaimStatus> claim_statuses(const nlohmann::json& expect, const nlohmann::json& manifest);

// The verdicts of the run's latest registered claims on its report, with their status: what
// report.json's "claims" holds and report.md renders. Null when nothing was registered.
nlohmann::json evaluate_registered_claims(const nlohmann::json& report, const nlohmann::json& manifest);
std::string claims_md(const nlohmann::json& claims);

}  // namespace subliminal::report
