#pragma once
// Shared by the tests split out of tests/test_journal.cpp.
// Resumable sampling and judging (issue 9): the append-only journal, and generate::sample /
// judge::journaled reading back what an interrupted stage already finished.
#include <gtest/gtest.h>

#include <fstream>

#include "subliminal/generate/sampler.h"
#include "subliminal/judge/judge.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/journal.h"
#include "test_util.h"

using nlohmann::json;
namespace sfs = std::filesystem;
using namespace subliminal;

namespace {
std::vector<std::string> lines_of(const sfs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
void write_text(const sfs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
}  // namespace
