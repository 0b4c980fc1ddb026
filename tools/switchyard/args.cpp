#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace switchyard::cli {

Status Args::parse(const std::string& command, const std::vector<FlagSpec>& specs, int argc,
                   char** argv, int first, Args* out) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      return Status::InvalidArgument(command + ": unexpected argument '" + arg +
                                     "': expected flags of the form --name [value] (see " +
                                     command + " --help)");
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (!spec) {
      return Status::InvalidArgument(command + ": unknown flag --" + name + " (see " + command +
                                     " --help)");
    }
    if (spec->takes_value && !inline_value) {
      if (i + 1 >= argc) {
        return Status::InvalidArgument(command + ": --" + name + " needs a value (" + spec->help +
                                       ")");
      }
      value = argv[++i];
    } else if (!spec->takes_value && inline_value) {
      return Status::InvalidArgument(command + ": --" + name + " takes no value, got '" + value +
                                     "'");
    }
    a.values_[name] = value;
  }
  *out = std::move(a);
  return Status::Ok();
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

namespace {
bool parse_int(const std::string& s, std::int64_t* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || !end || *end != '\0') return false;
  *v = x;
  return true;
}
std::string range(std::int64_t lo, std::int64_t hi) {
  return "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
}
}  // namespace

Status Args::get_int(const std::string& name, std::int64_t fallback, std::int64_t lo,
                     std::int64_t hi, std::int64_t* out) const {
  if (!has(name)) {
    *out = fallback;
    return Status::Ok();
  }
  const std::string s = get(name, "");
  std::int64_t v = 0;
  if (!parse_int(s, &v) || v < lo || v > hi) {
    return Status::InvalidArgument("--" + name + " = " + s + ": expected " + range(lo, hi));
  }
  *out = v;
  return Status::Ok();
}

Status Args::get_double(const std::string& name, double fallback, double lo, double hi,
                        double* out) const {
  if (!has(name)) {
    *out = fallback;
    return Status::Ok();
  }
  const std::string s = get(name, "");
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || !end || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
    return Status::InvalidArgument("--" + name + " = " + s + ": expected a number in [" +
                                   std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  *out = v;
  return Status::Ok();
}

std::vector<std::string> Args::get_list(const std::string& name,
                                        const std::string& fallback) const {
  const std::string s = get(name, fallback);
  std::vector<std::string> items;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) items.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) items.push_back(cur);
  return items;
}

Status Args::get_int_list(const std::string& name, const std::string& fallback, std::int64_t lo,
                          std::int64_t hi, std::vector<std::int64_t>* out) const {
  out->clear();
  const auto items = get_list(name, fallback);
  for (const std::string& item : items) {
    std::int64_t v = 0;
    if (!parse_int(item, &v) || v < lo || v > hi) {
      return Status::InvalidArgument("--" + name + " = " + get(name, fallback) +
                                     ": expected a comma-separated list of " + range(lo, hi) +
                                     " (bad item '" + item + "')");
    }
    out->push_back(v);
  }
  if (out->empty()) {
    return Status::InvalidArgument("--" + name + " is empty: expected at least one value");
  }
  return Status::Ok();
}

std::string flags_help(const std::vector<FlagSpec>& specs) {
  std::string s;
  for (const FlagSpec& f : specs) {
    std::string left = "  --" + f.name + (f.takes_value ? " <value>" : "");
    if (left.size() < 28) left.resize(28, ' ');
    s += left + " " + f.help + "\n";
  }
  return s;
}

}  // namespace switchyard::cli
