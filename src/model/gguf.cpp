// GGUF reading and dequantisation (the ggml reference formulas), and import to a HF model directory.
#include "subliminal/model/gguf.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unordered_map>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::model {

using json = nlohmann::json;

namespace {

struct TypeInfo {
  const char* name;
  int block;      // values per block
  int bytes;      // bytes per block
  bool supported;
};
// ggml.c's type_traits (blck_size, type_size); 0 bytes: a type we know only by name.
const std::map<uint32_t, TypeInfo>& type_table() {
  static const std::map<uint32_t, TypeInfo> t = {
      {0, {"F32", 1, 4, true}},       {1, {"F16", 1, 2, true}},        {2, {"Q4_0", 32, 18, true}},
      {3, {"Q4_1", 32, 20, true}},    {4, {"Q4_2", 0, 0, false}},      {5, {"Q4_3", 0, 0, false}},
      {6, {"Q5_0", 32, 22, true}},    {7, {"Q5_1", 32, 24, true}},     {8, {"Q8_0", 32, 34, true}},
      {9, {"Q8_1", 32, 36, false}},   {10, {"Q2_K", 256, 84, false}},  {11, {"Q3_K", 256, 110, false}},
      {12, {"Q4_K", 256, 144, true}}, {13, {"Q5_K", 256, 176, true}},  {14, {"Q6_K", 256, 210, true}},
      {15, {"Q8_K", 256, 292, false}}, {16, {"IQ2_XXS", 256, 66, false}}, {17, {"IQ2_XS", 256, 74, false}},
      {18, {"IQ3_XXS", 256, 98, false}}, {19, {"IQ1_S", 256, 50, false}}, {20, {"IQ4_NL", 32, 18, false}},
      {21, {"IQ3_S", 256, 110, false}}, {22, {"IQ2_S", 256, 82, false}}, {23, {"IQ4_XS", 256, 136, false}},
      {24, {"I8", 1, 1, false}},      {25, {"I16", 1, 2, false}},      {26, {"I32", 1, 4, false}},
      {27, {"I64", 1, 8, false}},     {28, {"F64", 1, 8, true}},       {29, {"IQ1_M", 256, 56, false}},
      {30, {"BF16", 1, 2, true}},     {34, {"TQ1_0", 256, 54, false}}, {35, {"TQ2_0", 256, 66, false}},
      {39, {"MXFP4", 32, 17, false}},
  };
  return t;
}

const char* kSupported = "F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K";

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return c10::detail::fp16_ieee_to_fp32_value(h);
}

// ggml-quants.c get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K / Q5_K block.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

}  // namespace

std::string ggml_type_name(uint32_t type) {
  auto it = type_table().find(type);
  return it == type_table().end() ? "unknown type " + std::to_string(type) : it->second.name;
}

bool ggml_type_supported(uint32_t type) {
  auto it = type_table().find(type);
  return it != type_table().end() && it->second.supported;
}

uint64_t ggml_nbytes(uint32_t type, int64_t n, const std::string& where) {
  auto it = type_table().find(type);
  if (it == type_table().end() || it->second.bytes == 0)
    throw DataError(where + ": " + ggml_type_name(type) + " is not a ggml tensor type this reader knows");
  if (n % it->second.block != 0)
    throw DataError(where + ": " + std::to_string(n) + " values of " + it->second.name + " are not whole blocks of " +
                    std::to_string(it->second.block));
  return static_cast<uint64_t>(n / it->second.block) * static_cast<uint64_t>(it->second.bytes);
}

