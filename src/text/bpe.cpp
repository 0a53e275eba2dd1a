// Byte-level BPE tokenizer (see bpe.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "subliminal/text/bpe.h"

#include <nlohmann/json.hpp>
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::text {

using json = nlohmann::json;

const char* BpeTokenizer::gpt2_pattern() {
  return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
}
const char* BpeTokenizer::llama3_pattern() {
  return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}
const char* BpeTokenizer::qwen2_pattern() {
  return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

namespace {

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.
std::vector<std::string> byte_to_unicode() {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<uint32_t> map(256, 0);
  for (int b : bs) map[b] = static_cast<uint32_t>(b);
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) map[b] = 256 + n++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) append_utf8(out[b], map[b]);
  return out;
}

// Splits a UTF-8 string into its characters.
std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    len = std::min(len, s.size() - i);
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace

struct BpeTokenizer::Impl {
  std::unordered_map<std::string, int> vocab;
  std::vector<std::string> id_to_piece;
  std::unordered_map<std::string, int> ranks;  // "a b" -> rank
  std::vector<BpeTokenizer::Added> added;          // longest first
  bool ignore_merges = false;
  bool adds_bos = false;                           // tokenizer.json post_processor (see post_processor_adds_bos)                      // Llama-3: a pre-token that is itself in the vocabulary is one token
  std::vector<std::string> byte_enc;               // byte -> mapped char
  std::unordered_map<std::string, uint8_t> byte_dec;
  bool nfc = false;
  pcre2_code* re = nullptr;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int>> cache;
  std::string source;
  std::string pattern;  // the pre-tokenizer regex, as read
  // HF's Digits pre-tokenizer before the regex: 0 none, 1 every digit its own pre-token
  // (individual_digits, SmolLM), 2 runs of digits
  int digits = 0;
  pcre2_code* digits_re = nullptr;
  ~Impl() {
    if (re) pcre2_code_free(re);
    if (digits_re) pcre2_code_free(digits_re);
  }

  std::vector<int> bpe(const std::string& mapped) const {
    {
      std::lock_guard<std::mutex> g(cache_mu);
      auto it = cache.find(mapped);
      if (it != cache.end()) return it->second;
    }
    if (ignore_merges) {
      auto whole = vocab.find(mapped);
      if (whole != vocab.end()) return {whole->second};
    }
    std::vector<std::string> sym = utf8_chars(mapped);
    while (sym.size() > 1) {
      int best = INT_MAX;
      size_t at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto r = ranks.find(sym[i] + " " + sym[i + 1]);
        if (r != ranks.end() && r->second < best) best = r->second, at = i;
      }
      if (best == INT_MAX) break;
      const std::string a = sym[at], b = sym[at + 1];
      std::vector<std::string> next;
      for (size_t i = 0; i < sym.size();) {
        if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
          next.push_back(a + b);
          i += 2;
        } else {
          next.push_back(sym[i++]);
        }
      }
      sym.swap(next);
    }
    std::vector<int> ids;
    for (const auto& s : sym) {
      auto v = vocab.find(s);
      if (v == vocab.end()) throw DataError(source + ": the BPE result '" + s + "' is not in the vocabulary (incomplete merges?)");
      ids.push_back(v->second);
    }
    std::lock_guard<std::mutex> g(cache_mu);
    if (cache.size() < 200000) cache[mapped] = ids;
    return ids;
  }

  void encode_plain(const std::string& raw, std::vector<int>& out) const {
    std::string text = raw;
    if (nfc && !text.empty()) {
      utf8proc_uint8_t* n = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(text.c_str()));
      if (n) {
        text = reinterpret_cast<char*>(n);
        free(n);
      }
    }
    auto emit = [&](size_t b, size_t e) {
      if (e <= b) return;
      std::string mapped;
      for (size_t i = b; i < e; ++i) mapped += byte_enc[static_cast<unsigned char>(text[i])];
      auto ids = bpe(mapped);
      out.insert(out.end(), ids.begin(), ids.end());
    };
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
    if (!digits_re) {
      split_isolated(re, md, text, 0, text.size(), emit);
    } else {  // HF applies a Sequence step by step: the Digits split first, then the byte-level regex on each piece
      pcre2_match_data* dmd = pcre2_match_data_create_from_pattern(digits_re, nullptr);
      split_isolated(digits_re, dmd, text, 0, text.size(), [&](size_t b, size_t e) { split_isolated(re, md, text, b, e, emit); });
      pcre2_match_data_free(dmd);
    }
    pcre2_match_data_free(md);
  }

  // HF Split with behavior "Isolated" on text[begin, end) (matched as a subject of its own, so the
  // regex sees the piece's end as the end of the text): every match and every gap is its own piece.
  template <class F>
  static void split_isolated(const pcre2_code* rx, pcre2_match_data* md, const std::string& text, size_t begin, size_t end, F&& piece) {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + begin);
    const size_t n = end - begin;
    size_t off = 0;
    while (off < n) {
      int rc = pcre2_match(rx, subject, n, off, 0, md, nullptr);
      if (rc < 0) {  // no further match: the rest is one piece
        piece(begin + off, end);
        break;
      }
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t m0 = ov[0], m1 = ov[1];
      if (m0 > off) piece(begin + off, begin + m0);
      if (m1 == m0) {  // empty match: step one character
        const auto ch = utf8_chars(text.substr(begin + m0, std::min<size_t>(4, n - m0)));
        const size_t step = ch.empty() ? 1 : ch[0].size();
        piece(begin + m0, begin + m0 + step);
        off = m0 + step;
        continue;
      }
      piece(begin + m0, begin + m1);
      off = m1;
    }
  }
};

