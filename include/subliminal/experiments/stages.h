// Stage factories shared by the experiment kinds.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "subliminal/config/trait.h"
#include "subliminal/model/model_io.h"
#include "subliminal/run/runner.h"

namespace subliminal::experiments {

// The stages of the config's experiment, in an order where each stage follows those it reads
// (pretrain, trait_transfer, mnist_aux): what `subliminal run` and its workers execute.
std::vector<std::unique_ptr<run::Stage>> make_stages(const config::RunConfig& cfg);

uint64_t base_seed(const config::RunConfig& c);
uint64_t cross_base_seed(const config::RunConfig& c);
// "base" (pretrain on the synthetic corpus), or with `cross` "base_cross": same corpus and tokenizer,
// another initialisation and data order.
std::unique_ptr<run::Stage> make_pretrain_stage(bool cross = false);
// "corpus": the synthetic corpus (corpus.jsonl) and the tokenizer trained on it (tokenizer.model).
std::unique_ptr<run::Stage> make_corpus_stage();
// base.kind "checkpoint": stage `name` ("base" or "base_cross") validates the model directory at
// `path` by loading it and copies its files into the run directory.
std::unique_ptr<run::Stage> make_checkpoint_stage(const std::string& name, const std::string& path);
// The pretrain graph: corpus and base (or a checkpoint as the base), and the probe if enabled.
std::vector<std::unique_ptr<run::Stage>> make_pretrain_stages(const config::RunConfig& cfg);
// The trait-transfer graph: bases, teachers, datasets, students, evals, summary.
std::vector<std::unique_ptr<run::Stage>> make_trait_stages(const config::RunConfig& cfg);
// A model stage of a trait run as the experiment uses it ("base", "teacher", "students/<arm>_s<k>"):
// its weights on the run's device in eval mode, and the system prompt it answers under (a
// system-prompt teacher is the base with its prompt).
struct StageModel {
  model::LoadedModel lm;
  std::string system;
  bool bf16 = false;
};
StageModel load_stage_model(const run::RunContext& ctx, const std::string& stage);

// Issue 25's stages (experiments/analysis_stages.cpp), added to a trait run when analysis.enabled.
// "analysis/s<k>": the teacher's data of seed pair k scored against the base, the intervention
// datasets (interventions/<name>/kept.jsonl and, for the masks, loss_mask.json) and the audit.
std::string analysis_stage(int k);
std::filesystem::path intervention_dir(const run::RunContext& ctx, int k, const std::string& name);
// loss_mask.json of an intervention directory ({"masks": [[0|1, ...], ...]}); empty when there is none.
std::vector<std::vector<uint8_t>> read_loss_masks(const std::filesystem::path& dir);
std::unique_ptr<run::Stage> make_analysis_stage(const config::RunConfig& cfg, int k, std::shared_ptr<const config::TraitDef> trait);
// "analysis/summary": each intervention's students against the treatment and control arms, the
// entanglement test, the audit per animal, the figures; analysis.json and analysis.md.
std::unique_ptr<run::Stage> make_analysis_summary_stage(const config::RunConfig& cfg, std::shared_ptr<const config::TraitDef> trait);

// The MNIST auxiliary-logit graph: mnist/teacher, mnist/<arm>..., summary.
std::vector<std::unique_ptr<run::Stage>> make_mnist_stages(const config::RunConfig& cfg);

}  // namespace subliminal::experiments
