#include "safetensors.h"

#include "../../src/common/check.h"

#include <cctype>
#include <cstring>
#include <fstream>

namespace switchyard::tools {

namespace {

constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{100} << 20;

// A strict parser for the subset of JSON a safetensors header uses.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, std::string file) : s_(text), file_(std::move(file)) {}

  Status parse(std::map<std::string, SafetensorsEntry>* out) {
    SY_RETURN_IF_ERROR(expect('{'));
    skip_ws();
    if (peek() == '}') return Status::Ok();
    while (true) {
      std::string name;
      SY_RETURN_IF_ERROR(parse_string(&name));
      SY_RETURN_IF_ERROR(expect(':'));
      if (name == "__metadata__") {
        SY_RETURN_IF_ERROR(skip_value());
      } else {
        SafetensorsEntry e;
        SY_RETURN_IF_ERROR(parse_entry(name, &e));
        if (out->count(name)) return error("tensor '" + name + "' appears twice");
        (*out)[name] = e;
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      return expect('}');
    }
  }

 private:
  Status error(const std::string& what) const {
    return Status::InvalidArgument("safetensors file " + file_ + ": header byte " +
                                   std::to_string(i_) + ": " + what);
  }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  char peek() {
    skip_ws();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  Status expect(char c) {
    if (peek() != c) return error(std::string("expected '") + c + "'");
    ++i_;
    return Status::Ok();
  }
  Status parse_string(std::string* out) {
    SY_RETURN_IF_ERROR(expect('"'));
    out->clear();
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        if (++i_ >= s_.size()) break;
        const char c = s_[i_];
        if (c == 'u') return error("\\u escapes are not supported in names");
        *out += (c == 'n' ? '\n' : c == 't' ? '\t' : c);
      } else {
        *out += s_[i_];
      }
      ++i_;
    }
    if (i_ >= s_.size()) return error("unterminated string");
    ++i_;
    return Status::Ok();
  }
  Status parse_uint(std::uint64_t* out) {
    skip_ws();
    const std::size_t start = i_;
    std::uint64_t v = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      if (v > (UINT64_MAX - 9) / 10) return error("integer too large");
      v = v * 10 + static_cast<std::uint64_t>(s_[i_++] - '0');
    }
    if (i_ == start) return error("expected a non-negative integer");
    *out = v;
    return Status::Ok();
  }
  Status parse_uint_array(std::vector<std::uint64_t>* out) {
    SY_RETURN_IF_ERROR(expect('['));
    out->clear();
    if (peek() == ']') {
      ++i_;
      return Status::Ok();
    }
    while (true) {
      std::uint64_t v = 0;
      SY_RETURN_IF_ERROR(parse_uint(&v));
      out->push_back(v);
      if (peek() == ',') {
        ++i_;
        continue;
      }
      return expect(']');
    }
  }
  Status parse_entry(const std::string& name, SafetensorsEntry* e) {
    SY_RETURN_IF_ERROR(expect('{'));
    bool have_dtype = false, have_shape = false, have_offsets = false;
    while (true) {
      std::string key;
      SY_RETURN_IF_ERROR(parse_string(&key));
      SY_RETURN_IF_ERROR(expect(':'));
      if (key == "dtype") {
        SY_RETURN_IF_ERROR(parse_string(&e->dtype));
        have_dtype = true;
      } else if (key == "shape") {
        std::vector<std::uint64_t> dims;
        SY_RETURN_IF_ERROR(parse_uint_array(&dims));
        for (std::uint64_t d : dims) {
          if (d > (std::uint64_t{1} << 40))
            return error("tensor '" + name + "': dimension too large");
          e->shape.push_back(static_cast<std::int64_t>(d));
        }
        have_shape = true;
      } else if (key == "data_offsets") {
        std::vector<std::uint64_t> off;
        SY_RETURN_IF_ERROR(parse_uint_array(&off));
        if (off.size() != 2 || off[0] > off[1]) {
          return error("tensor '" + name +
                       "': data_offsets must be [begin, end] with begin <= end");
        }
        e->begin = off[0];
        e->end = off[1];
        have_offsets = true;
      } else {
        SY_RETURN_IF_ERROR(skip_value());
      }
      if (peek() == ',') {
        ++i_;
        continue;
      }
      SY_RETURN_IF_ERROR(expect('}'));
      break;
    }
    if (!(have_dtype && have_shape && have_offsets)) {
      return error("tensor '" + name + "' lacks dtype, shape or data_offsets");
    }
    return Status::Ok();
  }
  Status skip_value(int depth = 0) {
    if (depth > 64) return error("nesting too deep");
    const char c = peek();
    if (c == '"') {
      std::string ignored;
      return parse_string(&ignored);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      if (peek() == close) {
        ++i_;
        return Status::Ok();
      }
      while (true) {
        if (c == '{') {
          std::string key;
          SY_RETURN_IF_ERROR(parse_string(&key));
          SY_RETURN_IF_ERROR(expect(':'));
        }
        SY_RETURN_IF_ERROR(skip_value(depth + 1));
        if (peek() == ',') {
          ++i_;
          continue;
        }
        return expect(close);
      }
    }
    const std::size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' ||
                              s_[i_] == '+' || s_[i_] == '.')) {
      ++i_;
    }
    if (i_ == start) return error("unexpected character");
    return Status::Ok();
  }

  const std::string& s_;
  std::string file_;
  std::size_t i_ = 0;
};

}  // namespace