BpeTokenizer::BpeTokenizer() : impl_(std::make_unique<Impl>()) {
  impl_->byte_enc = byte_to_unicode();
  for (int b = 0; b < 256; ++b) impl_->byte_dec[impl_->byte_enc[b]] = static_cast<uint8_t>(b);
}
BpeTokenizer::~BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;

void BpeTokenizer::init_regex(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE eoff = 0;
  impl_->re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff,
                            nullptr);
  if (!impl_->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw DataError(impl_->source + ": the pre-tokenizer regex does not compile at offset " + std::to_string(eoff) + ": " +
                    reinterpret_cast<char*>(msg));
  }
  pcre2_jit_compile(impl_->re, PCRE2_JIT_COMPLETE);  // optional speed-up; ignored where unsupported
  if (impl_->digits != 0) {  // HF Digits: char::is_numeric, i.e. Unicode's \p{N}
    impl_->digits_re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(impl_->digits == 1 ? "\\p{N}" : "\\p{N}+"), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP, &err, &eoff, nullptr);
    pcre2_jit_compile(impl_->digits_re, PCRE2_JIT_COMPLETE);
  }
}

std::string BpeTokenizer::byte_level(const std::string& raw) {
  static const std::vector<std::string> enc = byte_to_unicode();
  std::string out;
  for (unsigned char c : raw) out += enc[c];
  return out;
}

// A token id read from a file: an integer in 0 .. 2^24-1 (16.7M, far above any real vocabulary:
// Gemma's is 262k). A float or an out-of-range number is refused before it is narrowed to int.
static int read_token_id(const json& v, const std::string& path, const std::string& piece) {
  constexpr int64_t kMaxId = 1 << 24;
  const int64_t id = v.is_number_integer() ? v.get<int64_t>() : -1;
  if (!v.is_number_integer() || id < 0 || id >= kMaxId)
    throw DataError(path + ": token " + json(piece).dump(-1, ' ', false, json::error_handler_t::replace) + " has id " + v.dump() +
                    "; expected an integer 0 .. " + std::to_string(kMaxId - 1));
  return static_cast<int>(id);
}

static void finish(BpeTokenizer::Impl& im) {
  int n = 0;
  for (const auto& [s, id] : im.vocab) n = std::max(n, id + 1);
  for (const auto& a : im.added) n = std::max(n, a.id + 1);
  im.id_to_piece.assign(static_cast<size_t>(n), "");
  for (const auto& [s, id] : im.vocab) im.id_to_piece[id] = s;
  for (const auto& a : im.added) im.id_to_piece[a.id] = a.content;
  std::stable_sort(im.added.begin(), im.added.end(), [](const auto& a, const auto& b) { return a.content.size() > b.content.size(); });
}

// The fields of a parsed tokenizer.json into `im` (a json::exception: a field of the wrong type).
static void read_tokenizer_json(const json& j, const std::string& path, const std::map<std::string, int>& extra_added,
                                BpeTokenizer::Impl& im);

BpeTokenizer BpeTokenizer::from_tokenizer_json(const std::string& path, const std::map<std::string, int>& extra_added) {
  json j;
  try {
    j = json::parse(fs::read_file(path));
  } catch (const json::exception& e) {
    throw DataError(path + ": not valid JSON (" + e.what() + ")");
  }
  BpeTokenizer t;
  auto& im = *t.impl_;
  im.source = path;
  try {
    read_tokenizer_json(j, path, extra_added, im);
  } catch (const json::exception& e) {  // a field of the wrong type or shape
    throw DataError(path + ": unexpected tokenizer.json structure: " + e.what(), "is it a Hugging Face tokenizers file (tokenizer.json)?");
  }
  t.init_regex(im.pattern);
  finish(im);
  return t;
}

