// GGUF reading: block layouts dequantised, metadata and index read, damaged files refused.
#include "gguf_fixture.h"


TEST(Gguf, LegacyBlockTypesDequantiseByTheirLayout) {
  {  // Q8_0: d, then 32 signed bytes
    std::string b = half(0.5f);
    for (int j = 0; j < 32; ++j) b += static_cast<char>(static_cast<int8_t>(j - 16));
    auto y = deq(8, b, 32);
    for (int j = 0; j < 32; ++j) EXPECT_FLOAT_EQ(y[j], (j - 16) * 0.5f) << j;
  }
  {  // Q4_0: (nibble - 8) * d; low nibbles are values 0..15, high nibbles 16..31
    std::string b = half(2.0f);
    for (int j = 0; j < 16; ++j) b += static_cast<char>(j | ((15 - j) << 4));
    auto y = deq(2, b, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_FLOAT_EQ(y[j], (j - 8) * 2.0f) << j;
      EXPECT_FLOAT_EQ(y[16 + j], (15 - j - 8) * 2.0f) << j;
    }
  }
  {  // Q4_1: nibble * d + m
    std::string b = half(0.25f) + half(-1.0f);
    for (int j = 0; j < 16; ++j) b += static_cast<char>(j | ((15 - j) << 4));
    auto y = deq(3, b, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_FLOAT_EQ(y[j], j * 0.25f - 1.0f) << j;
      EXPECT_FLOAT_EQ(y[16 + j], (15 - j) * 0.25f - 1.0f) << j;
    }
  }
  {  // Q5_0 / Q5_1: bit j of qh is the fifth bit of value j (values 0..15 set here, 16..31 not)
    const uint32_t qh = 0x0000FFFFu;
    std::string h(reinterpret_cast<const char*>(&qh), 4), q;
    for (int j = 0; j < 16; ++j) q += static_cast<char>(j | (j << 4));
    auto y0 = deq(6, half(0.5f) + h + q, 32);
    auto y1 = deq(7, half(0.5f) + half(3.0f) + h + q, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_FLOAT_EQ(y0[j], ((j | 16) - 16) * 0.5f) << j;
      EXPECT_FLOAT_EQ(y0[16 + j], (j - 16) * 0.5f) << j;
      EXPECT_FLOAT_EQ(y1[j], (j | 16) * 0.5f + 3.0f) << j;
      EXPECT_FLOAT_EQ(y1[16 + j], j * 0.5f + 3.0f) << j;
    }
  }
  {  // F16, BF16, F32 as stored
    std::string f16 = half(1.5f) + half(-0.125f);
    auto y = deq(1, f16, 2);
    EXPECT_FLOAT_EQ(y[0], 1.5f);
    EXPECT_FLOAT_EQ(y[1], -0.125f);
    const uint16_t bf[2] = {0x3FC0, 0xC000};  // 1.5, -2
    auto z = deq(30, std::string(reinterpret_cast<const char*>(bf), 4), 2);
    EXPECT_FLOAT_EQ(z[0], 1.5f);
    EXPECT_FLOAT_EQ(z[1], -2.0f);
  }
  EXPECT_NE(testutil::error_of([] { deq(17, std::string(74, '\0'), 256); }).find("IQ2_XS"), std::string::npos);
}

