// parallel_for over [0, n) in contiguous chunks on std::threads; runs inline when small.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace switchyard::detail {

// `fn(begin, end)` must be safe to call concurrently on disjoint ranges. Results must not depend
// on the split (every op here computes each row independently), so the thread count never
// changes the output bits.
template <typename Fn>
void parallel_for(std::int64_t n, std::int64_t min_per_thread, Fn&& fn) {
  const auto hw = static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  const std::int64_t threads = std::min(hw, n / std::max<std::int64_t>(1, min_per_thread));
  if (threads <= 1) {
    if (n > 0) fn(std::int64_t{0}, n);
    return;
  }
  const std::int64_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads - 1));
  for (std::int64_t t = 1; t < threads; ++t) {
    const std::int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(std::int64_t{0}, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

}  // namespace switchyard::detail
