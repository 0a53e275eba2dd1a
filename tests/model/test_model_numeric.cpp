// Model numerics on tiny models: cached == full forward (also with left padding), safetensors
// bit-exact round trip and rejection of damaged files, seeded sampling, training reduces loss,
// resume reproduces the remaining losses, bf16 autocast close to fp32, HF directory round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>

#include "subliminal/text/chat_template.h"
#include "subliminal/config/config.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;

static model::LlamaForCausalLM tiny_model(uint64_t seed, int vocab = 97, bool tied = false) {
  auto mc = config::model_preset("tiny");
  mc.tie_word_embeddings = tied;
  auto cfg = model::LlamaConfig::from(mc, vocab);
  model::LlamaForCausalLM m(cfg);
  model::init_weights(m, seed);
  m->eval();
  return m;
}

static double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>();
}

TEST(ModelNumeric, KVCacheMatchesFullForward) {
  torch::NoGradGuard ng;
  at::set_num_threads(1);
  auto m = tiny_model(1);
  auto ids = torch::randint(0, 97, {3, 20}, torch::kLong);
  auto full = m->forward_causal(ids);  // (3,20,V)
  // prefix of 7 tokens, then one token at a time through the cache
  auto cache = m->new_cache(3, 20);
  const int64_t P = 7;
  auto pos = torch::arange(P, torch::kLong).unsqueeze(0).expand({3, P});
  auto bias = m->causal_bias.slice(0, 0, P).slice(1, 0, P).view({1, 1, P, P});
  auto out = m->forward(ids.slice(1, 0, P), pos, bias, &cache);
  double worst = max_abs_diff(out, full.slice(1, 0, P));
  for (int64_t t = P; t < 20; ++t) {
    auto step = m->forward(ids.slice(1, t, t + 1), torch::full({3, 1}, t, torch::kLong), torch::Tensor(), &cache);
    worst = std::max(worst, max_abs_diff(step.select(1, 0), full.select(1, t)));
  }
  std::cout << "max |cached - full| = " << worst << "\n";
  EXPECT_LT(worst, 1e-5);
  EXPECT_EQ(cache.length, 20);
}

// The decode step's attention kernel (one query per row, keys and values read in place from the KV
// cache, grouped-query heads) against the textbook formula: every kv head repeated for its query
// heads, q k^T / sqrt(D) + bias, softmax, times v, in float64. With padding keys masked per row and
// the cache wider than the keys in use (strided views, as the sampler passes them).
TEST(ModelNumeric, DecodeAttentionKernelMatchesTheTextbookFormula) {
  torch::manual_seed(5);
  const int64_t B = 3, H = 6, Hkv = 2, D = 16, S = 11, capacity = 19;
  auto q = torch::randn({B, H, 1, D});
  auto kc = torch::randn({B, Hkv, capacity, D}), vc = torch::randn({B, Hkv, capacity, D});
  auto k = kc.narrow(2, 0, S), v = vc.narrow(2, 0, S);
  auto bias = torch::zeros({B, 1, 1, S});
  bias.index_put_({1, 0, 0, torch::indexing::Slice(0, 4)}, -std::numeric_limits<float>::infinity());  // row 1: 4 padding keys
  bias.index_put_({2, 0, 0, 0}, -std::numeric_limits<float>::infinity());
  ASSERT_TRUE(model::decode_attention_applies(q, k, bias));
  const auto y = model::decode_attention_cpu(q, k, v, bias);
  auto kd = k.to(torch::kDouble).repeat_interleave(H / Hkv, 1), vd = v.to(torch::kDouble).repeat_interleave(H / Hkv, 1);
  auto scores = torch::matmul(q.to(torch::kDouble), kd.transpose(-2, -1)) / std::sqrt(static_cast<double>(D)) + bias.to(torch::kDouble);
  const auto ref = torch::matmul(torch::softmax(scores, -1), vd);
  const double err = max_abs_diff(y, ref);
  std::cout << "max |decode kernel - textbook (float64)| = " << err << "\n";
  EXPECT_LT(err, 1e-5);
  // a masked key has no weight: changing its value changes nothing
  auto vc2 = vc.clone();
  vc2.index_put_({1, torch::indexing::Slice(), 0}, 1000.0);
  EXPECT_EQ(max_abs_diff(model::decode_attention_cpu(q, k, vc2.narrow(2, 0, S), bias).select(0, 1), y.select(0, 1)), 0.0);
  // no bias: every key counts; the kernel is not taken for several queries, bf16, or with autograd
  EXPECT_LT(max_abs_diff(model::decode_attention_cpu(q, k, v, torch::Tensor()),
                         torch::matmul(torch::softmax(torch::matmul(q.to(torch::kDouble), kd.transpose(-2, -1)) / std::sqrt(static_cast<double>(D)), -1), vd)),
            1e-5);
  EXPECT_FALSE(model::decode_attention_applies(torch::randn({B, H, 2, D}), k, bias));
  EXPECT_FALSE(model::decode_attention_applies(q.to(torch::kBFloat16), k, bias));
  EXPECT_FALSE(model::decode_attention_applies(q.clone().set_requires_grad(true), k, bias));
}

