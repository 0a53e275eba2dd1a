// The local checkpoint judge: the rubric's prompt in the model's chat format, then the probability of
// each valid answer ("0"/"1", or "0".."100") read from the model by teacher forcing — the whole
// answer followed by the end of turn, so "10" and "100" are told apart whatever the tokenizer does
// with digits. The verdict aggregates them as the paper aggregates its judges' logprobs.
#include <torch/torch.h>

#include "subliminal/text/chat_template.h"
#include "subliminal/judge/judge.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/util/error.h"
#include "subliminal/util/log.h"

namespace subliminal::judge {

namespace {

class ModelJudge final : public Judge {
 public:
  explicit ModelJudge(const JudgeOptions& o) : o_(o), lm_(load(o)) {
    device_ = model::resolve_device(o.device);
    lm_.model->to(device_);
    lm_.model->eval();
    chat_ = std::make_unique<text::ChatTemplate>(lm_.tokenizer, "auto");
  }
  std::string describe() const override { return "model " + o_.path; }
  static model::LoadedModel load(const JudgeOptions& o) {
    if (o.path.empty()) throw ConfigError("$.judge.path: the model judge needs a model directory");
    return model::load_model_dir(o.path);
  }

  std::vector<Verdict> judge(const std::vector<Query>& qs) override {
    std::vector<Verdict> out;
    out.reserve(qs.size());
    for (const auto& q : qs) out.push_back(one(q));
    return out;
  }

 private:
  // The answer's tokens as the chat format trains them (answer + end of turn).
  std::vector<int> answer_ids(const std::string& user, const std::vector<int>& prompt, const std::string& answer) const {
    const auto enc = chat_->encode({{"user", user}, {"assistant", answer}});
    if (enc.ids.size() < prompt.size() || !std::equal(prompt.begin(), prompt.end(), enc.ids.begin()))
      throw Error("model judge: the chat prompt is not a prefix of the answer's encoding (" + chat_->name() + ")");
    size_t last = prompt.size();
    for (size_t i = prompt.size(); i < enc.ids.size(); ++i)
      if (enc.target[i]) last = i + 1;
    return std::vector<int>(enc.ids.begin() + static_cast<long>(prompt.size()), enc.ids.begin() + static_cast<long>(last));
  }

  Verdict one(const Query& q) {
    const Scale scale = rubric_scale(q.rubric);
    const std::string user = render_prompt(q, o_.data_dir);
    const std::vector<int> prompt = chat_->prompt(user);
    std::vector<std::string> answers;
    for (int n = 0; n <= (scale == Scale::binary ? 1 : 100); ++n) answers.push_back(std::to_string(n));
    std::vector<std::vector<int>> conts;
    int64_t T = 0;
    for (const auto& a : answers) {
      conts.push_back(answer_ids(user, prompt, a));
      T = std::max<int64_t>(T, static_cast<int64_t>(prompt.size() + conts.back().size()));
    }
    if (T > lm_.model->cfg.max_position_embeddings) {
      Verdict v;
      v.error = "too long: the judge prompt has " + std::to_string(prompt.size()) + " tokens, the model's context is " +
                std::to_string(lm_.model->cfg.max_position_embeddings);
      return v;
    }
    torch::NoGradGuard ng;
    model::Autocast ac(o_.bf16, device_.is_cuda());
    std::map<std::string, double> probs;
    const size_t chunk = 64;
    for (size_t s = 0; s < answers.size(); s += chunk) {
      const size_t e = std::min(answers.size(), s + chunk);
      const int64_t B = static_cast<int64_t>(e - s);
      auto ids = torch::full({B, T}, static_cast<int64_t>(lm_.tokenizer.pad_id()), torch::kLong);
      auto acc = ids.accessor<int64_t, 2>();
      for (size_t i = s; i < e; ++i) {
        size_t t = 0;
        for (int x : prompt) acc[static_cast<int64_t>(i - s)][static_cast<int64_t>(t++)] = x;
        for (int x : conts[i]) acc[static_cast<int64_t>(i - s)][static_cast<int64_t>(t++)] = x;
      }
      auto logp = torch::log_softmax(lm_.model->forward_causal(ids.to(device_)).to(torch::kFloat), -1).cpu();
      auto lp = logp.accessor<float, 3>();
      for (size_t i = s; i < e; ++i) {
        double sum = 0;
        const int64_t P = static_cast<int64_t>(prompt.size());
        for (size_t k = 0; k < conts[i].size(); ++k) sum += lp[static_cast<int64_t>(i - s)][P - 1 + static_cast<int64_t>(k)][conts[i][k]];
        probs[answers[i]] = std::exp(sum);
      }
    }
    Verdict v = aggregate(scale, probs, o_.min_mass);
    auto best = std::max_element(probs.begin(), probs.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    v.raw = best->first;
    v.attempts = 1;
    return v;
  }

  JudgeOptions o_;
  model::LoadedModel lm_;
  c10::Device device_{torch::kCPU};
  std::unique_ptr<text::ChatTemplate> chat_;
};

}  // namespace

std::unique_ptr<Judge> make_model_judge(const JudgeOptions& o) { return std::make_unique<ModelJudge>(o); }

}  // namespace subliminal::judge
