// libsubliminal_spm.so: the only code that links sentencepiece (see include/subliminal/text/spm_api.h).
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "subliminal/text/spm_api.h"

namespace {

using sentencepiece::SentencePieceProcessor;

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

void* load(const std::string& proto, std::string* err) {
  auto* sp = new SentencePieceProcessor();
  auto st = sp->LoadFromSerializedProto(proto);
  if (!st.ok()) {
    *err = st.ToString();
    delete sp;
    return nullptr;
  }
  return sp;
}
void destroy(void* h) { delete static_cast<SentencePieceProcessor*>(h); }
bool encode(void* h, const std::string& text, std::vector<int>* ids, std::string* err) {
  auto st = static_cast<SentencePieceProcessor*>(h)->Encode(text, ids);
  if (!st.ok()) *err = st.ToString();
  return st.ok();
}
bool decode(void* h, const std::vector<int>& ids, std::string* out, std::string* err) {
  auto st = static_cast<SentencePieceProcessor*>(h)->Decode(ids, out);
  if (!st.ok()) *err = st.ToString();
  return st.ok();
}
int piece_size(void* h) { return static_cast<SentencePieceProcessor*>(h)->GetPieceSize(); }
std::string id_to_piece(void* h, int id) { return static_cast<SentencePieceProcessor*>(h)->IdToPiece(id); }
int piece_to_id(void* h, const std::string& p) { return static_cast<SentencePieceProcessor*>(h)->PieceToId(p); }
int special_id(void* h, int which) {
  auto* sp = static_cast<SentencePieceProcessor*>(h);
  switch (which) {
    case 0: return sp->pad_id();
    case 1: return sp->unk_id();
    case 2: return sp->bos_id();
    default: return sp->eos_id();
  }
}
int piece_type(void* h, int id) {
  auto* sp = static_cast<SentencePieceProcessor*>(h);
  if (id < 0 || id >= sp->GetPieceSize()) return 1;
  if (sp->IsUnknown(id)) return 1;
  if (sp->IsControl(id)) return 2;
  if (sp->IsByte(id)) return 4;
  if (sp->IsUnused(id)) return 5;
  return 0;
}
bool train(const std::unordered_map<std::string, std::string>& kwargs, const std::vector<std::string>& texts,
           std::string* proto, std::string* err) {
  sentencepiece::SetRandomGeneratorSeed(1);
  VectorIterator it(texts);
  // The trainer logs hundreds of LOG(INFO) lines to stderr whatever minloglevel says; silence fd 2
  // while it runs (errors come back through the returned status).
  fflush(stderr);
  int saved = dup(2);
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) { dup2(devnull, 2); close(devnull); }
  auto st = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, proto);
  fflush(stderr);
  if (saved >= 0) { dup2(saved, 2); close(saved); }
  if (!st.ok()) *err = st.ToString();
  return st.ok();
}

const subliminal::text::SpmApi kApi = {subliminal::text::kSpmApiVersion, load, destroy, encode, decode, piece_size,
                                       id_to_piece, piece_to_id, special_id, piece_type, train};

}  // namespace

extern "C" __attribute__((visibility("default"))) const subliminal::text::SpmApi* subliminal_spm_api() { return &kApi; }
