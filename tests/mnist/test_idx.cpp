// MNIST IDX files (plain and gzip, damaged ones named) and the derangement.
#include "idx_fixture.h"


TEST(Mnist, IdxReadsPlainAndGzipFiles) {
  auto dir = testutil::temp_dir("idx");
  std::vector<uint8_t> data(2 * 3 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  const std::string bytes = idx_bytes({2, 3, 4}, data);
  fs::write_file_atomic(dir / "a.idx", bytes);
  write_gz(dir / "a.idx.gz", bytes);
  for (const char* f : {"a.idx", "a.idx.gz"}) {
    auto a = mnist::read_idx((dir / f).string());
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 4})) << f;
    EXPECT_EQ(a.data, data) << f;
  }
  // our writer round-trips
  mnist::write_idx((dir / "b.idx").string(), {2, 3, 4}, data);
  EXPECT_EQ(fs::read_file(dir / "b.idx"), bytes);
  sfs::remove_all(dir);
}

TEST(Mnist, IdxRejectsDamagedFilesNamingTheFile) {
  auto dir = testutil::temp_dir("idx_bad");
  std::vector<uint8_t> data(12, 1);
  auto bad = [&](const std::string& name, const std::string& bytes) {
    fs::write_file_atomic(dir / name, bytes);
    return testutil::error_of([&] { mnist::read_idx((dir / name).string()); });
  };
  std::string e = bad("trunc.idx", idx_bytes({3, 4}, std::vector<uint8_t>(11, 1)));
  EXPECT_NE(e.find("trunc.idx"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  e = bad("trailing.idx", idx_bytes({3, 4}, std::vector<uint8_t>(13, 1)));
  EXPECT_NE(e.find("trailing"), std::string::npos) << e;
  e = bad("magic.idx", "\x01\x02" + idx_bytes({3, 4}, data).substr(2));
  EXPECT_NE(e.find("magic"), std::string::npos) << e;
  e = bad("type.idx", idx_bytes({3, 4}, std::vector<uint8_t>(48, 1), 0x0D));  // float32 elements
  EXPECT_NE(e.find("unsigned byte"), std::string::npos) << e;
  e = bad("header.idx", idx_bytes({3, 4}, {}).substr(0, 9));
  EXPECT_NE(e.find("truncated header"), std::string::npos) << e;
  e = bad("short.idx", std::string("\0\0", 2));
  EXPECT_NE(e.find("magic"), std::string::npos) << e;
  e = testutil::error_of([&] { mnist::read_idx((dir / "missing.idx").string()); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  // images and labels must agree in count; labels must be classes
  mnist::write_idx((dir / "img").string(), {3, 2, 2}, std::vector<uint8_t>(12, 9));
  mnist::write_idx((dir / "lab").string(), {4}, {0, 1, 2, 3});
  e = testutil::error_of([&] { mnist::load_split((dir / "img").string(), (dir / "lab").string()); });
  EXPECT_NE(e.find("3 images"), std::string::npos) << e;
  EXPECT_NE(e.find("4 labels"), std::string::npos) << e;
  mnist::write_idx((dir / "lab").string(), {3}, {0, 1, 12});
  e = testutil::error_of([&] { mnist::load_split((dir / "img").string(), (dir / "lab").string()); });
  EXPECT_NE(e.find("label 12"), std::string::npos) << e;
  // a good pair scales bytes to [-1, 1]
  mnist::write_idx((dir / "img").string(), {3, 2, 2}, {0, 255, 0, 255, 51, 51, 51, 51, 255, 255, 255, 255});
  mnist::write_idx((dir / "lab").string(), {3}, {0, 1, 9});
  auto s = mnist::load_split((dir / "img").string(), (dir / "lab").string());
  EXPECT_EQ(s.images.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_FLOAT_EQ(s.images[0][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(s.images[0][1].item<float>(), 1.0f);
  EXPECT_NEAR(s.images[1][0].item<float>(), -0.6f, 1e-6);
  EXPECT_EQ(s.labels[2].item<int64_t>(), 9);
  sfs::remove_all(dir);
}

TEST(Mnist, DerangementHasNoFixedPoint) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto p = mnist::derangement(2 + static_cast<int64_t>(seed % 7), seed);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < p.size(); ++i) {
      EXPECT_NE(p[i], static_cast<int64_t>(i));
      EXPECT_EQ(sorted[i], static_cast<int64_t>(i));
    }
  }
  EXPECT_THROW(mnist::derangement(1, 0), ConfigError);
}
