// interleave_w13_cpu: SGLang's gate/up halves of w13 (or b13) -> interleaved rows (experts.h).
#include <cstdint>
#include <cstring>

#include "../common/check.h"
#include "../common/experts_check.h"
#include "parallel.h"
#include "switchyard/experts.h"

namespace switchyard {

Status interleave_w13_cpu(const TensorView& src, const TensorView& dst) {
  std::int64_t half = 0, row_bytes = 0;
  SY_RETURN_IF_ERROR(detail::interleave_w13_check("interleave_w13_cpu", src, dst, Device::kCpu,
                                                  &half, &row_bytes));
  const auto* s = static_cast<const std::uint8_t*>(src.data);
  auto* d = static_cast<std::uint8_t*>(dst.data);
  const std::int64_t experts = src.size(0);
  // Destination row r = 2i + j of expert e comes from source row j * I + i.
  detail::parallel_for(experts * half, 4096, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t q = begin; q < end; ++q) {
      const std::int64_t e = q / half, i = q % half;
      const std::uint8_t* base = s + e * 2 * half * row_bytes;
      std::uint8_t* out = d + (e * 2 * half + 2 * i) * row_bytes;
      std::memcpy(out, base + i * row_bytes, static_cast<std::size_t>(row_bytes));
      std::memcpy(out + row_bytes, base + (half + i) * row_bytes,
                  static_cast<std::size_t>(row_bytes));
    }
  });
  return Status::Ok();
}

}  // namespace switchyard