// Sets the process-wide attention path for a scope (model::AttentionPath), restoring the reference.
struct AttentionPathScope {
  explicit AttentionPathScope(model::AttentionPath p) { model::set_attention_path(p); }
  ~AttentionPathScope() { model::set_attention_path(model::AttentionPath::reference); }
};

// Grouped-query attention through the KV cache, one token at a time, equals the full causal forward,
// on both attention paths (reference: kv heads copied per query head; grouped: the grouped product
// and, for the decode steps, the decode kernel).
TEST(ModelNumeric, GroupedQueryKVCacheMatchesFullForward) {
  auto mc = config::model_preset("tiny");
  mc.num_key_value_heads = 1;
  model::LlamaForCausalLM m(model::LlamaConfig::from(mc, 97));
  model::init_weights(m, 4);
  m->eval();
  torch::NoGradGuard ng;
  auto ids = torch::randint(0, 97, {3, 16}, torch::kLong);
  for (auto path : {model::AttentionPath::reference, model::AttentionPath::grouped}) {
    AttentionPathScope scope(path);
    auto full = m->forward_causal(ids);
    auto cache = m->new_cache(3, 16);
    const int64_t P = 5;
    auto pos = torch::arange(P, torch::kLong).unsqueeze(0).expand({3, P});
    auto bias = m->causal_bias.slice(0, 0, P).slice(1, 0, P).view({1, 1, P, P});
    double worst = max_abs_diff(m->forward(ids.slice(1, 0, P), pos, bias, &cache), full.slice(1, 0, P));
    for (int64_t t = P; t < 16; ++t) {
      auto step = m->forward(ids.slice(1, t, t + 1), torch::full({3, 1}, t, torch::kLong), torch::zeros({3, 1, 1, t + 1}), &cache);
      worst = std::max(worst, max_abs_diff(step.select(1, 0), full.select(1, t)));
    }
    std::cout << (path == model::AttentionPath::grouped ? "grouped" : "reference") << " path: max |cached - full| = " << worst << "\n";
    EXPECT_LT(worst, 1e-5);
  }
}

// The two attention paths (the config's `attention`) compute the same function: the grouped path's
// logits, with a causal mask and left-padded rows, its parameter gradients in training mode, and its
// cached decode (the decode kernel) against the reference path's, on the tiny preset (4 query heads
// on 2 kv heads) and with every query head on one kv head. Models without grouped queries take the
// reference path's code either way. A bad name is a ConfigError.
TEST(ModelNumeric, GroupedAttentionPathEqualsTheReference) {
  at::set_num_threads(1);
  for (int kv : {2, 1}) {
    auto mc = config::model_preset("tiny");
    mc.num_key_value_heads = kv;
    auto cfg = model::LlamaConfig::from(mc, 97);
    model::LlamaForCausalLM m(cfg);
    model::init_weights(m, 31);
    const int64_t B = 3, T = 13;
    auto ids = torch::randint(0, 97, {B, T}, torch::kLong);
    auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T});
    auto bias = m->causal_mask(T).unsqueeze(0).repeat({B, 1, 1});
    bias.index_put_({1, torch::indexing::Slice(), torch::indexing::Slice(0, 4)}, -std::numeric_limits<float>::infinity());
    bias.index_put_({1, torch::indexing::Slice(0, 4), torch::indexing::Slice(0, 4)}, m->causal_mask(4));  // padding queries see themselves
    bias = bias.unsqueeze(1);
    auto run = [&](model::AttentionPath path) {
      AttentionPathScope scope(path);
      m->train();
      m->zero_grad();
      auto logits = m->forward(ids, pos, bias, nullptr);
      logits.pow(2).mean().backward();
      std::vector<torch::Tensor> grads;
      for (auto& p : m->parameters()) grads.push_back(p.grad().clone());
      m->eval();
      torch::NoGradGuard ng;
      auto cache = m->new_cache(B, T);
      const int64_t P = 6;
      auto first = m->forward(ids.slice(1, 0, P), pos.slice(1, 0, P), bias.slice(2, 0, P).slice(3, 0, P), &cache);
      std::vector<torch::Tensor> steps{first};
      for (int64_t t = P; t < T; ++t)
        steps.push_back(m->forward(ids.slice(1, t, t + 1), pos.slice(1, t, t + 1), bias.slice(2, t, t + 1).slice(3, 0, t + 1), &cache));
      return std::make_tuple(logits.detach(), grads, torch::cat(steps, 1));
    };
    const auto [l_ref, g_ref, c_ref] = run(model::AttentionPath::reference);
    const auto [l_grp, g_grp, c_grp] = run(model::AttentionPath::grouped);
    const double dl = max_abs_diff(l_grp, l_ref), dc = max_abs_diff(c_grp, c_ref);
    double dg = 0, gmax = 0;
    for (size_t i = 0; i < g_ref.size(); ++i) {
      dg = std::max(dg, max_abs_diff(g_grp[i], g_ref[i]));
      gmax = std::max(gmax, g_ref[i].abs().max().item<double>());
    }
    std::cout << "kv heads " << kv << ": max |grouped - reference|: logits " << dl << ", cached decode " << dc << ", gradients " << dg
              << " (largest gradient " << gmax << ")\n";
    EXPECT_LT(dl, 1e-5);
    EXPECT_LT(dc, 1e-5);
    EXPECT_LT(dg, 1e-5 * std::max(1.0, gmax));
    EXPECT_GT(gmax, 0.0);
  }
  EXPECT_EQ(model::attention_path(), model::AttentionPath::reference);
  EXPECT_EQ(model::attention_path_from("grouped"), model::AttentionPath::grouped);
  EXPECT_THROW(model::attention_path_from("fast"), ConfigError);
}

