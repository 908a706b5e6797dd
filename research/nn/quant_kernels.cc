// The fast form of research/nn/quantized.py: y = x W^T with W kept in GGUF's 32-weight blocks,
// so one pass over the weights reads about one byte (Q8_0) or three quarters of a byte (Q4_1)
// per weight instead of four. Decoding is bound by that read: a token multiplies every weight
// of the model once.
//
//   Q8_0: w = d * q,      q int8,   one float d per block
//   Q4_1: w = d * q + m,  q in 0..15, two per byte (weight j in the low nibble of byte j, weight
//                         j + 16 in its high nibble), one d and one m per block
//
// x stays float32: only the weights are quantized, so y is the float32 model's up to the order
// of the sums. A block's codes are widened to floats in registers, and its scales come out of
// the sum:
//
//   sum_j w_j x_j = d (q . x) + m (sum_j x_j)
//
// Columns of y are shared between XLA's intra-op threads; each block of W is loaded and
// widened once for every four rows of x (a decode batch or a prompt).

#include <Python.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kBlock = 32;
constexpr int64_t kParallelWeights = 1 << 18;  // fewer: one thread (waking one costs more)

// The rows of x and, for Q4_1's offset term, each block's sum_j x_j.
struct Input {
  const float* x;
  std::vector<float> block_sums;
};

Input Prepare(const float* x, int64_t rows, int64_t k, bool block_sums) {
  Input in{x, std::vector<float>(block_sums ? rows * k / kBlock : 0)};
  for (size_t i = 0; i < in.block_sums.size(); ++i) {
    float sum = 0.0f;
    for (int j = 0; j < kBlock; ++j) sum += x[i * kBlock + j];
    in.block_sums[i] = sum;
  }
  return in;
}

#if defined(__AVX2__) && defined(__FMA__)
using Lanes = __m256;  // 8 running float sums per row of x
inline Lanes Zero() { return _mm256_setzero_ps(); }
inline float Total(Lanes v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// A block's 32 codes as floats, in 4 registers of 8.
struct Weights {
  __m256 q[4];
};

// acc += d * (q . x) over one block.
inline Lanes Add(Lanes acc, const Weights& w, const float* x, float d) {
  __m256 dot = _mm256_mul_ps(w.q[0], _mm256_loadu_ps(x));
  dot = _mm256_fmadd_ps(w.q[1], _mm256_loadu_ps(x + 8), dot);
  dot = _mm256_fmadd_ps(w.q[2], _mm256_loadu_ps(x + 16), dot);
  dot = _mm256_fmadd_ps(w.q[3], _mm256_loadu_ps(x + 24), dot);
  return _mm256_fmadd_ps(_mm256_set1_ps(d), dot, acc);
}

struct Q8_0 {
  static constexpr int64_t kBytes = kBlock;
  static Weights Load(const uint8_t* q) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
    auto widen = [](__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)); };
    return {{widen(lo), widen(_mm_srli_si128(lo, 8)), widen(hi), widen(_mm_srli_si128(hi, 8))}};
  }
};

struct Q4_1 {
  static constexpr int64_t kBytes = kBlock / 2;
  static Weights Load(const uint8_t* q) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m128i nibble = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(raw, nibble);                     // weights 0..15
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), nibble);  // weights 16..31
    auto widen = [](__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); };
    return {{widen(lo), widen(_mm_srli_si128(lo, 8)), widen(hi), widen(_mm_srli_si128(hi, 8))}};
  }
};
#else  // the same sums, one at a time
using Lanes = float;
inline Lanes Zero() { return 0.0f; }
inline float Total(Lanes v) { return v; }

struct Weights {
  float q[kBlock];
};

inline Lanes Add(Lanes acc, const Weights& w, const float* x, float d) {
  float dot = 0.0f;
  for (int j = 0; j < kBlock; ++j) dot += w.q[j] * x[j];
  return acc + d * dot;
}

struct Q8_0 {
  static constexpr int64_t kBytes = kBlock;
  static Weights Load(const uint8_t* q) {
    Weights w;
    for (int j = 0; j < kBlock; ++j) w.q[j] = static_cast<int8_t>(q[j]);
    return w;
  }
};