void dequantize_row(uint32_t type, const uint8_t* x, float* y, int64_t n) {
  switch (type) {
    case 0:
      std::memcpy(y, x, static_cast<size_t>(n) * 4);
      return;
    case 1:
      for (int64_t i = 0; i < n; ++i) y[i] = f16(x + 2 * i);
      return;
    case 30:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, x + 2 * i, 2);
        uint32_t u = static_cast<uint32_t>(b) << 16;
        std::memcpy(&y[i], &u, 4);
      }
      return;
    case 28:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, x + 8 * i, 8);
        y[i] = static_cast<float>(d);
      }
      return;
    case 2:  // Q4_0: d, 16 bytes of nibbles; low nibbles are values 0..15, high nibbles 16..31
      for (int64_t b = 0; b < n / 32; ++b, x += 18, y += 32) {
        const float d = f16(x);
        for (int j = 0; j < 16; ++j) {
          y[j] = (static_cast<int>(x[2 + j] & 0x0F) - 8) * d;
          y[j + 16] = (static_cast<int>(x[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case 3:  // Q4_1: d, m, nibbles: q * d + m
      for (int64_t b = 0; b < n / 32; ++b, x += 20, y += 32) {
        const float d = f16(x), m = f16(x + 2);
        for (int j = 0; j < 16; ++j) {
          y[j] = (x[4 + j] & 0x0F) * d + m;
          y[j + 16] = (x[4 + j] >> 4) * d + m;
        }
      }
      return;
    case 6:  // Q5_0: d, 32 high bits, nibbles: (q | h << 4) - 16
      for (int64_t b = 0; b < n / 32; ++b, x += 22, y += 32) {
        const float d = f16(x);
        uint32_t qh;
        std::memcpy(&qh, x + 2, 4);
        for (int j = 0; j < 16; ++j) {
          const uint8_t h0 = ((qh >> (j + 0)) << 4) & 0x10, h1 = ((qh >> (j + 12))) & 0x10;
          y[j] = (static_cast<int>((x[6 + j] & 0x0F) | h0) - 16) * d;
          y[j + 16] = (static_cast<int>((x[6 + j] >> 4) | h1) - 16) * d;
        }
      }
      return;
    case 7:  // Q5_1: d, m, 32 high bits, nibbles: (q | h << 4) * d + m
      for (int64_t b = 0; b < n / 32; ++b, x += 24, y += 32) {
        const float d = f16(x), m = f16(x + 2);
        uint32_t qh;
        std::memcpy(&qh, x + 4, 4);
        for (int j = 0; j < 16; ++j) {
          const uint8_t h0 = ((qh >> (j + 0)) << 4) & 0x10, h1 = ((qh >> (j + 12))) & 0x10;
          y[j] = ((x[8 + j] & 0x0F) | h0) * d + m;
          y[j + 16] = ((x[8 + j] >> 4) | h1) * d + m;
        }
      }
      return;
    case 8:  // Q8_0: d, 32 signed bytes
      for (int64_t b = 0; b < n / 32; ++b, x += 34, y += 32) {
        const float d = f16(x);
        for (int j = 0; j < 32; ++j) y[j] = static_cast<int8_t>(x[2 + j]) * d;
      }
      return;
    case 12:  // Q4_K: d, dmin, 12 bytes of 6-bit scales/mins for 8 sub-blocks of 32, 128 bytes of nibbles
      for (int64_t b = 0; b < n / 256; ++b, x += 144) {
        const float d = f16(x), dmin = f16(x + 2);
        const uint8_t* sc = x + 4;
        const uint8_t* q = x + 16;
        int is = 0;
        for (int j = 0; j < 256; j += 64, q += 32, is += 2) {
          uint8_t s, m;
          scale_min_k4(is, sc, s, m);
          const float d1 = d * s, m1 = dmin * m;
          scale_min_k4(is + 1, sc, s, m);
          const float d2 = d * s, m2 = dmin * m;
          for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
      }
      return;
    case 13:  // Q5_K: d, dmin, scales[12], qh[32], qs[128]
      for (int64_t b = 0; b < n / 256; ++b, x += 176) {
        const float d = f16(x), dmin = f16(x + 2);
        const uint8_t* sc = x + 4;
        const uint8_t* qh = x + 16;
        const uint8_t* ql = x + 48;
        int is = 0;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64, ql += 32, is += 2, u1 <<= 2, u2 <<= 2) {
          uint8_t s, m;
          scale_min_k4(is, sc, s, m);
          const float d1 = d * s, m1 = dmin * m;
          scale_min_k4(is + 1, sc, s, m);
          const float d2 = d * s, m2 = dmin * m;
          for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
      }
      return;
    case 14:  // Q6_K: ql[128], qh[64], int8 scales[16], d
      for (int64_t b = 0; b < n / 256; ++b, x += 210) {
        const float d = f16(x + 208);
        const uint8_t* ql = x;
        const uint8_t* qh = x + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
        for (int k = 0; k < 256; k += 128, y += 128, ql += 64, qh += 32, sc += 8) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = static_cast<int>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = static_cast<int>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
          }
        }
      }
      return;
    default:
      throw DataError("tensor type " + ggml_type_name(type) + " cannot be dequantised; supported: " + kSupported);
  }
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}


GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

namespace {

// A bounds-checked little-endian cursor over the mapping; every failure names the file and what was read.
struct Cursor {
  const uint8_t* base;
  size_t size, off = 0;
  const std::string& path;
  std::string what;  // "metadata key 'general.name'", "tensor 'blk.0.attn_q.weight'"...
  [[noreturn]] void fail(const std::string& msg) const {
    throw DataError(path + ": " + (what.empty() ? "" : what + ": ") + msg + " (at byte " + std::to_string(off) + " of " +
                    std::to_string(size) + ")");
  }
  void need(uint64_t n, const char* item) {
    if (n > size - off) fail(std::string("truncated: ") + item + " needs " + std::to_string(n) + " bytes, " + std::to_string(size - off) + " left");
  }
  template <class T>
  T get(const char* item) {
    need(sizeof(T), item);
    T v;
    std::memcpy(&v, base + off, sizeof(T));
    off += sizeof(T);
    return v;
  }
  std::string str(const char* item) {
    const uint64_t n = get<uint64_t>(item);
    if (n > (uint64_t(1) << 30)) fail(std::string(item) + " has length " + std::to_string(n) + " (corrupt: over 1 GiB)");
    need(n, item);
    std::string s(reinterpret_cast<const char*>(base + off), n);
    off += n;
    return s;
  }
};

const char* kValueTypes[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

json read_value(Cursor& c, uint32_t type, int depth) {
  switch (type) {
    case 0: return c.get<uint8_t>("a u8 value");
    case 1: return c.get<int8_t>("an i8 value");
    case 2: return c.get<uint16_t>("a u16 value");
    case 3: return c.get<int16_t>("an i16 value");
    case 4: return c.get<uint32_t>("a u32 value");
    case 5: return c.get<int32_t>("an i32 value");
    case 6: {  // as the shortest decimal that is this float (1e-05, not 9.999999747378752e-06): what a config file says
      const float v = c.get<float>("an f32 value");
      if (!std::isfinite(v)) return static_cast<double>(v);
      char buf[32];
      for (int prec = 1; prec <= 9; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(v));
        if (std::strtof(buf, nullptr) == v) break;
      }
      return std::strtod(buf, nullptr);
    }
    case 7: {
      const uint8_t b = c.get<uint8_t>("a bool value");
      if (b > 1) c.fail("a bool value is " + std::to_string(b) + " (expected 0 or 1)");
      return b == 1;
    }
    case 8: {
      std::string s = c.str("a string value");
      // JSON holds UTF-8: a string that is not is kept as its bytes escaped (tokens can be raw bytes)
      try {
        (void)json(s).dump();
      } catch (const json::exception&) {
        json arr = json::array();
        for (unsigned char ch : s) arr.push_back(ch);
        return json{{"__bytes__", arr}};
      }
      return s;
    }
    case 9: {
      if (depth > 3) c.fail("arrays nested more than 3 deep");
      const uint32_t et = c.get<uint32_t>("an array's element type");
      if (et > 12) c.fail("an array's element type is " + std::to_string(et) + " (expected 0..12)");
      const uint64_t n = c.get<uint64_t>("an array's length");
      // every element takes at least one byte (a string: 8), so a length past the rest of the file is corrupt
      const uint64_t min_bytes = et == 8 ? 8 : et == 9 ? 12 : et == 0 || et == 1 || et == 7 ? 1 : et == 2 || et == 3 ? 2 : et == 10 || et == 11 || et == 12 ? 8 : 4;
      if (n > (c.size - c.off) / min_bytes) c.fail("an array of " + std::to_string(n) + " " + kValueTypes[et] + " is longer than the rest of the file");
      json arr = json::array();
      for (uint64_t i = 0; i < n; ++i) arr.push_back(read_value(c, et, depth + 1));
      return arr;
    }
    case 10: return c.get<uint64_t>("a u64 value");
    case 11: return c.get<int64_t>("an i64 value");
    case 12: return c.get<double>("an f64 value");
    default: c.fail("value type " + std::to_string(type) + " (expected 0..12)");
  }
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.path_ = path;
  f.map_ = fs::map_file(path);
  if (f.map_->size < 24)
    throw DataError(path + ": not a GGUF file (" + std::to_string(f.map_->size) + " bytes, shorter than the 24-byte header)");
  Cursor c{f.map_->data, f.map_->size, 0, path, ""};
  if (std::memcmp(c.base, "GGUF", 4) != 0) {
    std::string got;
    for (int i = 0; i < 4; ++i) got += (c.base[i] >= 32 && c.base[i] < 127) ? static_cast<char>(c.base[i]) : '?';
    throw DataError(path + ": not a GGUF file (magic \"" + got + "\", expected \"GGUF\")");
  }
  c.off = 4;
  f.version_ = c.get<uint32_t>("the version");
  if (f.version_ != 2 && f.version_ != 3)
    throw DataError(path + ": GGUF version " + std::to_string(f.version_) + " is not supported (expected 2 or 3)",
                    f.version_ == 1 ? "re-convert it with a current llama.cpp (convert_hf_to_gguf.py)" : "");
  const uint64_t n_tensors = c.get<uint64_t>("the tensor count"), n_kv = c.get<uint64_t>("the metadata count");
  if (n_kv > c.size / 13) c.fail("metadata count " + std::to_string(n_kv) + " exceeds what the file can hold");
  if (n_tensors > c.size / 32) c.fail("tensor count " + std::to_string(n_tensors) + " exceeds what the file can hold");
  for (uint64_t i = 0; i < n_kv; ++i) {
    c.what = "metadata entry " + std::to_string(i);
    const std::string key = c.str("a key");
    c.what = "metadata key '" + key + "'";
    if (f.meta_.contains(key)) c.fail("duplicate key");
    const uint32_t type = c.get<uint32_t>("the value type");
    f.meta_[key] = read_value(c, type, 0);
  }
  c.what.clear();
  if (f.meta_.contains("general.alignment")) {
    const json& a = f.meta_["general.alignment"];
    if (!a.is_number_unsigned() || a.get<uint64_t>() == 0 || (a.get<uint64_t>() & (a.get<uint64_t>() - 1)) != 0 || a.get<uint64_t>() > 65536)
      throw DataError(path + ": metadata key 'general.alignment' is " + a.dump() + " (expected a power of two, at most 65536)");
    f.alignment_ = a.get<uint64_t>();
  }
  std::unordered_map<std::string, size_t> seen;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    c.what = "tensor " + std::to_string(i);
    GgufTensor t;
    t.name = c.str("a tensor name");
    c.what = "tensor '" + t.name + "'";
    if (seen.count(t.name)) c.fail("duplicate tensor name");
    const uint32_t nd = c.get<uint32_t>("the number of dimensions");
    if (nd == 0 || nd > 4) c.fail(std::to_string(nd) + " dimensions (expected 1..4)");
    int64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t v = c.get<uint64_t>("a dimension");
      if (v == 0 || v > (uint64_t(1) << 40) || static_cast<uint64_t>(numel) > (uint64_t(1) << 44) / v)
        c.fail("dimension " + std::to_string(d) + " is " + std::to_string(v) + " (expected 1 .. 2^40, product below 2^44)");
      t.dims.push_back(static_cast<int64_t>(v));
      numel *= static_cast<int64_t>(v);
    }
    t.type = c.get<uint32_t>("the tensor type");
    t.offset = c.get<uint64_t>("the data offset");
    try {
      t.nbytes = ggml_nbytes(t.type, numel, path + ": tensor '" + t.name + "'");
    } catch (const DataError&) {
      if (type_table().count(t.type) && type_table().at(t.type).bytes > 0 && numel % type_table().at(t.type).block != 0)
        throw DataError(path + ": tensor '" + t.name + "': " + std::to_string(numel) + " values are not whole blocks of " + ggml_type_name(t.type));
      throw DataError(path + ": tensor '" + t.name + "' has type " + ggml_type_name(t.type) + ", which this reader does not know");
    }
    if (t.offset % f.alignment_ != 0)
      c.fail("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(f.alignment_));
    seen[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }
  c.what.clear();
  f.data_offset_ = (c.off + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (n_tensors > 0 && f.data_offset_ > c.size) throw DataError(path + ": truncated: the data section would start at byte " + std::to_string(f.data_offset_) + " of " + std::to_string(c.size));
  const uint64_t data_size = c.size - std::min<uint64_t>(f.data_offset_, c.size);
  for (const auto& t : f.tensors_)
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      throw DataError(path + ": tensor '" + t.name + "': its data (" + std::to_string(t.nbytes) + " bytes at offset " + std::to_string(t.offset) +
                      ") runs past the end of the file (data section " + std::to_string(data_size) + " bytes; truncated?)");
  // overlapping data is corrupt (a reader would silently alias two tensors)
  std::vector<std::pair<uint64_t, size_t>> order;
  for (size_t i = 0; i < f.tensors_.size(); ++i) order.push_back({f.tensors_[i].offset, i});
  std::sort(order.begin(), order.end());
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& a = f.tensors_[order[i - 1].second];
    if (a.offset + a.nbytes > order[i].first)
      throw DataError(path + ": tensor '" + f.tensors_[order[i].second].name + "' overlaps the data of tensor '" + a.name + "'");
  }
  return f;
}

bool GgufFile::has_tensor(const std::string& name) const {
  return std::any_of(tensors_.begin(), tensors_.end(), [&](const GgufTensor& t) { return t.name == name; });
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  throw DataError(path_ + ": no tensor '" + name + "'");
}

const uint8_t* GgufFile::data(const GgufTensor& t) const { return map_->data + data_offset_ + t.offset; }

std::vector<float> GgufFile::dequantize(const GgufTensor& t) const {
  if (!ggml_type_supported(t.type))
    throw DataError(path_ + ": tensor '" + t.name + "' has type " + ggml_type_name(t.type) + ", which cannot be dequantised; supported: " + kSupported);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  dequantize_row(t.type, data(t), out.data(), t.numel());
  return out;
}

}  // namespace subliminal::model
