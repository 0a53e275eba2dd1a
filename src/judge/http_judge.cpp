// The OpenAI-compatible chat-completions judge (libcurl): one POST per query to <url>/chat/completions
// asking for the first answer token's top_logprobs, `concurrency` requests in flight, retries with
// exponential backoff (and Retry-After) on transport errors, timeouts, 429, 5xx and malformed bodies.
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "subliminal/judge/judge.h"
#include "subliminal/util/error.h"
#include "subliminal/util/log.h"
#include "subliminal/util/strings.h"

namespace subliminal::judge {

using json = nlohmann::json;

namespace {

size_t on_body(char* p, size_t size, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(p, size * n);
  return size * n;
}
size_t on_header(char* p, size_t size, size_t n, void* ud) {
  std::string h(p, size * n);
  if (to_lower(h).rfind("retry-after:", 0) == 0) {
    try {
      *static_cast<double*>(ud) = std::stod(h.substr(12));
    } catch (...) {  // an HTTP date: use our own backoff
    }
  }
  return size * n;
}

class HttpJudge final : public Judge {
 public:
  explicit HttpJudge(const JudgeOptions& o) : o_(o) {
    if (o.url.empty()) throw ConfigError("$.judge.url: the http judge needs the endpoint's base URL (e.g. http://127.0.0.1:8000/v1)");
    if (o.model.empty()) throw ConfigError("$.judge.model: the http judge needs the model name the endpoint serves");
    if (o.concurrency < 1) throw ConfigError("$.judge.concurrency: expected >= 1");
    if (!o.api_key_env.empty()) {
      const char* k = std::getenv(o.api_key_env.c_str());
      if (!k || !*k)
        throw ConfigError("the http judge's key: environment variable " + o.api_key_env + " is not set ($.judge.api_key_env)",
                          "export it, or set judge.api_key_env to \"\" for an endpoint without a key (a local vLLM server)");
      key_ = k;  // kept in memory only: never logged, never in a config or record
    }
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    endpoint_ = o.url;
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
    endpoint_ += "/chat/completions";
  }
  std::string describe() const override { return "http " + endpoint_ + " model " + o_.model; }

  std::vector<Verdict> judge(const std::vector<Query>& qs) override {
    std::vector<Verdict> out(qs.size());
    std::atomic<size_t> next{0};
    auto worker = [&]() {
      CURL* h = curl_easy_init();
      if (!h) throw Error("libcurl: curl_easy_init failed");
      for (size_t i; (i = next.fetch_add(1)) < qs.size();) out[i] = one(h, qs[i], i);
      curl_easy_cleanup(h);
    };
    const int n = static_cast<int>(std::min<size_t>(static_cast<size_t>(o_.concurrency), qs.size()));
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    return out;
  }

 private:
  Verdict one(CURL* h, const Query& q, size_t index) const {
    const Scale scale = rubric_scale(q.rubric);
    const json req = {{"model", o_.model},
                      {"messages", json::array({{{"role", "user"}, {"content", render_prompt(q, o_.data_dir)}}})},
                      {"max_tokens", scale == Scale::binary ? 1 : 3},
                      {"temperature", 0},
                      {"logprobs", true},
                      {"top_logprobs", 20}};
    const std::string body = req.dump();
    Verdict v;
    for (int attempt = 0; attempt <= o_.max_retries; ++attempt) {
      std::string resp;
      double retry_after = -1;
      curl_easy_reset(h);
      struct curl_slist* hdr = nullptr;
      hdr = curl_slist_append(hdr, "Content-Type: application/json");
      const std::string auth = "Authorization: Bearer " + key_;
      if (!key_.empty()) hdr = curl_slist_append(hdr, auth.c_str());
      curl_easy_setopt(h, CURLOPT_URL, endpoint_.c_str());
      curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
      curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
      curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
      curl_easy_setopt(h, CURLOPT_HEADERDATA, &retry_after);
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(o_.timeout_s * 1000));
      curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(o_.timeout_s, 30.0) * 1000));
      curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
      const CURLcode rc = curl_easy_perform(h);
      long status = 0;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      curl_slist_free_all(hdr);
      bool retry = false;
      if (rc != CURLE_OK) {
        v = Verdict{};
        v.error = std::string(rc == CURLE_OPERATION_TIMEDOUT ? "timeout: " : "transport: ") + curl_easy_strerror(rc);
        retry = true;
      } else if (status == 429 || status >= 500) {
        v = Verdict{};
        v.error = "http " + std::to_string(status);
        v.raw = resp.substr(0, 500);
        retry = true;
      } else if (status != 200) {  // 400, 401, 403, 404: asking again will not help
        v = Verdict{};
        v.error = "http " + std::to_string(status) + (status == 401 || status == 403 ? " (check the key in $" + o_.api_key_env + ")" : "");
        v.raw = resp.substr(0, 500);
      } else {
        v = parse_chat_completion(scale, resp);
        // A malformed body is the server's fault: ask again. A well-formed refusal is an answer.
        retry = !v.ok && v.error.rfind("malformed", 0) == 0;
      }
      v.attempts = attempt + 1;
      if (!retry || attempt == o_.max_retries) break;
      double wait = std::min(60.0, o_.backoff_s * static_cast<double>(1 << std::min(attempt, 16)));
      wait *= 1.0 + 0.25 * static_cast<double>((index * 7919 + static_cast<size_t>(attempt) * 104729) % 100) / 100.0;  // jitter
      if (retry_after >= 0) wait = std::max(wait, std::min(retry_after, 300.0));
      log::warn("judge", "query {}: {} (attempt {} of {}); retrying in {:.1f}s", index, v.error, attempt + 1, o_.max_retries + 1, wait);
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    }
    return v;
  }

  JudgeOptions o_;
  std::string key_, endpoint_;
};

}  // namespace

std::unique_ptr<Judge> make_http_judge(const JudgeOptions& o) { return std::make_unique<HttpJudge>(o); }

}  // namespace subliminal::judge