bool safetensors_dtype(const std::string& name, DType* out) {
  if (name == "BF16")
    *out = DType::kBFloat16;
  else if (name == "F16")
    *out = DType::kFloat16;
  else if (name == "F32")
    *out = DType::kFloat32;
  else if (name == "I32")
    *out = DType::kInt32;
  else if (name == "I64")
    *out = DType::kInt64;
  else
    return false;
  return true;
}

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16:
      return "BF16";
    case DType::kFloat16:
      return "F16";
    case DType::kFloat32:
      return "F32";
    case DType::kInt32:
      return "I32";
    case DType::kInt64:
      return "I64";
  }
  return "?";
}

Status SafetensorsFile::open(const std::string& path, SafetensorsFile* out) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return Status::InvalidArgument("safetensors file " + path + ": cannot open it");
  const auto file_size = static_cast<std::uint64_t>(f.tellg());
  const auto bad = [&](const std::string& what) {
    return Status::InvalidArgument("safetensors file " + path + ": " + what);
  };
  if (file_size < 8)
    return bad("only " + std::to_string(file_size) +
               " bytes: expected an 8-byte header length (truncated?)");
  unsigned char len_bytes[8];
  f.seekg(0);
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8) {
    return bad("header length " + std::to_string(header_len) + " exceeds the " +
               std::to_string(file_size - 8) + " bytes after it (truncated or not safetensors?)");
  }
  std::string header(static_cast<std::size_t>(header_len), '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!f) return bad("could not read the header");
  SafetensorsFile file;
  file.path_ = path;
  file.data_start_ = 8 + header_len;
  file.data_size_ = file_size - file.data_start_;
  HeaderParser parser(header, path);
  if (Status st = parser.parse(&file.tensors_); !st.ok()) return st;
  for (const auto& [name, e] : file.tensors_) {
    DType dt;
    if (!safetensors_dtype(e.dtype, &dt)) continue;  // other dtypes may exist; reading them fails
    std::uint64_t numel = 1;
    for (std::int64_t d : e.shape) numel *= static_cast<std::uint64_t>(d);
    if (e.end - e.begin != numel * dtype_size(dt)) {
      return bad("tensor '" + name + "': data_offsets span " + std::to_string(e.end - e.begin) +
                 " bytes, its shape and dtype need " + std::to_string(numel * dtype_size(dt)));
    }
    if (e.end > file.data_size_) {
      return bad("tensor '" + name + "': data ends at byte " + std::to_string(e.end) + " of a " +
                 std::to_string(file.data_size_) + "-byte data section (truncated?)");
    }
  }
  *out = std::move(file);
  return Status::Ok();
}

Status SafetensorsFile::read(const std::string& name, const std::vector<DType>& dtypes,
                             const std::vector<std::int64_t>& shape,
                             std::vector<std::uint8_t>* bytes, DType* dtype) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return Status::InvalidArgument("safetensors file " + path_ + ": tensor '" + name +
                                   "' is missing");
  }
  const SafetensorsEntry& e = it->second;
  DType dt = DType::kFloat32;
  std::string names;
  for (DType d : dtypes) {
    if (!names.empty()) names += " or ";
    names += safetensors_dtype_name(d);
  }
  bool match = false;
  for (DType d : dtypes) match = match || (safetensors_dtype(e.dtype, &dt) && d == dt);
  if (!match) {
    return Status::InvalidArgument("safetensors file " + path_ + ": tensor '" + name +
                                   "' dtype = " + e.dtype + ": expected " + names);
  }
  if (!shape.empty() && shape != e.shape) {
    auto str = [](const std::vector<std::int64_t>& v) {
      std::string s = "[";
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(v[i]);
      }
      return s + "]";
    };
    return Status::InvalidArgument("safetensors file " + path_ + ": tensor '" + name +
                                   "' shape = " + str(e.shape) + ": expected " + str(shape));
  }
  std::ifstream f(path_, std::ios::binary);
  bytes->resize(static_cast<std::size_t>(e.end - e.begin));
  f.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
  f.read(reinterpret_cast<char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
  if (!f) {
    return Status::InvalidArgument("safetensors file " + path_ + ": could not read tensor '" +
                                   name + "'");
  }
  *dtype = dt;
  return Status::Ok();
}

Status write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors) {
  std::string header = "{";
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsTensor& t = tensors[i];
    if (i) header += ',';
    header += '"';
    header += t.name;
    header += "\":{\"dtype\":\"";
    header += safetensors_dtype_name(t.dtype);
    header += "\",\"shape\":[";
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (d) header += ',';
      header += std::to_string(t.shape[d]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(offset + t.bytes.size());
    header += "]}";
    offset += t.bytes.size();
  }
  header += ",\"__metadata__\":{\"format\":\"pt\"}}";
  while (header.size() % 8) header += ' ';
  std::ofstream f(path, std::ios::binary);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<unsigned char>((header.size() >> (8 * i)) & 0xff);
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const SafetensorsTensor& t : tensors) {
    f.write(reinterpret_cast<const char*>(t.bytes.data()),
            static_cast<std::streamsize>(t.bytes.size()));
  }
  if (!f) return Status::InvalidArgument("safetensors file " + path + ": cannot write it");
  return Status::Ok();
}

}  // namespace switchyard::tools
