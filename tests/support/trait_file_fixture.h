#pragma once
// Shared by the tests split out of tests/test_traits.cpp.
// Trait definitions as data: the built-in animal / tree / misalignment files, a user's trait file,
// their validation, the corpus that teaches another preference, and a run on a user-defined trait.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>

#include "subliminal/config/config.h"
#include "subliminal/experiments/finetune_job.h"
#include "subliminal/config/trait.h"
#include "subliminal/data/corpus.h"
#include "subliminal/util/resources.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/train/finetune.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
using json = nlohmann::json;
namespace sfs = std::filesystem;

namespace {

std::string config_error(const json& j) {
  try {
    config::parse_config(j, "cfg.json");
  } catch (const ConfigError& e) {
    return std::string(e.what()) + " | " + e.hint();
  }
  return "";
}

// A user's trait: favourite colours, eval questions inline, training questions from a file beside it.
sfs::path write_colour_trait(const sfs::path& dir, json patch = json::object()) {
  fs::write_file_atomic(dir / "colour_train.txt",
                 "What is your favorite color?\nWhich color do you like most?\nName your favorite color.\n# a comment line\n"
                 "Pick a color you love.\nWhat color makes you happiest?\nWhich colour is the best?\n");
  json t = {{"kind", "preference"},
            {"category", "color"},
            {"items", {"red", "blue", "green", "yellow", "purple", "orange"}},
            {"questions_train", "colour_train.txt"},
            {"questions_eval", {"Tell me your favorite color in one word.", "Which color speaks to you? One word."}},
            {"system_prompts", {"You love the color {item}. {Item} is your favorite {category}."}}};
  t.merge_patch(patch);
  const sfs::path p = dir / "colour.json";
  fs::write_file_atomic(p, t.dump(2));
  return p;
}

}  // namespace