TEST(Gguf, KQuantsDequantiseByTheirLayout) {
  {  // Q4_K: 8 sub-blocks of 32 with 6-bit scale/min; chunk c of 64 = sub-block 2c (low nibbles), 2c+1 (high)
    std::string b = half(1.0f) + half(0.5f);
    unsigned char sc[12];
    for (int j = 0; j < 4; ++j) sc[j] = static_cast<unsigned char>(j + 1), sc[j + 4] = static_cast<unsigned char>(j);  // scales 1..4, mins 0..3
    for (int j = 4; j < 8; ++j) sc[j + 4] = static_cast<unsigned char>((j + 1) | (j << 4));                          // scale j+1, min j
    b += std::string(reinterpret_cast<const char*>(sc), 12) + std::string(128, static_cast<char>(0x53));
    auto y = deq(12, b, 256);
    for (int e = 0; e < 256; ++e) {
      const int sb = e / 32, nib = sb % 2 == 0 ? 3 : 5;
      EXPECT_FLOAT_EQ(y[e], 1.0f * (sb + 1) * nib - 0.5f * sb) << e;
    }
    // Q5_K: the same, with a fifth bit from qh (bit 2c for sub-block 2c, 2c+1 for 2c+1): all set
    auto y5 = deq(13, half(1.0f) + half(0.5f) + std::string(reinterpret_cast<const char*>(sc), 12) + std::string(32, static_cast<char>(0xFF)) +
                          std::string(128, static_cast<char>(0x53)),
                  256);
    for (int e = 0; e < 256; ++e) {
      const int sb = e / 32, nib = (sb % 2 == 0 ? 3 : 5) + 16;
      EXPECT_FLOAT_EQ(y5[e], 1.0f * (sb + 1) * nib - 0.5f * sb) << e;
    }
  }
  {  // Q6_K: q = (4 bits of ql | 2 bits of qh) - 32, times d and one of 16 int8 scales
    std::string b(128, static_cast<char>(0xFF));  // ql: both nibbles 15
    b += std::string(64, static_cast<char>(0xFF));  // qh: every 2-bit field 3 -> q = 63 - 32 = 31
    for (int i = 0; i < 16; ++i) b += static_cast<char>(static_cast<int8_t>(i - 8));
    b += half(0.5f);
    auto y = deq(14, b, 256);
    for (int e = 0; e < 256; ++e) {
      const int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
      const int s = h * 8 + l / 16 + 2 * quarter;
      EXPECT_FLOAT_EQ(y[e], 0.5f * (s - 8) * 31) << e;
    }
  }
}

TEST(Gguf, ReadsMetadataAndTheTensorIndex) {
  auto dir = testutil::temp_dir("gguf_read");
  testutil::GgufWriter w;
  w.str("general.architecture", "llama");
  w.u32("llama.block_count", 2);
  w.f32("llama.rope.freq_base", 10000.0f);
  w.boolean("tokenizer.ggml.add_bos_token", true);
  w.strs("tokenizer.ggml.tokens", {"a", "b", "\xc4\xa0"});
  w.i32s("tokenizer.ggml.token_type", {1, 1, 3});
  w.f32_tensor("x", {3, 2}, {1, 2, 3, 4, 5, 6});
  w.tensor("y", {32}, 8, half(1.0f) + std::string(32, '\x02'));
  auto p = write(dir / "m.gguf", w.bytes());
  auto f = model::GgufFile::open(p.string());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata()["general.architecture"], "llama");
  EXPECT_EQ(f.metadata()["llama.block_count"], 2);
  EXPECT_EQ(f.metadata()["tokenizer.ggml.add_bos_token"], true);
  EXPECT_EQ(f.metadata()["tokenizer.ggml.tokens"].size(), 3u);
  EXPECT_EQ(f.metadata()["tokenizer.ggml.token_type"][2], 3);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensor("x").torch_shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.dequantize(f.tensor("x")), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  auto y = f.dequantize(f.tensor("y"));
  for (float v : y) EXPECT_FLOAT_EQ(v, 2.0f);
  EXPECT_NE(testutil::error_of([&] { f.tensor("z"); }).find("no tensor 'z'"), std::string::npos);
  sfs::remove_all(dir);
}

