// Command-line flags: "--name value" or "--name=value"; boolean flags take no value.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "switchyard/status.h"

namespace switchyard::cli {

struct FlagSpec {
  std::string name;  // without "--"
  bool takes_value;
  std::string help;
};

class Args {
 public:
  // Parses argv[first..argc). Unknown flags, missing values and stray words are errors that name
  // the command and the flag.
  static Status parse(const std::string& command, const std::vector<FlagSpec>& specs, int argc,
                      char** argv, int first, Args* out);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback) const;
  // Integer/float/list flags with range checks; errors name the flag, value and expectation.
  Status get_int(const std::string& name, std::int64_t fallback, std::int64_t lo, std::int64_t hi,
                 std::int64_t* out) const;
  Status get_double(const std::string& name, double fallback, double lo, double hi,
                    double* out) const;
  Status get_int_list(const std::string& name, const std::string& fallback, std::int64_t lo,
                      std::int64_t hi, std::vector<std::int64_t>* out) const;
  std::vector<std::string> get_list(const std::string& name, const std::string& fallback) const;

 private:
  std::map<std::string, std::string> values_;
};

std::string flags_help(const std::vector<FlagSpec>& specs);

}  // namespace switchyard::cli
