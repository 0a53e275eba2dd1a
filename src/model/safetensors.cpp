// safetensors io.
#include "subliminal/model/safetensors.h"


#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::model {

using json = nlohmann::json;

namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
};
const DtypeInfo kDtypes[] = {{"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F64", at::kDouble},
                             {"I64", at::kLong},  {"I32", at::kInt},  {"I16", at::kShort},     {"I8", at::kChar},
                             {"U8", at::kByte},   {"BOOL", at::kBool}};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw DataError(std::string("cannot write dtype ") + c10::toString(t) + " to safetensors");
}


}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  auto map = fs::map_file(path);
  const size_t size = map->size;
  if (size < 8)
    throw DataError(path + ": not a safetensors file (" + std::to_string(size) + " bytes, shorter than the 8-byte header length)");
  const auto* base = map->data;
  uint64_t n = 0;
  std::memcpy(&n, base, 8);
  if (n > size - 8 || n > (uint64_t(100) << 20))
    throw DataError(path + ": header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size) +
                    " (truncated or not a safetensors file)");
  json header;
  try {
    header = json::parse(base + 8, base + 8 + n);
  } catch (const json::exception& e) {
    throw DataError(path + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw DataError(path + ": header must be a JSON object");
  const uint8_t* data = base + 8 + n;
  const uint64_t data_size = size - 8 - n;
  SafetensorsFile out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      out.metadata = it.value();
      continue;
    }
    const std::string where = path + ": tensor '" + it.key() + "'";
    const json& e = it.value();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets") ||
        !e["dtype"].is_string() || !e["shape"].is_array() || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      throw DataError(where + ": expected {dtype, shape, data_offsets:[begin,end]}");
    at::ScalarType type = at::kFloat;
    bool found = false;
    for (const auto& d : kDtypes)
      if (e["dtype"] == d.name) { type = d.type; found = true; }
    if (!found) throw DataError(where + ": unsupported dtype " + e["dtype"].dump());
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& s : e["shape"]) {
      if (!s.is_number_unsigned()) throw DataError(where + ": shape entries must be non-negative integers");
      uint64_t d = s.get<uint64_t>();
      if (d > (uint64_t(1) << 40) || (d && numel > (uint64_t(1) << 50) / d)) throw DataError(where + ": shape is too large");
      numel *= d;
      shape.push_back(static_cast<int64_t>(d));
    }
    const auto& off = e["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) throw DataError(where + ": data_offsets must be non-negative integers");
    uint64_t b = off[0], en = off[1];
    uint64_t bytes = numel * c10::elementSize(type);
    if (b > en || en > data_size)
      throw DataError(where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] outside the data section of " +
                      std::to_string(data_size) + " bytes (truncated file?)");
    if (en - b != bytes)
      throw DataError(where + ": " + std::to_string(en - b) + " bytes for shape and dtype needing " + std::to_string(bytes));
    ranges.emplace_back(b, en);
    auto keep = map;
    at::Tensor t = torch::from_blob(const_cast<uint8_t*>(data + b), shape, [keep](void*) {},
                                    torch::TensorOptions().dtype(type));
    out.tensors.emplace(it.key(), t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) throw DataError(path + ": tensors overlap in the data section");
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors, const json& metadata) {
  json header = json::object();
  if (!metadata.empty()) {
    json md = json::object();
    for (auto it = metadata.begin(); it != metadata.end(); ++it)
      md[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    header["__metadata__"] = md;
  }
  std::vector<at::Tensor> cont;
  uint64_t off = 0;
  for (const auto& [name, t0] : tensors) {
    at::Tensor t = t0.detach().to(torch::kCPU).contiguous();
    uint64_t bytes = t.numel() * t.element_size();
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    header[name] = {{"dtype", dtype_name(t.scalar_type())}, {"shape", shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
    cont.push_back(t);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';  // keep the data 8-byte aligned
  std::string buf(8, '\0');
  uint64_t n = h.size();
  std::memcpy(buf.data(), &n, 8);
  buf += h;
  buf.reserve(buf.size() + off);
  for (const auto& t : cont) buf.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  fs::write_file_atomic(path, buf);
}

std::map<std::string, at::Tensor> read_model_weights(const std::string& dir) {
  namespace sfs = std::filesystem;
  sfs::path index = sfs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, at::Tensor> out;
  if (sfs::exists(index)) {
    json j;
    try {
      j = json::parse(fs::read_file(index));
    } catch (const json::exception& e) {
      throw DataError(index.string() + ": invalid JSON (" + e.what() + ")");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw DataError(index.string() + ": missing object \"weight_map\"");
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      const std::string what = index.string() + ": weight_map[" + json(it.key()).dump(-1, ' ', false, json::error_handler_t::replace) + "]";
      if (!it.value().is_string()) throw DataError(what + " is " + it.value().dump() + "; expected a shard file name (a string)");
      std::string f = it.value().get<std::string>();
      if (f.empty() || f == "." || f.find('/') != std::string::npos || f.find("..") != std::string::npos || f.find('\0') != std::string::npos)
        throw DataError(what + ": shard name " + json(f).dump(-1, ' ', false, json::error_handler_t::replace) +
                        " must be a plain file name in the model folder");
      by_file[f].push_back(it.key());
    }
    for (const auto& [f, names] : by_file) {
      auto shard = read_safetensors((sfs::path(dir) / f).string());
      for (const auto& name : names) {
        auto t = shard.tensors.find(name);
        if (t == shard.tensors.end()) throw DataError(f + ": tensor '" + name + "' listed in the index is missing");
        out[name] = t->second;
      }
    }
    return out;
  }
  sfs::path single = sfs::path(dir) / "model.safetensors";
  if (!sfs::exists(single))
    throw IoError("no model.safetensors or model.safetensors.index.json in '" + dir + "'");
  return read_safetensors(single.string()).tensors;
}

void write_model_weights(const std::string& dir, const NamedTensors& tensors, const json& metadata,
                         int64_t max_shard_bytes) {
  namespace sfs = std::filesystem;
  int64_t total = 0;
  for (const auto& [n, t] : tensors) total += t.numel() * t.element_size();
  if (max_shard_bytes <= 0 || total <= max_shard_bytes) {
    write_safetensors((sfs::path(dir) / "model.safetensors").string(), tensors, metadata);
    return;
  }
  std::vector<NamedTensors> shards(1);
  int64_t cur = 0;
  for (const auto& nt : tensors) {
    int64_t b = nt.second.numel() * nt.second.element_size();
    if (cur > 0 && cur + b > max_shard_bytes) { shards.emplace_back(); cur = 0; }
    shards.back().push_back(nt);
    cur += b;
  }
  json wm = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    write_safetensors((sfs::path(dir) / name).string(), shards[i], metadata);
    for (const auto& nt : shards[i]) wm[nt.first] = name;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", wm}};
  fs::write_file_atomic(sfs::path(dir) / "model.safetensors.index.json", index.dump(2));
}

}  // namespace subliminal::model