// The fused scaled_dot_product_attention (LibTorch 2.x, the default there) and the attention composed
// of matmul + additive mask + softmax (the 1.13 path) compute the same function: logits with a
// causal mask, with per-row padding keys and through the KV cache, every gradient, and under bf16
// autocast within bf16 rounding. On 1.13 there is only one path, and the test says so.
TEST(ModelNumeric, FusedAttentionEqualsTheComposedPath) {
  if (!model::sdpa_available()) GTEST_SKIP() << "this LibTorch (" << model::torch_version() << ") has no scaled_dot_product_attention";
  at::set_num_threads(1);
  auto mc = config::model_preset("tiny");
  mc.num_key_value_heads = 1;  // grouped-query attention too
  auto cfg = model::LlamaConfig::from(mc, 97);
  model::LlamaForCausalLM fused(cfg), composed(cfg);
  model::init_weights(fused, 21);
  model::init_weights(composed, 21);
  model::set_sdpa_attention(composed, false);
  auto ids = torch::randint(0, 97, {3, 17}, torch::kLong);
  const int64_t T = 17;
  auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({3, T});
  // causal + the first 4 keys of row 1 masked (a left-padded row: its padding queries see themselves)
  auto bias = fused->causal_mask(T).unsqueeze(0).repeat({3, 1, 1});
  auto pad = torch::zeros({3, T, T}, torch::kBool);
  pad.index_put_({1, torch::indexing::Slice(), torch::indexing::Slice(0, 4)}, true);
  pad.index_put_({1, torch::arange(4), torch::arange(4)}, false);
  bias = bias.masked_fill(pad, -std::numeric_limits<float>::infinity()).unsqueeze(1);  // (3,1,T,T)
  auto a = fused->forward(ids, pos, bias, nullptr), b = composed->forward(ids, pos, bias, nullptr);
  const double fwd = max_abs_diff(a, b);
  (a.pow(2).mean() + a.select(1, 5).sum()).backward();
  (b.pow(2).mean() + b.select(1, 5).sum()).backward();
  double grad = 0;
  auto pf = fused->named_parameters(), pc = composed->named_parameters();
  for (const auto& kv : pf) {
    ASSERT_TRUE(kv.value().grad().defined()) << kv.key();
    grad = std::max(grad, max_abs_diff(kv.value().grad(), pc[kv.key()].grad()));
  }
  double cached = 0;
  {
    torch::NoGradGuard ng;
    auto cf = fused->new_cache(3, T), cc = composed->new_cache(3, T);
    const int64_t P = 6;
    auto pb = bias.slice(2, 0, P).slice(3, 0, P);
    cached = max_abs_diff(fused->forward(ids.slice(1, 0, P), pos.slice(1, 0, P), pb, &cf),
                          composed->forward(ids.slice(1, 0, P), pos.slice(1, 0, P), pb, &cc));
    for (int64_t t = P; t < T; ++t) {
      auto sb = bias.slice(2, t, t + 1).slice(3, 0, t + 1);
      cached = std::max(cached, max_abs_diff(fused->forward(ids.slice(1, t, t + 1), pos.slice(1, t, t + 1), sb, &cf),
                                             composed->forward(ids.slice(1, t, t + 1), pos.slice(1, t, t + 1), sb, &cc)));
    }
  }
  double bf16 = 0;
  {
    torch::NoGradGuard ng;
    model::Autocast ac(true);
    bf16 = max_abs_diff(fused->forward(ids, pos, bias, nullptr), composed->forward(ids, pos, bias, nullptr));
  }
  std::cout << "max |fused - composed attention|: logits " << fwd << ", gradients " << grad << ", cached decode " << cached
            << ", bf16 autocast logits " << bf16 << "\n";
  EXPECT_LT(fwd, 1e-5);
  EXPECT_LT(grad, 1e-5);
  EXPECT_LT(cached, 1e-5);
  EXPECT_LT(bf16, 0.05);  // bf16 keeps 8 bits of mantissa: logits of |x| ~ 1 agree to a few 1e-2
  EXPECT_FALSE(torch::isnan(a).any().item<bool>());
}

