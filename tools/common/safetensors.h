// Reading (and, for tests and fixtures, writing) safetensors files: an 8-byte little-endian
// header length, a JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// "__metadata__": {...}}, then the tensor bytes. Every malformed input gets an error that names
// the file, the tensor or header field and what was wrong; reads never go past the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "switchyard/status.h"
#include "switchyard/tensor.h"

namespace switchyard::tools {

struct SafetensorsEntry {
  std::string dtype;  // "BF16", "F16", "F32", ... as written in the file
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

class SafetensorsFile {
 public:
  static Status open(const std::string& path, SafetensorsFile* out);

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

  // Reads tensor `name` after checking that it exists, has one of `dtypes` and the `shape`
  // given (empty: any). On success `dtype` receives the tensor's dtype.
  Status read(const std::string& name, const std::vector<DType>& dtypes,
              const std::vector<std::int64_t>& shape, std::vector<std::uint8_t>* bytes,
              DType* dtype) const;

 private:
  std::string path_;
  std::uint64_t data_start_ = 0, data_size_ = 0;
  std::map<std::string, SafetensorsEntry> tensors_;
};

struct SafetensorsTensor {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;
};
Status write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors);

// "BF16" <-> DType for the dtypes Switchyard reads.
bool safetensors_dtype(const std::string& name, DType* out);
const char* safetensors_dtype_name(DType dtype);

}  // namespace switchyard::tools
