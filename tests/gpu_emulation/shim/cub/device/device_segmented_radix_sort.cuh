/*
 * Host stand-in for cub::DeviceSegmentedRadixSort::SortPairs in the emulated GPU build: the
 * order of CUB's radix sort (stable, by the key's bits made order-preserving: -0 before +0,
 * NaNs by sign at the ends), the same temp-storage protocol (a null temp pointer asks for the
 * size) and stream check.  The whole temp storage is written, so a too-small scratch block
 * is an out-of-bounds write (AddressSanitizer, or the allocation guard of the harness).
 */
#ifndef MXSSD_EMU_CUB_SEGMENTED_SORT_H_
#define MXSSD_EMU_CUB_SEGMENTED_SORT_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "emulation.h"

namespace hipcub {

namespace detail {
template <typename Key>
auto radix_bits(Key key) {
  using Bits = std::conditional_t<sizeof(Key) == 8, std::uint64_t, std::uint32_t>;
  Bits bits;
  std::memcpy(&bits, &key, sizeof bits);
  const Bits sign = Bits(1) << (8 * sizeof(Bits) - 1);
  return (bits & sign) ? Bits(~bits) : Bits(bits | sign);
}
}  // namespace detail

struct DeviceSegmentedRadixSort {
  template <typename Key, typename Value, typename Offset>
  static hipError_t SortPairs(void* temp, size_t& temp_bytes, const Key* keys_in, Key* keys_out,
                              const Value* values_in, Value* values_out, int num_items,
                              int num_segments, Offset begin_offsets, Offset end_offsets,
                              int begin_bit = 0, int end_bit = sizeof(Key) * 8,
                              hipStream_t stream = nullptr) {
    if (!mxssd_emu::check_stream("cub::DeviceSegmentedRadixSort::SortPairs", stream)) {
      return hipErrorInvalidValue;
    }
    if (mxssd_emu::injected_failure("sort")) return hipErrorOutOfMemory;  // not sticky
    // Like CUB, storage grows with the item count (double buffers of keys and values).
    const size_t needed = 512 + size_t(num_items) * (sizeof(Key) + sizeof(Value));
    if (temp == nullptr) {
      temp_bytes = needed;
      return hipSuccess;
    }
    if (temp_bytes < needed || begin_bit != 0 || end_bit != int(sizeof(Key) * 8) ||
        !mxssd_emu::check_scratch(temp, temp_bytes, "cub::DeviceSegmentedRadixSort temp storage")) {
      return hipErrorInvalidValue;
    }
    std::memset(temp, 0x5A, temp_bytes);
    std::vector<int> order;
    for (int s = 0; s < num_segments; ++s) {
      const int begin = begin_offsets[s], end = end_offsets[s];
      order.resize(std::max(end - begin, 0));
      std::iota(order.begin(), order.end(), begin);
      std::stable_sort(order.begin(), order.end(), [keys_in](int a, int b) {
        return detail::radix_bits(keys_in[a]) < detail::radix_bits(keys_in[b]);
      });
      std::vector<Key> keys(order.size());
      std::vector<Value> values(order.size());
      for (size_t i = 0; i < order.size(); ++i) {
        keys[i] = keys_in[order[i]];
        values[i] = values_in[order[i]];
      }
      std::copy(keys.begin(), keys.end(), keys_out + begin);
      std::copy(values.begin(), values.end(), values_out + begin);
    }
    return hipSuccess;
  }
};

}  // namespace hipcub

namespace cub = hipcub;

#endif  // MXSSD_EMU_CUB_SEGMENTED_SORT_H_