TEST(ModelNumeric, LeftPaddedBatchMatchesUnpadded) {
  // Greedy generation of a short prompt alone equals its generation inside a batch with a longer one.
  auto m = tiny_model(2);
  generate::SampleOptions so;
  so.temperature = 0;
  so.max_new_tokens = 10;
  std::vector<int> shortp = {5, 6, 7}, longp = {9, 8, 7, 6, 5, 4, 3, 2, 1, 10, 11};
  auto alone = generate::sample(m, {shortp}, so);
  auto batched = generate::sample(m, {longp, shortp}, so);
  EXPECT_EQ(alone[0], batched[1]);
  auto alone_long = generate::sample(m, {longp}, so);
  EXPECT_EQ(alone_long[0], batched[0]);
  so.use_cache = false;  // the recompute path agrees with the cached one
  auto nocache = generate::sample(m, {longp, shortp}, so);
  EXPECT_EQ(nocache, batched);
}

TEST(ModelNumeric, IdenticalPromptsArePrefilledOnceAndSampleAsAlone) {
  // A batch with repeated prompts (prefilled once, the cache rows copied) decodes every copy as that
  // prompt alone (greedy), and sampled copies draw independently.
  auto m = tiny_model(2);
  generate::SampleOptions so;
  so.temperature = 0;
  so.max_new_tokens = 10;
  const std::vector<int> p1 = {5, 6, 7}, p2 = {9, 8, 7, 6, 5, 4};
  const auto a1 = generate::sample(m, {p1}, so), a2 = generate::sample(m, {p2}, so);
  const auto batched = generate::sample(m, {p1, p2, p1, p1, p2}, so);
  for (size_t r : {0, 2, 3}) EXPECT_EQ(batched[r], a1[0]) << "row " << r;
  for (size_t r : {1, 4}) EXPECT_EQ(batched[r], a2[0]) << "row " << r;
  so.temperature = 1.0;
  so.seed = 3;
  so.max_new_tokens = 16;
  const std::vector<std::vector<int>> many(8, p1);
  const auto s1 = generate::sample(m, many, so);
  EXPECT_EQ(generate::sample(m, many, so), s1);
  EXPECT_GT(std::set<std::vector<int>>(s1.begin(), s1.end()).size(), 1u);  // the copies are not one sample repeated
}

TEST(ModelNumeric, GivingUpEndsRowsAndLeavesTheOthersAsTheyWere) {
  // give_up ends a row where it says so; the rows left in the (compacted) batch decode exactly as
  // without it (greedy; batch composition does not change a row, as above).
  auto m = tiny_model(2);
  generate::SampleOptions so;
  so.temperature = 0;
  so.max_new_tokens = 12;
  std::vector<std::vector<int>> prompts;
  for (int i = 0; i < 12; ++i) prompts.push_back(std::vector<int>(static_cast<size_t>(2 + i % 5), 3 + i));
  const auto plain = generate::sample(m, prompts, so);
  // end a row after its 3rd token when that token is even (which rows: whatever the model writes)
  so.give_up = [](const std::vector<int>& ids) { return ids.size() == 3 && ids[2] % 2 == 0; };
  so.give_up_name = "third token even";
  generate::SampleStats st;
  const auto cut = generate::sample(m, prompts, so, &st);
  ASSERT_EQ(cut.size(), plain.size());
  int64_t ended = 0;
  for (size_t r = 0; r < plain.size(); ++r) {
    ASSERT_EQ(plain[r].size(), 12u);
    if (plain[r][2] % 2 == 0) {
      ++ended;
      EXPECT_EQ(cut[r], std::vector<int>(plain[r].begin(), plain[r].begin() + 3)) << "row " << r;
    } else {
      EXPECT_EQ(cut[r], plain[r]) << "row " << r;
    }
  }
  EXPECT_EQ(st.given_up, ended);
  EXPECT_GT(ended, 0);
  EXPECT_LT(ended, static_cast<int64_t>(plain.size()));
  // sampled: seeded (the same twice), and every row ends where the rule says
  so.temperature = 1.0;
  so.seed = 7;
  so.give_up = [](const std::vector<int>& ids) { return ids.back() % 3 == 0; };
  const auto a = generate::sample(m, prompts, so), b = generate::sample(m, prompts, so);
  EXPECT_EQ(a, b);
  for (const auto& row : a) {
    ASSERT_FALSE(row.empty());
    for (size_t t = 0; t + 1 < row.size(); ++t) EXPECT_NE(row[t] % 3, 0);
    if (row.size() < 12u) EXPECT_EQ(row.back() % 3, 0);
  }
  so.use_cache = false;
  EXPECT_THROW(generate::sample(m, prompts, so), subliminal::Error);
}

TEST(ModelNumeric, SamplingIsSeeded) {
  auto m = tiny_model(3);
  generate::SampleOptions so;
  so.max_new_tokens = 16;
  so.temperature = 1.0;
  std::vector<std::vector<int>> prompts(8, std::vector<int>{1, 2, 3});
  so.seed = 42;
  auto a = generate::sample(m, prompts, so);
  auto b = generate::sample(m, prompts, so);
  so.seed = 43;
  auto c = generate::sample(m, prompts, so);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  so.top_p = 0.5;
  auto d = generate::sample(m, prompts, so);
  EXPECT_EQ(d.size(), prompts.size());
}

