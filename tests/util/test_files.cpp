// SHA-256 vectors and atomic writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "subliminal/data/chat.h"
#include "subliminal/data/corpus.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/train/schedule.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "test_util.h"

using namespace subliminal;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(fs::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(fs::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(fs::sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Files, AtomicWriteLeavesNoTemp) {
  auto dir = testutil::temp_dir("atomic");
  fs::write_file_atomic(dir / "a.txt", "hello");
  EXPECT_EQ(fs::read_file(dir / "a.txt"), "hello");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++n;
  EXPECT_EQ(n, 1);
  EXPECT_THROW(fs::write_file_atomic("/proc/forbidden/x", "y"), IoError);
  std::filesystem::remove_all(dir);
}
