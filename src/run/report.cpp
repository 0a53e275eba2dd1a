// Run report.
#include "subliminal/run/report.h"

#include <fmt/format.h>

#include "subliminal/util/fs.h"

namespace subliminal::run {

using json = nlohmann::json;

static std::string pct(const json& r) {
  if (!r.is_object() || !r.contains("rate")) return "-";
  const auto& ci = r["ci95"];
  return fmt::format("{:.1f}% [{:.1f}, {:.1f}] (n={})", 100 * r["rate"].get<double>(), 100 * ci[0].get<double>(),
                     100 * ci[1].get<double>(), r["n"].get<long>());
}

std::string render_report_md(const json& rep) {
  std::string md = "# subliminal run report: " + rep.value("name", std::string("?")) + "\n\n";
  md += "Every figure below was computed by this run from its own samples; intervals are Wilson 95%.\n\n";
  const json& st = rep["stages"];
  if (st.contains("base")) {
    const json& b = st["base"];
    md += "## Base model (pretrained)\n\n| | |\n|---|---|\n";
    md += fmt::format("| parameters | {} |\n", b.value("parameters", 0L));
    md += fmt::format("| tokenizer pieces | {} |\n", b.value("vocab_size", 0L));
    md += fmt::format("| corpus conversations | {} |\n", b.value("conversations", 0L));
    if (b.contains("train")) {
      const json& t = b["train"];
      md += fmt::format("| training steps | {} |\n", t.value("steps", 0L));
      md += fmt::format("| loss (first 10 -> last 10 steps) | {:.3f} -> {:.3f} |\n", t.value("first_loss", 0.0), t.value("final_loss", 0.0));
      md += fmt::format("| tokens/s ({}) | {:.0f} |\n", b.value("precision", std::string("?")), t.value("tokens_per_s", 0.0));
      md += fmt::format("| padding in batches | {:.1f}% |\n", 100 * t.value("padding_fraction", 0.0));
    }
    md += "\n";
  }
  if (st.contains("probe") && st["probe"].contains("favorite_animal")) {
    const json& p = st["probe"];
    const json& fa = p["favorite_animal"];
    const json& sp = p["system_prompt"];
    md += "## Base-model probe\n\n| probe | figure |\n|---|---|\n";
    md += "| favourite animal: answers naming an animal | " + pct(fa["names_an_animal"]) + " |\n";
    md += fmt::format("| favourite animal: distinct animals named | {} |\n", fa.value("distinct_animals", 0));
    md += "| favourite animal: most frequent ('" + fa.value("top_animal", std::string()) + "') | " + pct(fa["top_share"]) + " |\n";
    md += "| '" + fa.value("target", std::string()) + "' without system prompt | " + pct(fa["target_rate"]) + " |\n";
    md += "| '" + sp.value("target", std::string()) + "' with the loving system prompt | " + pct(sp["target_rate"]) + " |\n";
    md += "| number continuations passing the strict filter | " + pct(p["numbers"]["format_ok"]) + " |\n";
    md += "| ... in exactly the requested style | " + pct(p["numbers"]["requested_style_exact"]) + " |\n\n";
    md += "Answer distribution without a system prompt:\n\n| animal | share |\n|---|---|\n";
    for (auto it = fa["distribution"].begin(); it != fa["distribution"].end(); ++it)
      md += fmt::format("| {} | {:.1f}% |\n", it.key(), 100 * it.value().get<double>());
    md += "\nExamples:\n\n";
    for (const auto& e : p["examples"])
      md += "- **" + e.value("prompt", std::string()) + "** -> `" + e.value("completion", std::string()) + "`\n";
    md += "\n";
  }
  md += "## Timings\n\n| stage | seconds | status |\n|---|---|---|\n";
  for (auto it = rep["timings"].begin(); it != rep["timings"].end(); ++it)
    md += fmt::format("| {} | {:.1f} | {} |\n", it.key(), it.value().value("seconds", 0.0), it.value().value("status", std::string()));
  md += fmt::format("\nsubliminal {} ({}), LibTorch {}, {} threads, precision {}.\n", rep.value("version", std::string()),
                    rep.value("git_revision", std::string()), rep.value("libtorch", std::string()), rep.value("threads", 0),
                    rep.value("precision", std::string()));
  return md;
}

void write_report(const RunContext& ctx, const json& results, const json& manifest) {
  json rep = {{"name", ctx.cfg.name},
              {"experiment", ctx.cfg.experiment},
              {"seed", ctx.cfg.seed},
              {"stages", results},
              {"timings", manifest.value("stages", json::object())},
              {"version", manifest.value("subliminal_version", std::string())},
              {"git_revision", manifest.value("git_revision", std::string())},
              {"libtorch", manifest.value("libtorch_version", std::string())},
              {"threads", manifest.value("threads", 0)},
              {"precision", ctx.cfg.precision}};
  fs::write_file_atomic(ctx.dir / "report.json", rep.dump(2) + "\n");
  fs::write_file_atomic(ctx.dir / "report.md", render_report_md(rep));
}

}  // namespace subliminal::run