TEST(ModelNumeric, DifferentSeedsGiveDifferentInits) {
  auto a = tiny_model(1), b = tiny_model(1), c = tiny_model(2);
  auto pa = a->named_parameters()["model.layers.0.self_attn.q_proj.weight"];
  EXPECT_TRUE(torch::equal(pa, b->named_parameters()["model.layers.0.self_attn.q_proj.weight"]));
  EXPECT_FALSE(torch::equal(pa, c->named_parameters()["model.layers.0.self_attn.q_proj.weight"]));
}

TEST(ModelNumeric, SafetensorsRoundTripIsBitExact) {
  auto dir = testutil::temp_dir("st");
  auto path = (dir / "x.safetensors").string();
  model::NamedTensors ts = {{"a", torch::randn({3, 5})},
                            {"b", torch::randn({7}).to(torch::kBFloat16)},
                            {"c", torch::arange(10, torch::kLong)},
                            {"d", torch::randn({2, 2}).to(torch::kHalf)}};
  model::write_safetensors(path, ts, {{"k", "v"}});
  auto f = model::read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (const auto& [n, t] : ts) {
    auto r = f.tensors.at(n);
    EXPECT_EQ(r.scalar_type(), t.scalar_type()) << n;
    EXPECT_TRUE(torch::equal(r, t)) << n;
  }
  EXPECT_EQ(f.metadata["k"], "v");
  std::filesystem::remove_all(dir);
}

