// The experiment kinds and their stage graphs: the one table `subliminal run` dispatches on.
#include <functional>
#include <map>

#include "subliminal/experiments/stages.h"
#include "subliminal/util/error.h"

namespace subliminal::experiments {

std::vector<std::unique_ptr<run::Stage>> make_stages(const config::RunConfig& cfg) {
  using Factory = std::function<std::vector<std::unique_ptr<run::Stage>>(const config::RunConfig&)>;
  static const std::map<std::string, Factory> kinds = {
      {"pretrain", make_pretrain_stages}, {"trait_transfer", make_trait_stages}, {"mnist_aux", make_mnist_stages}};
  auto it = kinds.find(cfg.experiment);
  if (it == kinds.end()) throw ConfigError("experiment \"" + cfg.experiment + "\" has no stage graph", "expected pretrain, trait_transfer or mnist_aux");
  return it->second(cfg);
}

}  // namespace subliminal::experiments
