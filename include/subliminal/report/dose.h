// The dose-response study of `subliminal report`: one point per trained student of every finished
// trait run given (run or sweep directories), with how much of the trait it picked up (its rate of
// the target minus its own init's) and the diagnostics of that run — held-out imitation fidelity,
// coverage, the source data's divergence from the base (per-token restricted KL, LLS), the number of
// unique prompts it trained on (kept examples), the teacher's own lift. Correlations of transfer with
// each diagnostic (Pearson and Spearman, with Spearman's two-sided p) over the same-init students and
// over all students; a four-panel scatter figure (transfer against fidelity, unique prompts, teacher
// divergence and coverage; same-init and cross-init students in their own colours).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace subliminal::report {

// {"points": [...], "correlations": {"same_init": {diag: {...}}, "all": {...}}, "runs": [...]}.
// A run whose report has no per-student diagnostics still gives points (diagnostics null).
nlohmann::json dose_response(const std::vector<std::string>& paths);
std::string dose_response_markdown(const nlohmann::json& dr);
std::string dose_response_csv(const nlohmann::json& dr);
std::string dose_response_svg(const nlohmann::json& dr);

}  // namespace subliminal::report