static void read_tokenizer_json(const json& j, const std::string& path, const std::map<std::string, int>& extra_added,
                                BpeTokenizer::Impl& im) {
  if (!j.is_object()) throw DataError(path + ": expected a JSON object (a Hugging Face tokenizer.json)");
  const json& m = j.value("model", json::object());
  if (m.value("type", std::string()) != "BPE")
    throw DataError(path + ": field \"model.type\" is " + m.value("type", json("missing")).dump() + "; only \"BPE\" is supported here");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw DataError(path + ": field \"model.vocab\" must be an object");
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) im.vocab[it.key()] = read_token_id(it.value(), path, it.key());
  int rank = 0;
  for (const auto& e : m.value("merges", json::array())) {
    if (e.is_string()) im.ranks[e.get<std::string>()] = rank++;
    else if (e.is_array() && e.size() == 2) im.ranks[e[0].get<std::string>() + " " + e[1].get<std::string>()] = rank++;
    else throw DataError(path + ": field \"model.merges\" holds an entry that is neither \"a b\" nor [a, b]");
  }
  im.ignore_merges = m.value("ignore_merges", false);
  {
    std::vector<json> procs;
    const json& pp = j.contains("post_processor") ? j["post_processor"] : json(nullptr);
    if (pp.is_object() && pp.value("type", "") == "Sequence") procs = pp.value("processors", std::vector<json>{});
    else if (pp.is_object()) procs.push_back(pp);
    for (const auto& p : procs)
      if (p.value("type", "") == "TemplateProcessing" && p.contains("single") && p["single"].is_array() && !p["single"].empty() &&
          p["single"][0].contains("SpecialToken"))
        im.adds_bos = true;
  }
  for (const auto& a : j.value("added_tokens", json::array()))
    im.added.push_back({a.at("content").get<std::string>(), read_token_id(a.at("id"), path, a.at("content").get<std::string>()), a.value("special", true)});
  for (const auto& extra : extra_added) {
    const std::string& content = extra.first;  // (a structured binding cannot be captured before C++20)
    if (std::none_of(im.added.begin(), im.added.end(), [&](const BpeTokenizer::Added& a) { return a.content == content; }) && !im.vocab.count(content))
      im.added.push_back({content, extra.second, true});
  }
  // normalizer: null, NFC, or a Sequence of NFC
  const json& norm = j.contains("normalizer") ? j["normalizer"] : json(nullptr);
  if (!norm.is_null()) {
    std::vector<json> ns = norm.value("type", std::string()) == "Sequence" ? norm.at("normalizers").get<std::vector<json>>() : std::vector<json>{norm};
    for (const auto& n : ns) {
      if (n.value("type", std::string()) == "NFC") im.nfc = true;
      else throw DataError(path + ": field \"normalizer\" has type " + n.value("type", json("?")).dump() + "; supported: null, NFC");
    }
  }
  // pre-tokenizer: ByteLevel(use_regex) or Sequence[Split(Regex), ByteLevel(use_regex false)]
  const json& pre = j.value("pre_tokenizer", json(nullptr));
  std::string pattern;
  bool byte_level = false;
  std::vector<json> ps = pre.is_object() && pre.value("type", std::string()) == "Sequence" ? pre.at("pretokenizers").get<std::vector<json>>()
                         : pre.is_object()                                                    ? std::vector<json>{pre}
                                                                                              : std::vector<json>{};
  for (const auto& p : ps) {
    const std::string type = p.value("type", std::string());
    if (type == "ByteLevel") {
      byte_level = true;
      if (p.value("add_prefix_space", false))
        throw DataError(path + ": field \"pre_tokenizer.add_prefix_space\" true is not supported");
      if (p.value("use_regex", true) && pattern.empty()) pattern = BpeTokenizer::gpt2_pattern();
    } else if (type == "Split" && p.contains("pattern") && p["pattern"].contains("Regex")) {
      pattern = p["pattern"]["Regex"].get<std::string>();
    } else if (type == "Digits" && !byte_level && pattern.empty()) {
      im.digits = p.value("individual_digits", false) ? 1 : 2;
    } else {
      throw DataError(path + ": field \"pre_tokenizer\" has a " + json(type).dump() +
                      (type == "Digits" ? " step after another step" : " step") +
                      "; supported: ByteLevel, Split with a Regex pattern, Digits before them");
    }
  }
  if (!byte_level) throw DataError(path + ": field \"pre_tokenizer\" is not byte-level (no ByteLevel step)");
  im.pattern = pattern.empty() ? BpeTokenizer::gpt2_pattern() : pattern;
}

