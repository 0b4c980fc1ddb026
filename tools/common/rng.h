// A small, platform-independent PRNG (splitmix64) with uniform and normal draws, so that every
// generated input is the same on every machine for a given seed (std:: distributions are not).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace switchyard::tools {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next_u64() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // [0, 1)
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // [0, n)
  std::uint64_t below(std::uint64_t n) { return n ? next_u64() % n : 0; }
  // Standard normal (Box-Muller on our own uniforms).
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

// A seed derived from a case name (FNV-1a), so a printed case id reproduces its inputs.
inline std::uint64_t seed_from_name(std::string_view name, std::uint64_t salt = 0) {
  std::uint64_t h = 0xcbf29ce484222325ull ^ salt;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace switchyard::tools
