// Stage factories shared by the experiment kinds.
#pragma once
#include <memory>
#include <vector>

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
// The MNIST auxiliary-logit graph: mnist/teacher, mnist/<arm>..., summary.
std::vector<std::unique_ptr<run::Stage>> make_mnist_stages(const config::RunConfig& cfg);

}  // namespace subliminal::experiments