struct Q4_1 {
  static constexpr int64_t kBytes = kBlock / 2;
  static Weights Load(const uint8_t* q) {
    Weights w;
    for (int j = 0; j < kBlock / 2; ++j) {
      w.q[j] = q[j] & 0x0F;
      w.q[j + 16] = q[j] >> 4;
    }
    return w;
  }
};
#endif

// m (sum_j x_j), summed over a row's blocks: Q4_1's offset term (Q8_0 has none).
inline float Offset(const float* m_row, const float* sums_row, int64_t blocks) {
  if (!m_row) return 0.0f;
  float offset = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) offset += m_row[b] * sums_row[b];
  return offset;
}

// y[r, n] for one row r of x and one column n: four running sums over alternate blocks keep
// four independent chains of multiply-adds in flight; one would wait on the last every block.
template <typename Kind>
float OneRow(const Input& in, const uint8_t* q_row, const float* d_row, const float* m_row,
             int64_t r, int64_t blocks) {
  const float* x_row = in.x + r * blocks * kBlock;
  Lanes acc[4] = {Zero(), Zero(), Zero(), Zero()};
  int64_t b = 0;
  for (; b + 4 <= blocks; b += 4) {
    for (int u = 0; u < 4; ++u) {                                      // d (q . x)
      acc[u] = Add(acc[u], Kind::Load(q_row + (b + u) * Kind::kBytes), x_row + (b + u) * kBlock,
                   d_row[b + u]);
    }
  }
  for (; b < blocks; ++b) {
    acc[0] = Add(acc[0], Kind::Load(q_row + b * Kind::kBytes), x_row + b * kBlock, d_row[b]);
  }
  return Total(acc[0]) + Total(acc[1]) + Total(acc[2]) + Total(acc[3]) +
         Offset(m_row, in.block_sums.data() + r * blocks, blocks);
}

// y[r..r+3, n]: four rows of x share each block of W as it is loaded and widened, and their
// four sums are the independent chains.
template <typename Kind>
void FourRows(const Input& in, const uint8_t* q_row, const float* d_row, const float* m_row,
              int64_t r, int64_t blocks, float* y, int64_t n_total) {
  const int64_t k = blocks * kBlock;
  const float* x = in.x + r * k;
  Lanes acc[4] = {Zero(), Zero(), Zero(), Zero()};
  for (int64_t b = 0; b < blocks; ++b) {
    const Weights w = Kind::Load(q_row + b * Kind::kBytes);
    for (int i = 0; i < 4; ++i) acc[i] = Add(acc[i], w, x + i * k + b * kBlock, d_row[b]);
  }
  for (int i = 0; i < 4; ++i) {
    y[(r + i) * n_total] = Total(acc[i]) + Offset(m_row, in.block_sums.data() + (r + i) * blocks,
                                                  blocks);
  }
}

// y[:, n] for the output columns n in [begin, end), a tile of columns at a time: the tile's
// rows of W (K / 32 blocks each) stay in L1 while every row of x goes over them.
template <typename Kind>
void Columns(const Input& in, const uint8_t* q, const float* d, const float* m, float* y,
             int64_t rows, int64_t k, int64_t n_total, int64_t begin, int64_t end) {
  constexpr int64_t kTile = 32;
  const int64_t blocks = k / kBlock;
  for (int64_t n0 = begin; n0 < end; n0 += kTile) {
    const int64_t n1 = std::min(end, n0 + kTile);
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
      for (int64_t n = n0; n < n1; ++n) {
        FourRows<Kind>(in, q + n * blocks * Kind::kBytes, d + n * blocks,
                       m ? m + n * blocks : nullptr, r, blocks, y + n, n_total);
      }
    }
    for (; r < rows; ++r) {
      for (int64_t n = n0; n < n1; ++n) {
        y[r * n_total + n] = OneRow<Kind>(in, q + n * blocks * Kind::kBytes, d + n * blocks,
                                          m ? m + n * blocks : nullptr, r, blocks);
      }
    }
  }
}