static std::string expect_data_error(const std::string& path) {
  try {
    model::read_safetensors(path);
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ModelNumeric, DamagedSafetensorsAreRejected) {
  auto dir = testutil::temp_dir("st_bad");
  auto path = (dir / "x.safetensors").string();
  model::write_safetensors(path, {{"w", torch::randn({64, 64})}});
  std::string good = fs::read_file(path);
  auto write = [&](const std::string& s) {
    std::ofstream o(path, std::ios::binary | std::ios::trunc);
    o << s;
  };
  write(good.substr(0, good.size() - 100));  // truncated data
  std::string e = expect_data_error(path);
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("'w'"), std::string::npos) << e;
  write(good.substr(0, 6));  // shorter than the header length field
  EXPECT_NE(expect_data_error(path).find("not a safetensors"), std::string::npos);
  std::string huge = good;
  uint64_t n = 1ull << 40;
  std::memcpy(huge.data(), &n, 8);
  write(huge);  // header length beyond the file
  EXPECT_NE(expect_data_error(path).find("header length"), std::string::npos);
  std::string bad_json = good;
  bad_json[9] = '#';
  write(bad_json);
  EXPECT_NE(expect_data_error(path).find("not valid JSON"), std::string::npos);
  std::string bad_dtype = good;
  auto p = bad_dtype.find("\"F32\"");
  bad_dtype.replace(p, 5, "\"F99\"");
  write(bad_dtype);
  EXPECT_NE(expect_data_error(path).find("unsupported dtype"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(ModelNumeric, ShardedWeightsRoundTrip) {
  auto dir = testutil::temp_dir("shards");
  auto m = tiny_model(4);
  model::write_model_weights(dir.string(), model::named_weights(m), {}, 20000);
  EXPECT_TRUE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  auto w = model::read_model_weights(dir.string());
  auto m2 = tiny_model(5);
  model::load_weights(m2, w, dir.string());
  for (auto& kv : m->named_parameters()) EXPECT_TRUE(torch::equal(kv.value(), m2->named_parameters()[kv.key()])) << kv.key();
  w.erase("model.norm.weight");
  try {
    model::load_weights(m2, w, "dir");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor 'model.norm.weight'"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

static std::vector<text::Encoded> toy_data(int n, uint64_t seed) {
  // A learnable pattern: x, x+1, x+2, ... (mod 90) + 5; loss on the second half.
  std::mt19937_64 rng(seed);
  std::vector<text::Encoded> d;
  for (int i = 0; i < n; ++i) {
    text::Encoded e;
    int x = static_cast<int>(rng() % 90);
    int len = 8 + static_cast<int>(rng() % 8);
    for (int t = 0; t < len; ++t) {
      e.ids.push_back(5 + (x + t) % 90);
      e.target.push_back(t >= 2);
    }
    d.push_back(e);
  }
  return d;
}

TEST(ModelNumeric, TrainingReducesLoss) {
  at::set_num_threads(1);
  auto m = tiny_model(6);
  train::TrainOptions o;
  o.cfg.steps = 60;
  o.cfg.batch_size = 16;
  o.cfg.lr = 1e-2;
  o.cfg.warmup_steps = 5;
  o.quiet = true;
  auto r = train::train_lm(m, toy_data(256, 1), o);
  std::cout << "loss " << r.first_loss << " -> " << r.final_loss << "\n";
  EXPECT_LT(r.final_loss, 0.5 * r.first_loss);
}

// Gradient accumulation: the batch split into micro-batches gives the losses and weights of the
// whole batch (up to float summation order), for token and sequence loss weighting.
TEST(ModelNumeric, GradientAccumulationMatchesTheWholeBatch) {
  at::set_num_threads(1);
  for (const char* weighting : {"token", "sequence"}) {
    std::vector<model::LlamaForCausalLM> ms;
    std::vector<train::TrainResult> rs;
    for (int accum : {1, 4}) {
      auto m = tiny_model(12);
      train::TrainOptions o;
      o.cfg.steps = 6;
      o.cfg.batch_size = 16;
      o.cfg.grad_accum = accum;
      o.cfg.lr = 1e-2;
      o.cfg.warmup_steps = 1;
      o.cfg.optimizer = "sgd";  // SGD: the update is the gradient itself, nothing normalises a wrong scale away
      o.cfg.grad_clip = 0;
      o.cfg.loss_weighting = weighting;
      o.quiet = true;
      rs.push_back(train::train_lm(m, toy_data(64, 3), o));
      ms.push_back(m);
    }
    ASSERT_EQ(rs[0].losses.size(), rs[1].losses.size());
    for (size_t i = 0; i < rs[0].losses.size(); ++i) EXPECT_NEAR(rs[0].losses[i], rs[1].losses[i], 1e-5) << weighting << " step " << i;
    double worst = 0;
    for (auto& kv : ms[0]->named_parameters()) worst = std::max(worst, max_abs_diff(kv.value(), ms[1]->named_parameters()[kv.key()]));
    std::cout << weighting << ": max |weights, 4 micro-batches - 1 batch| after 6 SGD steps = " << worst << "\n";
    EXPECT_LT(worst, 1e-5) << weighting;
    EXPECT_GT(rs[0].losses.front() - rs[0].losses.back(), 0.0);  // it trained at all
  }
}

// Activation checkpointing recomputes each layer in the backward pass: the same loss and the same
// gradients (fp32 and bf16 autocast; LoRA dropout draws the same masks in the recomputation).
TEST(ModelNumeric, ActivationCheckpointingGivesTheSameGradients) {
  at::set_num_threads(1);
  for (bool bf16 : {false, true}) {
    auto m = tiny_model(13);
    config::LoraConfig lc;
    lc.r = 4;
    lc.dropout = 0.2;
    model::add_lora(m, lc, 3);
    {
      torch::NoGradGuard ng;  // non-zero B, so the adapters (and their dropout) shape the gradients
      for (auto& [n, t] : model::lora_tensors(m)) t.normal_(0.0, 0.05);
    }
    m->train();
    auto ids = torch::randint(0, 97, {3, 12}, torch::kLong);
    std::vector<std::map<std::string, torch::Tensor>> grads;
    std::vector<double> losses;
    for (bool ckpt : {false, true}) {
      m->checkpoint_layers = ckpt;
      for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
      for (auto& [n, t] : model::lora_tensors(m)) t.mutable_grad() = torch::Tensor(), t.set_requires_grad(true);
      torch::manual_seed(77);
      torch::Tensor loss;
      {
        model::Autocast ac(bf16);
        auto logits = m->forward_causal(ids).to(torch::kFloat);
        loss = torch::nn::functional::cross_entropy(logits.reshape({-1, 97}), ids.reshape({-1}));
      }
      // the checkpointed path really ran: its node is in the graph exactly when asked for
      bool found = false;
      std::vector<torch::autograd::Node*> stack = {loss.grad_fn().get()};
      std::set<torch::autograd::Node*> seen;
      while (!stack.empty()) {
        auto* n = stack.back();
        stack.pop_back();
        if (!n || !seen.insert(n).second) continue;
        found = found || n->name().find("Checkpointed") != std::string::npos;
        for (const auto& e : n->next_edges()) stack.push_back(e.function.get());
      }
      EXPECT_EQ(found, ckpt) << bf16;
      loss.backward();
      losses.push_back(loss.item<double>());
      std::map<std::string, torch::Tensor> g;
      for (auto& kv : m->named_parameters()) g[kv.key()] = kv.value().grad().clone();
      for (auto& [n, t] : model::lora_tensors(m)) g[n] = t.grad().clone();
      grads.push_back(g);
    }
    EXPECT_NEAR(losses[0], losses[1], 1e-6) << bf16;
    double worst = 0;
    for (auto& [n, t] : grads[0]) {
      ASSERT_TRUE(grads[1][n].defined()) << n;
      worst = std::max(worst, max_abs_diff(t, grads[1][n]));
    }
    std::cout << (bf16 ? "bf16" : "fp32") << ": max |grad checkpointed - grad stored| = " << worst << "\n";
    EXPECT_LT(worst, 1e-6) << bf16;
  }
}

TEST(ModelNumeric, ResumeReproducesRemainingLosses) {
  at::set_num_threads(1);
  auto dir = testutil::temp_dir("resume");
  auto data = toy_data(128, 2);
  train::TrainOptions o;
  o.cfg.steps = 13;
  o.cfg.batch_size = 16;  // 8 batches per epoch: the resume point (step 10) is inside epoch 2
  o.cfg.checkpoint_every = 5;
  o.cfg.warmup_steps = 2;
  o.quiet = true;
  o.seed = 9;
  o.ckpt_dir = (dir / "ck").string();
  auto full_m = tiny_model(7);
  auto full = train::train_lm(full_m, data, o);
  // Checkpoints kept: step 10 and step 13 (the two newest). Lose the final one, as if killed after step 10.
  std::filesystem::remove_all(dir / "ck" / "step_00000013");
  ASSERT_EQ(train::latest_checkpoint(o.ckpt_dir).second, 10);
  // An incomplete checkpoint (no DONE) is ignored.
  std::filesystem::create_directories(dir / "ck" / "step_00000012");
  ASSERT_EQ(train::latest_checkpoint(o.ckpt_dir).second, 10);
  o.resume = true;
  auto resumed_m = tiny_model(99);  // another init: everything must come from the checkpoint
  auto resumed = train::train_lm(resumed_m, data, o);
  EXPECT_EQ(resumed.resumed_from, 10);
  ASSERT_EQ(resumed.losses.size(), full.losses.size());
  for (size_t i = 0; i < full.losses.size(); ++i) EXPECT_DOUBLE_EQ(resumed.losses[i], full.losses[i]) << "step " << i + 1;
  for (auto& kv : full_m->named_parameters())
    EXPECT_TRUE(torch::equal(kv.value(), resumed_m->named_parameters()[kv.key()])) << kv.key();
  std::filesystem::remove_all(dir);
}

TEST(ModelNumeric, Bf16AutocastCloseToFp32) {
  torch::NoGradGuard ng;
  auto m = tiny_model(8);
  auto ids = torch::randint(0, 97, {2, 16}, torch::kLong);
  auto ref = m->forward_causal(ids);
  torch::Tensor low;
  {
    model::Autocast ac(true);
    low = m->forward_causal(ids);
  }
  EXPECT_EQ(low.scalar_type(), torch::kBFloat16);
  double d = max_abs_diff(low, ref);
  double scale = ref.abs().max().item<double>();
  std::cout << "max |bf16 - fp32| = " << d << " (max |logit| " << scale << ")\n";
  EXPECT_LT(d, 0.05 * std::max(1.0, scale));
}

TEST(ModelNumeric, TiedEmbeddingsShareOneTensor) {
  auto m = tiny_model(9, 97, true);
  auto names = m->named_parameters().keys();
  EXPECT_EQ(std::count(names.begin(), names.end(), "lm_head.weight"), 0);
  torch::NoGradGuard ng;
  auto ids = torch::randint(0, 97, {1, 4}, torch::kLong);
  auto logits = m->forward_causal(ids);
  EXPECT_EQ(logits.size(-1), 97);
}

// Golden parity against an independent reference: tests/reference/hf_llama_reference.py re-implements
// Hugging Face LlamaForCausalLM's forward (rotate-half RoPE, repeat_kv, RMSNorm) in plain PyTorch and
// reads our model directory by HF config and tensor names.
TEST(HfReferenceNumeric, LogitsMatchPythonReference) {
  if (!testutil::have_reference_torch())
    GTEST_SKIP() << testutil::reference_python() << " with torch (the same version as our LibTorch) not installed";
  for (bool tied : {false, true}) {
    auto dir = testutil::temp_dir(tied ? "hfref_tied" : "hfref");
    auto m = tiny_model(11, 97, tied);
    {
      torch::NoGradGuard ng;  // non-trivial norm weights, so a norm that ignores them would show
      for (auto& kv : m->named_parameters())
        if (kv.key().find("norm") != std::string::npos) kv.value().uniform_(0.5, 1.5);
    }
    model::write_model_weights(dir.string(), model::named_weights(m), {});
    fs::write_file_atomic(dir / "config.json", m->cfg.to_hf().dump(2));
    auto ids = torch::randint(0, 97, {2, 13}, torch::kLong);
    std::vector<std::vector<int64_t>> idv(2);
    for (int b = 0; b < 2; ++b)
      for (int t = 0; t < 13; ++t) idv[b].push_back(ids[b][t].item<int64_t>());
    fs::write_file_atomic(dir / "ids.json", nlohmann::json({{"ids", idv}}).dump());
    std::string cmd = testutil::reference_python() + " " + testutil::source_dir() + "/tests/reference/hf_llama_reference.py " + dir.string() +
                      " " + (dir / "ids.json").string() + " " + (dir / "ref.json").string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto ref = nlohmann::json::parse(fs::read_file(dir / "ref.json"))["logits"].get<std::vector<std::vector<std::vector<float>>>>();
    torch::NoGradGuard ng;
    auto ours = m->forward_causal(ids);
    double worst = 0;
    for (int b = 0; b < 2; ++b)
      for (int t = 0; t < 13; ++t)
        for (int v = 0; v < 97; ++v) worst = std::max(worst, std::abs(static_cast<double>(ref[b][t][v]) - ours[b][t][v].item<double>()));
    std::cout << (tied ? "tied" : "untied") << ": max |ours - HF reference| = " << worst << "\n";
    EXPECT_LT(worst, 1e-4);
    std::filesystem::remove_all(dir);
  }
}

// Fused q/k/v and gate/up GEMMs (issue 8) against the plain path: forward logits, every gradient
// (with LoRA adapters and q/k/v biases, GQA), the cached inference weights after an in-place
// optimizer step (no stale copy), bf16 autocast, and greedy generation.
TEST(ModelNumeric, FusedProjectionsEqualThePlainPath) {
  at::set_num_threads(1);
  auto mc = config::model_preset("tiny");
  auto cfg = model::LlamaConfig::from(mc, 97);
  cfg.qkv_bias = true;  // Qwen2-style biases: stacked too
  model::LlamaForCausalLM fused(cfg), plain(cfg);
  model::init_weights(fused, 3);
  model::init_weights(plain, 3);
  {
    torch::NoGradGuard ng;  // non-zero biases
    for (auto* m : {&fused, &plain})
      for (auto& kv : (*m)->named_parameters())
        if (kv.key().find("bias") != std::string::npos) kv.value().copy_(torch::linspace(-0.1, 0.1, kv.value().numel()));
  }
  config::LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  lc.target_modules = {"q_proj", "v_proj", "gate_proj"};
  model::add_lora(fused, lc, 1);
  model::add_lora(plain, lc, 1);
  {
    torch::NoGradGuard ng;  // B != 0 so the adapters contribute
    for (auto* m : {&fused, &plain})
      for (auto& [name, t] : model::lora_tensors(*m)) t.copy_(torch::linspace(-0.05, 0.05, t.numel()).view(t.sizes()));
  }
  ASSERT_FALSE(plain->model->layers[0]->as<model::DecoderLayer>()->self_attn->fused);  // the default
  model::set_fused_projections(fused, true);
  auto ids = torch::randint(1, 97, {3, 16}, torch::kLong);
  // training mode: logits and every gradient
  fused->train();
  plain->train();
  auto lf = fused->forward_causal(ids), lp = plain->forward_causal(ids);
  EXPECT_LT(max_abs_diff(lf, lp), 1e-5);
  lf.pow(2).mean().backward();
  lp.pow(2).mean().backward();
  auto pf = fused->named_parameters(), pp = plain->named_parameters();
  int with_grad = 0;
  for (auto& kv : pf) {
    const auto& g1 = kv.value().grad();
    const auto& g2 = pp[kv.key()].grad();
    ASSERT_EQ(g1.defined(), g2.defined()) << kv.key();
    if (!g1.defined()) continue;
    ++with_grad;
    EXPECT_LT(max_abs_diff(g1, g2), 1e-6) << kv.key();
  }
  auto lt = model::lora_tensors(fused), lt2 = model::lora_tensors(plain);
  for (size_t i = 0; i < lt.size(); ++i) EXPECT_LT(max_abs_diff(lt[i].second.grad(), lt2[i].second.grad()), 1e-6) << lt[i].first;
  EXPECT_GT(with_grad, 10);
  // inference: the cached stacked weights, then an in-place update of every weight (an optimizer
  // step): the cache must follow
  fused->eval();
  plain->eval();
  auto infer = [&](model::LlamaForCausalLM& m) {
    c10::InferenceMode im;
    return m->forward_causal(ids);
  };
  EXPECT_LT(max_abs_diff(infer(fused), infer(plain)), 1e-5);
  {
    torch::NoGradGuard ng;
    for (auto* m : {&fused, &plain})
      for (auto& kv : (*m)->named_parameters()) kv.value().add_(0.01);
  }
  EXPECT_LT(max_abs_diff(infer(fused), infer(plain)), 1e-5);
  // bf16 autocast (the cache in bf16): within bf16 rounding of the plain bf16 path
  {
    model::Autocast ac(true, false);
    const double d = max_abs_diff(infer(fused), infer(plain));
    std::cout << "bf16 |fused - plain| = " << d << "\n";
    EXPECT_LT(d, 0.05);
  }
  // LoRA training on a frozen base (every teacher and student here): the stacked weights come from
  // the cache while autograd runs; LoRA gradients equal the plain path's, fp32 and bf16 autocast
  for (auto* m : {&fused, &plain})
    for (auto& kv : (*m)->named_parameters()) kv.value().set_requires_grad(false);
  for (bool bf16 : {false, true}) {
    for (auto* m : {&fused, &plain}) {
      (*m)->train();
      for (auto& [name, t] : model::lora_tensors(*m)) t.mutable_grad() = torch::Tensor();
      model::Autocast ac(bf16, false);
      (*m)->forward_causal(ids).to(torch::kFloat).pow(2).mean().backward();
    }
    auto a = model::lora_tensors(fused), b = model::lora_tensors(plain);
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(a[i].second.grad().defined()) << a[i].first;
      const double d = max_abs_diff(a[i].second.grad(), b[i].second.grad());
      const double scale = b[i].second.grad().abs().max().item<double>();
      EXPECT_LE(d, bf16 ? 0.05 * scale + 1e-6 : 1e-6) << a[i].first << (bf16 ? " bf16" : " fp32");
    }
  }
  fused->eval();
  plain->eval();
  // greedy generation: the same tokens
  generate::SampleOptions so;
  so.max_new_tokens = 10;
  so.temperature = 0;
  so.batch_size = 4;
  std::vector<std::vector<int>> prompts = {{5, 6, 7}, {9, 10}, {11, 12, 13, 14}};
  EXPECT_EQ(generate::sample(fused, prompts, so), generate::sample(plain, prompts, so));
}