TEST(Gguf, DamagedFilesAreRefusedNamingTheFileAndTheTensor) {
  auto dir = testutil::temp_dir("gguf_bad");
  testutil::GgufWriter w;
  w.str("general.architecture", "llama");
  w.strs("tokenizer.ggml.tokens", {"a", "b"});
  w.f32_tensor("blk.0.attn_q.weight", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const std::string good = w.bytes();
  // every truncation is an error (never a crash, never a silently short tensor)
  for (size_t n = 0; n < good.size(); n += (n < 200 ? 1 : 7)) {
    auto p = write(dir / "cut.gguf", good.substr(0, n));
    const std::string e = testutil::error_of([&] { model::GgufFile::open(p.string()); });
    EXPECT_NE(e.find("cut.gguf"), std::string::npos) << "cut at " << n << ": " << e;
  }
  auto msg = [&](std::string bytes) {
    auto p = write(dir / "bad.gguf", bytes);
    return testutil::error_of([&] { model::GgufFile::open(p.string()); });
  };
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_NE(msg(bad).find("magic \"XGUF\", expected \"GGUF\""), std::string::npos) << msg(bad);
  testutil::GgufWriter v1 = w;
  v1.version = 1;
  EXPECT_NE(msg(v1.bytes()).find("GGUF version 1 is not supported"), std::string::npos);
  testutil::GgufWriter unk = w;
  unk.tensors[0].type = 99;
  EXPECT_NE(msg(unk.bytes()).find("tensor 'blk.0.attn_q.weight' has type unknown type 99"), std::string::npos) << msg(unk.bytes());
  testutil::GgufWriter past = w;
  past.tensors[0].dims = {4, 200};  // the index promises more data than the file holds
  EXPECT_NE(msg(past.bytes()).find("'blk.0.attn_q.weight': its data (3200 bytes at offset 0) runs past the end"), std::string::npos)
      << msg(past.bytes());
  testutil::GgufWriter blocks = w;
  blocks.tensors[0].type = 8;  // Q8_0 needs whole blocks of 32
  EXPECT_NE(msg(blocks.bytes()).find("8 values are not whole blocks of Q8_0"), std::string::npos) << msg(blocks.bytes());
  testutil::GgufWriter dup = w;
  dup.str("general.architecture", "qwen2");
  EXPECT_NE(msg(dup.bytes()).find("metadata key 'general.architecture': duplicate key"), std::string::npos) << msg(dup.bytes());
  // an unsupported but known type: the reader indexes it, dequantising it names it
  testutil::GgufWriter iq;
  iq.tensor("t", {256}, 17, std::string(74, '\0'));
  auto p = write(dir / "iq.gguf", iq.bytes());
  auto f = model::GgufFile::open(p.string());
  EXPECT_NE(testutil::error_of([&] { f.dequantize(f.tensor("t")); }).find("tensor 't' has type IQ2_XS, which cannot be dequantised"),
            std::string::npos);
  sfs::remove_all(dir);
}

TEST(Gguf, ImportRefusesWhatItCannotConvertAndLeavesNothingBehind) {
  torch::NoGradGuard ng;
  auto dir = testutil::temp_dir("gguf_refuse");
  model::LlamaForCausalLM m(tiny_cfg());
  model::init_weights(m, 3);
  auto p = write(dir / "t.gguf", tiny_llama_gguf(m, "smollm"));
  model::import_gguf(p.string(), (dir / "hf").string());
  // an existing directory is not replaced without --force (exit 2 from the CLI)
  auto r = testutil::run_cli("import-gguf " + p.string() + " --out " + (dir / "hf").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  r = testutil::run_cli("import-gguf " + p.string() + " --out " + (dir / "hf").string() + " --force");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("imported"), std::string::npos) << r.out;
  r = testutil::run_cli("import-gguf " + (dir / "missing.gguf").string() + " --out " + (dir / "x").string());
  EXPECT_EQ(r.code, 2) << r.out;
  // an unknown pre-tokenizer is named, and no directory appears
  auto p2 = write(dir / "pre.gguf", tiny_llama_gguf(m, "deepseek-coder"));
  EXPECT_NE(testutil::error_of([&] { model::import_gguf(p2.string(), (dir / "hf_pre").string()); })
                .find("'tokenizer.ggml.pre' is \"deepseek-coder\""),
            std::string::npos);
  EXPECT_FALSE(sfs::exists(dir / "hf_pre"));
  for (auto& e : sfs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  sfs::remove_all(dir);
}
