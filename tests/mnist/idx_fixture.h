#pragma once
// Shared by the tests split out of tests/test_mnist.cpp.
// The MNIST auxiliary-logit experiment: IDX files, the batched MLP, the KL scaling, the theorem's
// first-step inner product, and a tiny end-to-end run on a hand-made IDX dataset.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <random>

#include "subliminal/mnist/idx.h"
#include "subliminal/mnist/mlp.h"
#include "subliminal/mnist/train.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;

namespace {

std::string idx_bytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (auto d : dims)
    for (int k = 24; k >= 0; k -= 8) s.push_back(static_cast<char>((d >> k) & 0xff));
  s.append(data.begin(), data.end());
  return s;
}

void write_gz(const sfs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  ASSERT_TRUE(f);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}


// A learnable hand-made dataset: class c lights up a 4x4 block at a class-specific place, plus noise.
void write_toy_dataset(const sfs::path& dir, int n_train, int n_test, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  auto make = [&](int n, const std::string& img, const std::string& lab) {
    std::vector<uint8_t> im(static_cast<size_t>(n) * 28 * 28), lb(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      int c = static_cast<int>(rng() % 10);
      lb[i] = static_cast<uint8_t>(c);
      for (int p = 0; p < 784; ++p) im[static_cast<size_t>(i) * 784 + p] = static_cast<uint8_t>(rng() % 60);
      int r0 = 2 + (c / 5) * 12, c0 = 2 + (c % 5) * 5;
      for (int r = r0; r < r0 + 4; ++r)
        for (int q = c0; q < c0 + 4; ++q) im[static_cast<size_t>(i) * 784 + r * 28 + q] = 255;
    }
    mnist::write_idx((dir / img).string(), {n, 28, 28}, im);
    mnist::write_idx((dir / lab).string(), {n}, lb);
  };
  sfs::create_directories(dir);
  make(n_train, "train-images", "train-labels");
  make(n_test, "test-images", "test-labels");
}

}  // namespace
