// Pre-registered claims: see claims.h.
#include "subliminal/report/claims.h"

#include <fmt/format.h>


#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/version.h"

namespace subliminal::report {

using json = nlohmann::json;
namespace sfs = std::filesystem;

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A stage that measures something a claim could be about: everything but the stages that make the
// models and data (evaluations, summaries, analyses, probes, the MNIST stages that train and score).
bool is_result_stage(const std::string& s) {
  static const char* setup[] = {"corpus", "base", "base_cross", "teacher", "teacher_other", "teacher_control"};
  for (const char* x : setup)
    if (s == x) return false;
  return !(s.rfind("data/", 0) == 0 || s.rfind("students/", 0) == 0);
}

// The claims of a claim file by name (a claim without a name is named by its path and op).
std::string claim_name(const json& c) {
  if (c.contains("name") && c["name"].is_string()) return c["name"].get<std::string>();
  return c.value("path", std::string("?")) + " " + c.value("op", std::string("?"));
}

}  // namespace

json git_file_info(const sfs::path& file) {
  std::error_code ec;
  const sfs::path abs = sfs::absolute(file, ec);
  if (ec || !sfs::exists(abs)) return {{"tracked", false}};
  const std::string dir = shell_quote(abs.parent_path().string()), name = shell_quote(abs.filename().string());
  const std::string log = command_output("git -C " + dir + " log -1 --format=%H%n%cI -- " + name + " 2>/dev/null");
  if (log.empty()) return {{"tracked", false}};
  const auto nl = log.find('\n');
  const bool modified = !command_output("git -C " + dir + " status --porcelain -- " + name + " 2>/dev/null").empty();
  return {{"tracked", true}, {"commit", log.substr(0, nl)}, {"commit_time", nl == std::string::npos ? "" : log.substr(nl + 1)}, {"modified", modified}};
}

json registration_record(const std::string& source, const json& claims, const std::string& content, const json& git,
                         const std::vector<std::string>& stages_done) {
  int results = 0;
  for (const auto& s : stages_done) results += is_result_stage(s);
  return {{"source", source},
          {"sha256", fs::sha256_hex(content)},
          {"registered", fs::iso_now()},
          {"git", git},
          {"stages_done", static_cast<int>(stages_done.size())},
          {"result_stages_done", results},
          {"content", claims}};
}

json parse_claim_file(const std::string& text, const std::string& label) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw ConfigError(label + ": invalid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("claims") || !j["claims"].is_array())
    throw ConfigError(label + ": expected {\"claims\": [...]}", "see configs/default.expect.json");
  if (j.contains("post_hoc") && !j["post_hoc"].is_string())
    throw ConfigError(label + ": $.post_hoc: expected a string saying why the claims were written after their results");
  return j;
}

std::vector<ClaimStatus> claim_statuses(const json& expect, const json& manifest) {
  std::vector<ClaimStatus> out;
  const json regs = manifest.is_object() && manifest.contains("claims") && manifest["claims"].is_array() ? manifest["claims"] : json::array();
  const bool declared_post_hoc = expect.contains("post_hoc");
  for (const auto& c : expect["claims"]) {
    ClaimStatus st;
    st.post_hoc = declared_post_hoc;
    const std::string name = claim_name(c);
    const json* same = nullptr;        // the earliest registration holding this claim as it is
    const json* renamed_to = nullptr;  // the earliest holding a claim of this name with other content
    for (const auto& r : regs) {
      for (const auto& rc : r["content"].value("claims", json::array())) {
        if (rc == c && !same) same = &r;
        if (claim_name(rc) == name && rc != c && !renamed_to) renamed_to = &r;
      }
    }
    if (same) {
      const int results = (*same).value("result_stages_done", 0);
      st.pre_registered = results == 0;
      st.status = st.pre_registered ? "pre-registered" : "registered after results";
      st.detail = fmt::format("registered {}", (*same).value("registered", std::string()));
      if (!st.pre_registered) st.detail += fmt::format(" when {} result stage(s) were already done", results);
      const json& g = (*same)["git"];
      if (g.value("tracked", false))
        st.detail += fmt::format("; file committed at {} ({}){}", g.value("commit", std::string()).substr(0, 12), g.value("commit_time", std::string()),
                                 g.value("modified", false) ? ", the working copy modified" : "");
      else
        st.detail += "; file not tracked by git";
    } else if (renamed_to) {
      st.status = "changed after registration";
      st.detail = fmt::format("a claim of this name was registered {} with other content", (*renamed_to).value("registered", std::string()));
    } else {
      st.status = regs.empty() ? "not registered" : "added after the run started";
      st.detail = regs.empty() ? "the run recorded no claims (run with --expect)" : "in no registration of this run";
    }
    if (st.post_hoc) st.detail += "; the file declares itself post hoc: " + expect["post_hoc"].get<std::string>();
    out.push_back(st);
  }
  return out;
}

json evaluate_registered_claims(const json& report, const json& manifest) {
  if (!manifest.is_object() || !manifest.contains("claims") || !manifest["claims"].is_array() || manifest["claims"].empty()) return nullptr;
  const json& reg = manifest["claims"].back();
  const json& expect = reg["content"];
  json out = {{"source", reg.value("source", std::string())}, {"sha256", reg.value("sha256", std::string())}, {"claims", json::array()}};
  std::vector<ClaimResult> results;
  std::vector<ClaimStatus> statuses;
  try {  // a claim file that no longer parses (an older registration) must not cost the run its report
    results = check_claims(report, expect, reg.value("source", std::string("registered claims")));
    statuses = claim_statuses(expect, manifest);
  } catch (const std::exception& e) {
    out["error"] = e.what();
    out["held"] = 0;
    out["total"] = 0;
    return out;
  }
  if (expect.contains("post_hoc")) out["post_hoc"] = expect["post_hoc"];
  int held = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    held += results[i].ok;
    out["claims"].push_back({{"name", results[i].name}, {"holds", results[i].ok}, {"detail", results[i].detail},
                             {"status", statuses[i].status}, {"pre_registered", statuses[i].pre_registered && !statuses[i].post_hoc},
                             {"post_hoc", statuses[i].post_hoc}, {"status_detail", statuses[i].detail}});
  }
  out["held"] = held;
  out["total"] = static_cast<int>(results.size());
  return out;
}

std::string claims_md(const json& claims) {
  if (!claims.is_object()) return "";
  if (claims.contains("error"))
    return fmt::format("\n## Claims\n\nThe registered claim file {} could not be checked: {}\n", claims.value("source", std::string()),
                       claims["error"].get<std::string>());
  std::string md = fmt::format("\n\n## Claims\n\n{} of {} claims hold. Claim file: {} (sha256 {}){}.\n\n", claims.value("held", 0),
                               claims.value("total", 0), claims.value("source", std::string()), claims.value("sha256", std::string()).substr(0, 16),
                               claims.contains("post_hoc") ? "; **post hoc**: " + claims["post_hoc"].get<std::string>() : "");
  md += "| claim | verdict | registration | what was tested |\n|---|---|---|---|\n";
  for (const auto& c : claims["claims"])
    md += fmt::format("| {} | {} | {} ({}) | {} |\n", c.value("name", std::string()), c.value("holds", false) ? "holds" : "**fails**",
                      c.value("status", std::string()), c.value("status_detail", std::string()), c.value("detail", std::string()));
  return md;
}

}  // namespace subliminal::report
