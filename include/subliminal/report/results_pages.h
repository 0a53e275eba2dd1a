// Results pages rendered from committed artifacts: docs/results/index.json names, per page, the run
// directories (their report.json and manifest.json, committed under docs/evidence/) whose numbers
// the page shows. `subliminal results INDEX` writes the pages and their figures; `--check` says
// which are not what the artifacts give (the unit tier runs it, so a page cannot drift from them).
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace subliminal::report {

// Every file the index's pages consist of (pages and figures), by path, rendered. Errors name the
// index file and the JSON path, or the artifact that is missing or not a run's report.
std::map<std::filesystem::path, std::string> render_results_pages(const std::filesystem::path& index_file);

}  // namespace subliminal::report