// Splits the columns into chunks that the calling thread and the pool's threads claim in
// turn. The caller waits only for chunks that some running thread has claimed, so it never
// waits on a task the pool has not started (no deadlock when the pool is busy), and a task
// that starts late finds nothing left and returns: what it touches is shared_ptr-owned.
template <typename Kind>
ffi::Error Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::AnyBuffer q,
                  ffi::Buffer<ffi::F32> d, const float* m, ffi::ResultBuffer<ffi::F32> y) {
  auto x_dims = x.dimensions();
  auto d_dims = d.dimensions();
  if (x_dims.size() != 2 || d_dims.size() != 2) {
    return ffi::Error::InvalidArgument("quantized matmul: x and scales must be 2-D");
  }
  const int64_t rows = x_dims[0], k = x_dims[1], n = d_dims[0];
  if (k % kBlock || d_dims[1] != k / kBlock ||
      static_cast<int64_t>(q.size_bytes()) != n * (k / kBlock) * Kind::kBytes) {
    return ffi::Error::InvalidArgument("quantized matmul: shapes do not fit 32-weight blocks");
  }
  struct Shared {
    Input in;
    std::atomic<int64_t> next{0}, done{0};
  };
  auto shared = std::make_shared<Shared>();
  shared->in = Prepare(x.typed_data(), rows, k, m != nullptr);
  const int64_t threads = n * k >= kParallelWeights ? std::max<int64_t>(1, pool.num_threads()) : 1;
  const int64_t chunk = std::max<int64_t>(8, (n + 4 * threads - 1) / (4 * threads));
  const int64_t chunks = (n + chunk - 1) / chunk;
  const uint8_t* qp = static_cast<const uint8_t*>(q.untyped_data());
  const float* dp = d.typed_data();
  float* yp = y->typed_data();
  auto work = [=]() {
    for (int64_t c; (c = shared->next.fetch_add(1)) < chunks;) {
      Columns<Kind>(shared->in, qp, dp, m, yp, rows, k, n, c * chunk, std::min(n, (c + 1) * chunk));
      shared->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t t = 1; t < std::min(threads, chunks); ++t) pool.Schedule(decltype(work)(work));
  work();
  while (shared->done.load(std::memory_order_acquire) < chunks) {
  }
  return ffi::Error::Success();
}

ffi::Error Q8_0Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::AnyBuffer q,
                      ffi::Buffer<ffi::F32> d, ffi::ResultBuffer<ffi::F32> y) {
  return Matmul<Q8_0>(pool, x, q, d, nullptr, y);
}

ffi::Error Q4_1Matmul(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::AnyBuffer q,
                      ffi::Buffer<ffi::F32> d, ffi::Buffer<ffi::F32> m,
                      ffi::ResultBuffer<ffi::F32> y) {
  return Matmul<Q4_1>(pool, x, q, d, m.typed_data(), y);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(bookforai_q8_0_matmul, Q8_0Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(bookforai_q4_1_matmul, Q4_1Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

// A Python module whose attributes are the handlers as capsules, for
// jax.ffi.register_ffi_target.
static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_quant_kernels",
                                 "GGUF block-quantized matmuls for XLA:CPU", -1, nullptr};

PyMODINIT_FUNC PyInit__quant_kernels(void) {
  PyObject* module = PyModule_Create(&module_def);
  if (!module) return nullptr;
  PyModule_AddObject(module, "q8_0_matmul",
                     PyCapsule_New(reinterpret_cast<void*>(bookforai_q8_0_matmul), nullptr,
                                   nullptr));
  PyModule_AddObject(module, "q4_1_matmul",
                     PyCapsule_New(reinterpret_cast<void*>(bookforai_q4_1_matmul), nullptr,
                                   nullptr));
#if defined(__AVX2__) && defined(__FMA__)
  PyModule_AddIntConstant(module, "avx2", 1);
#else
  PyModule_AddIntConstant(module, "avx2", 0);
#endif
  return module;
}