BpeTokenizer BpeTokenizer::from_vocab_merges(const std::string& dir, const std::string& style, const std::map<std::string, int>& extra) {
  namespace sfs = std::filesystem;
  BpeTokenizer t;
  auto& im = *t.impl_;
  im.source = dir;
  if (style != "gpt2" && style != "qwen2") throw ConfigError("byte-level BPE style \"" + style + "\": expected gpt2 or qwen2");
  const auto vpath = sfs::path(dir) / "vocab.json", mpath = sfs::path(dir) / "merges.txt";
  json v;
  try {
    v = json::parse(fs::read_file(vpath));
  } catch (const json::exception& e) {
    throw DataError(vpath.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!v.is_object()) throw DataError(vpath.string() + ": expected an object of token -> id");
  for (auto it = v.begin(); it != v.end(); ++it) im.vocab[it.key()] = read_token_id(it.value(), vpath.string(), it.key());
  std::istringstream ms(fs::read_file(mpath));
  std::string line;
  int rank = 0, lineno = 0;
  while (std::getline(ms, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    if (std::count(line.begin(), line.end(), ' ') != 1)
      throw DataError(mpath.string() + ":" + std::to_string(lineno) + ": expected two symbols separated by one space");
    im.ranks[line] = rank++;
  }
  const auto tc = sfs::path(dir) / "tokenizer_config.json";
  if (sfs::exists(tc)) {
    json c;
    try {
      c = json::parse(fs::read_file(tc));
    } catch (const json::exception& e) {
      throw DataError(tc.string() + ": not valid JSON (" + e.what() + ")");
    }
    for (auto& a : added_tokens_decoder(c, tc.string())) im.added.push_back(std::move(a));
  }
  for (const auto& [s, id] : extra) im.added.push_back({s, id, true});
  im.nfc = style == "qwen2";
  t.init_regex(style == "qwen2" ? qwen2_pattern() : gpt2_pattern());
  finish(im);
  return t;
}

std::vector<BpeTokenizer::Added> BpeTokenizer::added_tokens_decoder(const json& config, const std::string& path) {
  std::vector<Added> out;
  if (!config.is_object() || !config.contains("added_tokens_decoder")) return out;
  const json& d = config.at("added_tokens_decoder");
  if (!d.is_object()) throw DataError(path + ": added_tokens_decoder must be an object {\"<id>\": {\"content\": ...}}");
  for (auto it = d.begin(); it != d.end(); ++it) {
    const json& v = it.value();  // {"content": "<x>", "special": true, ...}, or just "<x>"
    const json& c = v.is_object() && v.contains("content") ? v.at("content") : v;
    if (!c.is_string()) throw DataError(path + ": added_tokens_decoder entry \"" + it.key() + "\" has no string \"content\"");
    const std::string& k = it.key();
    const bool digits = !k.empty() && k.size() <= 9 && std::all_of(k.begin(), k.end(), ::isdigit);
    const json special = v.is_object() ? v.value("special", json(true)) : json(true);
    out.push_back({c.get<std::string>(), read_token_id(digits ? json(std::stoll(k)) : json(k), path, c.get<std::string>()),
                   !special.is_boolean() || special.get<bool>()});
  }
  return out;
}

std::vector<int> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int> out;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    bool hit = false;
    for (const auto& a : impl_->added) {
      if (!a.content.empty() && text.compare(i, a.content.size(), a.content) == 0) {
        impl_->encode_plain(text.substr(start, i - start), out);
        out.push_back(a.id);
        i += a.content.size();
        start = i;
        hit = true;
        break;
      }
    }
    if (!hit) ++i;
  }
  impl_->encode_plain(text.substr(start), out);
  return out;
}

std::vector<int> BpeTokenizer::encode_plain(const std::string& text) const {
  std::vector<int> out;
  impl_->encode_plain(text, out);
  return out;
}

const std::vector<BpeTokenizer::Added>& BpeTokenizer::added_tokens() const { return impl_->added; }
bool BpeTokenizer::post_processor_adds_bos() const { return impl_->adds_bos; }

std::string BpeTokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids) {
    if (id < 0 || id >= vocab_size()) throw DataError("token id " + std::to_string(id) + " is outside the vocabulary");
    const std::string& p = impl_->id_to_piece[id];
    bool added = std::any_of(impl_->added.begin(), impl_->added.end(), [&](const auto& a) { return a.id == id; });
    if (added) {
      out += p;
      continue;
    }
    for (const auto& ch : utf8_chars(p)) {
      auto it = impl_->byte_dec.find(ch);
      out += it == impl_->byte_dec.end() ? ch : std::string(1, static_cast<char>(it->second));
    }
  }
  return out;
}

std::string BpeTokenizer::piece(int id) const {
  if (id < 0 || id >= vocab_size()) throw DataError("token id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->id_to_piece[id];
}
int BpeTokenizer::vocab_size() const { return static_cast<int>(impl_->id_to_piece.size()); }
int BpeTokenizer::token_id(const std::string& piece) const {
  auto it = impl_->vocab.find(piece);
  if (it != impl_->vocab.end()) return it->second;
  for (const auto& a : impl_->added)
    if (a.content == piece) return a.id;
  return -1;
}

}  // namespace subliminal::text
