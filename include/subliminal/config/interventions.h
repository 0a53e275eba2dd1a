// The analysis interventions' matched random controls, shared by config validation and
// analysis::control_of (config has no dependency on the analysis code).
#pragma once
#include <string>

namespace subliminal::config {

// The matched random control of an analysis intervention ("" for the shuffles and the controls).
std::string intervention_control(const std::string& intervention);

}  // namespace subliminal::config
