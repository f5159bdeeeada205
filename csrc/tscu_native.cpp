// tscu's native CPU kernels for MLX: the exp-heavy parts of a LoRA step as MLX
// primitives, each one pass over its rows, split across threads.
//
// MLX's CPU backend runs elementwise work on one thread, and its exp costs
// 14-19 ns an element here. A step on SmolLM2-135M spends about half its time
// outside the matmuls, mostly in three places; this file does each of them as
// one fused, vectorised, multi-threaded pass:
//   - causal softmax over attention scores (masked columns never touched) and
//     its backward pass, optionally block-diagonal over the documents packed
//     into a sequence (each row sees its own document's keys only);
//   - the cross-entropy of logits against targets and its gradient
//     (softmax - onehot), one row at a time;
//   - SwiGLU (silu(gate) * up) and its two gradients;
//   - RMS norm and its input gradient;
//   - affine 4/8-bit dequantization (MLX's runs on one thread too).
//   - x @ dequantize(w).T for a few rows of x (generation, one token at a time),
//     reading the packed weights once instead of writing a float32 copy;
//   - causal attention, forward and backward, fused around sgemm calls on the
//     key blocks each block of queries sees (the masked half is never multiplied).
// Python wraps each forward/backward pair in an mx.custom_function
// (tscu_tui/engine/models/native.py), so the primitives need no autodiff rules
// of their own. Float32, row-contiguous inputs only; the Python side checks.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"

namespace nb = nanobind;
namespace mx = mlx::core;

namespace tscu {

// ------------------------------------------------------------------ threads

std::atomic<int> g_threads{
    static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};

// Run f(first, end) over [0, rows) in at most g_threads contiguous chunks; the
// calling thread takes the first. Small jobs stay on one thread.
template <class F>
void parallel_rows(int64_t rows, int64_t work, F f, int64_t min_work = int64_t{1} << 16) {
  int threads = std::min<int64_t>(g_threads.load(), rows);
  if (threads <= 1 || work < min_work) {
    f(int64_t{0}, rows);
    return;
  }
  int64_t per = (rows + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    int64_t a = t * per, b = std::min(rows, a + per);
    if (a < b) pool.emplace_back(f, a, b);
  }
  f(int64_t{0}, std::min(rows, per));
  for (auto& t : pool) t.join();
}

// ------------------------------------------------------------------ exp

// x - n ln 2 without losing bits. The build allows reassociation
// (-fassociative-math) so that the row sums vectorise; written as float
// arithmetic, Cody-Waite's x - n*ln2_hi + n*ln2_lo is then reordered to
// (x + n*ln2_lo) - n*ln2_hi, which rounds at x's magnitude: 3.6e-6 relative
// error at |x| = 72 instead of 1e-7. (GCC 12's __builtin_assoc_barrier did not
// stop it in vectorised loops.) Fused multiply-adds are calls the compiler never
// reorders and vectorise where the target has them; elsewhere the reduction
// runs in double precision, where one ln 2 constant is exact enough (slower).
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__)
inline float reduce_ln2(float x, float n) {
  return std::fma(n, 2.12194440e-4f, std::fma(n, -0.693359375f, x));
}
#else
inline float reduce_ln2(float x, float n) {
  return static_cast<float>(static_cast<double>(x) - static_cast<double>(n) * 0.6931471805599453);
}
#endif

// e**x for x in [-87, 88] (clamped outside): Cody-Waite reduction and Cephes'
// degree-6 polynomial, relative error about 2e-7 (tests/test_native_kernels.py
// measures it). Branch-free, so loops over it vectorise.
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = reduce_ln2(x, n);
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float row_max(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

// ------------------------------------------------------------------ row kernels

// The keys a row of scores sees: [lo, hi). Rows come in blocks of `queries`
// (one block per batch row and head) over `cols` keys; row r is query
// q = r % queries and sees keys up to cols - queries + q. With `starts` (one
// int32 per batch row and query: where that query's document begins), it sees
// none before its document either. queries == 0 means no mask.
struct Visible {
  const int32_t* starts = nullptr;
  int64_t queries = 0, cols = 0, rows_per_batch = 1;

  inline void range(int64_t r, int64_t& lo, int64_t& hi) const {
    if (queries == 0) {
      lo = 0;
      hi = cols;
      return;
    }
    int64_t q = r % queries;
    hi = cols - queries + q + 1;
    lo = starts ? std::min<int64_t>(std::max<int32_t>(starts[(r / rows_per_batch) * queries + q],
                                                      0), hi - 1)
                : 0;
  }
};

// One row: y = softmax(x) over the visible [lo, hi), 0 elsewhere in [0, cols).
// x and y may be the same row.
inline void softmax_row(const float* x, float* y, int64_t lo, int64_t hi, int64_t cols) {
  float m = row_max(x + lo, hi - lo), s = 0.0f;
  for (int64_t j = lo; j < hi; ++j) {
    float e = fast_exp(x[j] - m);
    y[j] = e;
    s += e;
  }
  float inv = 1.0f / s;
  for (int64_t j = lo; j < hi; ++j) y[j] *= inv;
  std::fill(y, y + lo, 0.0f);
  std::fill(y + hi, y + cols, 0.0f);
}

// One row's input gradient over [lo, hi): scale * y * (dy - <y, dy>); dy and dx may be
// the same row. The caller zeroes what lies outside.
inline void softmax_grad_row(const float* y, const float* dy, float* dx, int64_t lo,
                             int64_t hi, float scale = 1.0f) {
  float dot = 0.0f;
  for (int64_t j = lo; j < hi; ++j) dot += y[j] * dy[j];
  for (int64_t j = lo; j < hi; ++j) dx[j] = y[j] * (dy[j] - dot) * scale;
}

void softmax_rows(const float* x, float* y, int64_t rows, int64_t cols, Visible vis) {
  parallel_rows(rows, rows * cols, [=](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      int64_t lo, hi;
      vis.range(r, lo, hi);
      softmax_row(x + r * cols, y + r * cols, lo, hi, cols);
    }
  });
}

void softmax_grad_rows(const float* y, const float* dy, float* dx, int64_t rows,
                       int64_t cols, Visible vis) {
  parallel_rows(rows, rows * cols, [=](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      float* dxr = dx + r * cols;
      int64_t lo, hi;
      vis.range(r, lo, hi);
      softmax_grad_row(y + r * cols, dy + r * cols, dxr, lo, hi);
      std::fill(dxr, dxr + lo, 0.0f);
      std::fill(dxr + hi, dxr + cols, 0.0f);
    }
  });
}

void cross_entropy_rows(const float* z, const int32_t* t, float* loss,
                        int64_t rows, int64_t cols) {
  parallel_rows(rows, rows * cols, [=](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      const float* zr = z + r * cols;
      if (t[r] < 0 || t[r] >= cols) {  // a token the vocabulary lacks: NaN, never a stray read
        loss[r] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      float m = row_max(zr, cols), s = 0.0f;
      for (int64_t j = 0; j < cols; ++j) s += fast_exp(zr[j] - m);
      loss[r] = m + std::log(s) - zr[t[r]];
    }
  });
}

void cross_entropy_grad_rows(const float* z, const int32_t* t, const float* loss,
                             const float* cot, float* d, int64_t rows,
                             int64_t cols) {
  parallel_rows(rows, rows * cols, [=](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      const float* zr = z + r * cols;
      float* dr = d + r * cols;
      if (t[r] < 0 || t[r] >= cols) {
        std::fill(dr, dr + cols, std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      float lse = loss[r] + zr[t[r]], g = cot[r];
      for (int64_t j = 0; j < cols; ++j) dr[j] = fast_exp(zr[j] - lse) * g;
      dr[t[r]] -= g;
    }
  });
}

inline float sigmoid(float x) {
  return 1.0f / (1.0f + fast_exp(-x));
}

void swiglu_rows(const float* g, const float* u, float* out, int64_t size) {
  constexpr int64_t block = 4096;
  int64_t blocks = (size + block - 1) / block;
  parallel_rows(blocks, size, [=](int64_t a, int64_t b) {
    int64_t end = std::min(size, b * block);
    for (int64_t i = a * block; i < end; ++i) out[i] = g[i] * sigmoid(g[i]) * u[i];
  });
}

void swiglu_grad_rows(const float* g, const float* u, const float* c, float* dg,
                      float* du, int64_t size) {
  constexpr int64_t block = 4096;
  int64_t blocks = (size + block - 1) / block;
  parallel_rows(blocks, 2 * size, [=](int64_t a, int64_t b) {
    int64_t end = std::min(size, b * block);
    for (int64_t i = a * block; i < end; ++i) {
      float s = sigmoid(g[i]);
      dg[i] = s * (1.0f + g[i] * (1.0f - s)) * u[i] * c[i];
      du[i] = g[i] * s * c[i];
    }
  });
}

// RMS norm of each row times a weight, and the gradient of the input (the
// weight's gradient, needed only when it trains, is left to MLX ops).
void rms_norm_rows(const float* x, const float* w, float* y, int64_t rows,
                   int64_t cols, float eps) {
  parallel_rows(rows, rows * cols, [=](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      float ss = 0.0f;
      for (int64_t j = 0; j < cols; ++j) ss += xr[j] * xr[j];
      const float inv = 1.0f / std::sqrt(ss / cols + eps);
      for (int64_t j = 0; j < cols; ++j) yr[j] = xr[j] * inv * w[j];
    }
  });
}

void rms_norm_grad_rows(const float* x, const float* w, const float* dy, float* dx,
                        int64_t rows, int64_t cols, float eps) {
  parallel_rows(rows, 2 * rows * cols, [=](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      float ss = 0.0f, dot = 0.0f;
      for (int64_t j = 0; j < cols; ++j) {
        ss += xr[j] * xr[j];
        dot += dyr[j] * w[j] * xr[j];
      }
      const float inv = 1.0f / std::sqrt(ss / cols + eps);
      const float k = inv * inv * inv * dot / cols;
      for (int64_t j = 0; j < cols; ++j) dxr[j] = inv * w[j] * dyr[j] - xr[j] * k;
    }
  });
}

// Affine dequantization as MLX packs it: BITS-bit values (4 or 8) packed
// little-end first into uint32 words, one float32 scale and bias per
// `group` consecutive values of a row: w = scale * q + bias. BITS is a
// template argument so the unpacking loop has constant shifts and vectorises.
template <int BITS>
void dequantize_rows(const uint32_t* w, const float* scales, const float* biases,
                     float* out, int64_t rows, int64_t cols, int64_t group) {
  constexpr int per_word = 32 / BITS;
  constexpr uint32_t mask = (1u << BITS) - 1u;
  const int64_t groups = cols / group, words = cols / per_word;
  const int64_t words_per_group = group / per_word;
  parallel_rows(rows, rows * cols, [=](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r) {
      const uint32_t* wr = w + r * words;
      float* o = out + r * cols;
      for (int64_t g = 0; g < groups; ++g) {
        const float s = scales[r * groups + g], c = biases[r * groups + g];
        const uint32_t* wg = wr + g * words_per_group;
        float* og = o + g * group;
        for (int64_t k = 0; k < words_per_group; ++k) {
          const uint32_t v = wg[k];
          for (int e = 0; e < per_word; ++e) {
            og[k * per_word + e] = s * static_cast<float>((v >> (BITS * e)) & mask) + c;
          }
        }
      }
    }
  });
}

// y = x @ dequantize(w).T for a few rows of x (token-by-token generation): each
// packed word of a weight row is unpacked in registers and dotted with its values'
// x, so the packed weights are read once and no float32 copy of them is written
// (dequantizing SmolLM2-135M's weights for every generated token writes 0.5 GB).
// Per group, sum_j (s q_j + c) x_j = s (q . x) + c sum(x), with the sums of x per
// group computed once. Threads split the output features; a layer under 2^20 weights
// stays on one thread (a 1536 x 576 4-bit layer, one row: 0.23-0.24 ms on one thread,
// 0.29-0.32 ms on two, which pay for starting a thread per call).
constexpr int64_t kMatvecRows = 8;

constexpr int64_t kMaxWordsPerGroup = 64;  // groups of up to 512 4-bit or 256 8-bit values

// WPG: packed words per group when known at compile time (the common group sizes,
// so the per-group loop has a constant trip count), else 0 and `group` decides.
template <int BITS, int WPG>
void quantized_matmul_rows(const float* x, const uint32_t* w, const float* scales,
                           const float* biases, float* y, int64_t rows, int64_t outs,
                           int64_t cols, int64_t group) {
  constexpr int per_word = 32 / BITS;
  constexpr uint32_t mask = (1u << BITS) - 1u;
  const int64_t groups = cols / group, words = cols / per_word;
  const int64_t wpg = WPG ? WPG : group / per_word;
  // x with its columns dealt by position in the word: xt[r][e][k] = x[r][k*per_word + e],
  // so value e of every word meets its x with one constant shift, contiguously.
  std::vector<float> xt(rows * cols), xsum(rows * groups);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < words; ++k) {
      for (int e = 0; e < per_word; ++e) {
        xt[r * cols + e * words + k] = x[r * cols + k * per_word + e];
      }
    }
    for (int64_t g = 0; g < groups; ++g) {
      const float* xg = x + r * cols + g * group;
      float t = 0.0f;
      for (int64_t j = 0; j < group; ++j) t += xg[j];
      xsum[r * groups + g] = t;
    }
  }
  const float* xts = xt.data();
  const float* xs = xsum.data();
  parallel_rows(outs, outs * cols, [=](int64_t a, int64_t b) {
    std::vector<float> per_word_dots(words);
    float* d = per_word_dots.data();
    for (int64_t o = a; o < b; ++o) {
      const uint32_t* wo = w + o * words;
      const float* so = scales + o * groups;
      const float* co = biases + o * groups;
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = xts + r * cols;
        for (int64_t k = 0; k < words; ++k) {  // vectorised over words
          const uint32_t v = wo[k];
          float t = 0.0f;
          for (int e = 0; e < per_word; ++e) {
            t += static_cast<float>((v >> (BITS * e)) & mask) * xr[e * words + k];
          }
          d[k] = t;
        }
        // scale each group's word dots lane by lane (no sum inside a group), then
        // add the lanes and the biases' term once
        float lanes[WPG ? WPG : kMaxWordsPerGroup] = {};
        for (int64_t g = 0; g < groups; ++g) {
          const float sg = so[g];
          const float* dg = d + g * wpg;
          for (int64_t k = 0; k < wpg; ++k) lanes[k] += dg[k] * sg;
        }
        float acc = 0.0f;
        for (int64_t k = 0; k < wpg; ++k) acc += lanes[k];
        const float* xsr = xs + r * groups;
        for (int64_t g = 0; g < groups; ++g) acc += co[g] * xsr[g];
        y[r * outs + o] = acc;
      }
    }
  }, int64_t{1} << 20);
}

using QuantizedMatmulFn = void (*)(const float*, const uint32_t*, const float*,
                                   const float*, float*, int64_t, int64_t, int64_t, int64_t);

QuantizedMatmulFn quantized_matmul_kernel(int bits, int64_t group) {
  if (bits == 4) {
    switch (group) {
      case 32: return quantized_matmul_rows<4, 4>;
      case 64: return quantized_matmul_rows<4, 8>;
      case 128: return quantized_matmul_rows<4, 16>;
      default: return quantized_matmul_rows<4, 0>;
    }
  }
  switch (group) {
    case 32: return quantized_matmul_rows<8, 8>;
    case 64: return quantized_matmul_rows<8, 16>;
    case 128: return quantized_matmul_rows<8, 32>;
    default: return quantized_matmul_rows<8, 0>;
  }
}

// ------------------------------------------------------------------ attention

// Causal attention fused around the BLAS the process already uses: for each
// head, blocks of kAttnBlock queries multiply only the keys some row of the
// block sees (the causal diagonal and, with packed documents, the keys before
// the block's earliest document start are skipped), the softmax runs on the
// block while it is in cache, and the backward pass multiplies the same tiles.
// The (batch, head) pairs are split across the kernel's threads, each calling
// sgemm with OpenBLAS held at one thread for the kernel's duration, so the small
// products never wait on BLAS's own thread hand-offs. cblas_sgemm and OpenBLAS's
// thread count are looked up in the process (the library tscu loaded before MLX,
// which MLX's matmuls call too); without them Python keeps the MLX-op attention.

enum CblasOrder { kRowMajor = 101 };
enum CblasTranspose { kNoTrans = 111, kTrans = 112 };
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int,
                         const float*, int, float, float*, int);

struct Blas {
  SgemmFn sgemm = nullptr;
  void (*set_threads)(int) = nullptr;  // openblas_set_num_threads (process-wide)
  int (*get_threads)() = nullptr;      // openblas_get_num_threads
};

const Blas& blas() {
  static const Blas found = [] {
    Blas b;
    b.sgemm = reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "cblas_sgemm"));
    b.set_threads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT,
                                                          "openblas_set_num_threads"));
    b.get_threads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    return b;
  }();
  return found;
}

// OpenBLAS at one thread while an attention kernel runs, its count put back after.
// (OpenBLAS 0.3.31's openblas_set_num_threads_local changes the global count too,
// measured: so the process-wide setting, saved and restored.) tscu sets the count
// between steps (threads.py), never while a step's kernels run.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (depth_++ == 0) {
      saved_ = blas().get_threads();
      blas().set_threads(1);
    }
  }
  ~SingleThreadedBlas() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--depth_ == 0) blas().set_threads(saved_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  static inline std::mutex mutex_;
  static inline int depth_ = 0, saved_ = 1;
};

// Rows of queries per block: 32 measured 0.23-0.24 s for the real preset's 30 layers
// forward and backward, 16 and 64 0.25, 128 0.30 (the matmul form 0.41-0.43).
constexpr int64_t kAttnBlock = 32;

// C (m x n, ldc) = alpha * op(A) op(B) + beta * C, row-major.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                 float* c, int64_t ldc) {
  blas().sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans,
               static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
               static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
               static_cast<int>(ldc));
}

struct AttentionShape {
  int64_t batch, heads, kv_heads, queries, keys, dim;
  float scale;
  Visible vis;  // over rows of the probabilities (batch, heads, queries, keys)

  int64_t group() const { return heads / kv_heads; }
  // The keys [k0, k1) that some row of queries [r0, r1) of head row `row0`
  // (= (b * heads + h) * queries) sees.
  void tile(int64_t row0, int64_t r0, int64_t r1, int64_t& k0, int64_t& k1) const {
    k0 = keys;
    k1 = 0;
    for (int64_t r = r0; r < r1; ++r) {
      int64_t lo, hi;
      vis.range(row0 + r, lo, hi);
      k0 = std::min(k0, lo);
      k1 = std::max(k1, hi);
    }
  }
};

// Run f over units [0, units) on the kernel's threads, BLAS on one thread each.
template <class F>
void attention_units(int64_t units, F f) {
  SingleThreadedBlas single;
  parallel_rows(units, units, f, 0);
}

// out = softmax(scale q k^T + mask) v, probs kept for the backward pass.
void attention_forward(const float* q, const float* k, const float* v, float* out,
                       float* probs, const AttentionShape& s) {
  const int64_t L = s.queries, S = s.keys, D = s.dim;
  attention_units(s.batch * s.heads, [&](int64_t a, int64_t b) {
    for (int64_t unit = a; unit < b; ++unit) {
      int64_t batch = unit / s.heads, kv = (unit % s.heads) / s.group();
      const float* qh = q + unit * L * D;
      const float* kh = k + (batch * s.kv_heads + kv) * S * D;
      const float* vh = v + (batch * s.kv_heads + kv) * S * D;
      float* ph = probs + unit * L * S;
      float* oh = out + unit * L * D;
      for (int64_t r0 = 0; r0 < L; r0 += kAttnBlock) {
        int64_t r1 = std::min(L, r0 + kAttnBlock), rows = r1 - r0, k0, k1;
        s.tile(unit * L, r0, r1, k0, k1);
        gemm(false, true, rows, k1 - k0, D, s.scale, qh + r0 * D, D, kh + k0 * D, D, 0.0f,
             ph + r0 * S + k0, S);
        for (int64_t r = r0; r < r1; ++r) {
          int64_t lo, hi;
          s.vis.range(unit * L + r, lo, hi);
          softmax_row(ph + r * S, ph + r * S, lo, hi, S);
        }
        gemm(false, false, rows, D, k1 - k0, 1.0f, ph + r0 * S + k0, S, vh + k0 * D, D, 0.0f,
             oh + r0 * D, D);
      }
    }
  });
}

// dq, dk, dv of the forward above, from its probabilities and the output's cotangent.
void attention_backward(const float* q, const float* k, const float* v, const float* probs,
                        const float* dout, float* dq, float* dk, float* dv,
                        const AttentionShape& s) {
  const int64_t L = s.queries, S = s.keys, D = s.dim, G = s.group();
  // one unit per (batch, kv head): its group's query heads add into the same dk, dv
  attention_units(s.batch * s.kv_heads, [&](int64_t a, int64_t b) {
    std::vector<float> ds(static_cast<size_t>(kAttnBlock * S));
    for (int64_t unit = a; unit < b; ++unit) {
      const float* kh = k + unit * S * D;
      const float* vh = v + unit * S * D;
      float* dkh = dk + unit * S * D;
      float* dvh = dv + unit * S * D;
      std::fill(dkh, dkh + S * D, 0.0f);
      std::fill(dvh, dvh + S * D, 0.0f);
      for (int64_t g = 0; g < G; ++g) {
        int64_t head = unit * G + g;  // (batch * heads + h): kv heads own consecutive heads
        const float* qh = q + head * L * D;
        const float* ph = probs + head * L * S;
        const float* doh = dout + head * L * D;
        float* dqh = dq + head * L * D;
        for (int64_t r0 = 0; r0 < L; r0 += kAttnBlock) {
          int64_t r1 = std::min(L, r0 + kAttnBlock), rows = r1 - r0, k0, k1;
          s.tile(head * L, r0, r1, k0, k1);
          float* w = ds.data();  // row i of the block at w + i * S; keys k0..k1 used
          gemm(false, true, rows, k1 - k0, D, 1.0f, doh + r0 * D, D, vh + k0 * D, D, 0.0f,
               w + k0, S);
          for (int64_t r = r0; r < r1; ++r) {
            float* wr = w + (r - r0) * S;
            int64_t lo, hi;
            s.vis.range(head * L + r, lo, hi);
            softmax_grad_row(ph + r * S, wr, wr, lo, hi, s.scale);
            std::fill(wr + k0, wr + lo, 0.0f);
            std::fill(wr + hi, wr + k1, 0.0f);
          }
          gemm(false, false, rows, D, k1 - k0, 1.0f, w + k0, S, kh + k0 * D, D, 0.0f,
               dqh + r0 * D, D);
          gemm(true, false, k1 - k0, D, rows, 1.0f, w + k0, S, qh + r0 * D, D, 1.0f,
               dkh + k0 * D, D);
          gemm(true, false, k1 - k0, D, rows, 1.0f, ph + r0 * S + k0, S, doh + r0 * D, D,
               1.0f, dvh + k0 * D, D);
        }
      }
    }
  });
}

// ------------------------------------------------------------------ primitives

// Allocate the outputs, then run `work` on the stream's thread with the arrays
// kept alive for it.
template <class F>
void dispatch(mx::Stream stream, const std::vector<mx::array>& inputs,
              std::vector<mx::array>& outputs, F work) {
  for (auto& out : outputs) out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream);
  for (auto& in : inputs) encoder.set_input_array(in);
  for (auto& out : outputs) encoder.set_output_array(out);
  std::vector<mx::array> ins, outs;
  for (auto& in : inputs) ins.push_back(mx::array::unsafe_weak_copy(in));
  for (auto& out : outputs) outs.push_back(mx::array::unsafe_weak_copy(out));
  encoder.dispatch([ins = std::move(ins), outs = std::move(outs), work]() mutable {
    work(ins, outs);
  });
}

class NativeKernel : public mx::Primitive {
 public:
  NativeKernel(mx::Stream stream, int kind, int64_t param, float fparam = 0.0f)
      : mx::Primitive(stream), kind_(kind), param_(param), fparam_(fparam) {}

  void eval_cpu(const std::vector<mx::array>& inputs,
                std::vector<mx::array>& outputs) override {
    int kind = kind_;
    int64_t param = param_;
    float fparam = fparam_;
    dispatch(stream(), inputs, outputs,
             [kind, param, fparam](std::vector<mx::array>& in, std::vector<mx::array>& out) {
               run(kind, param, fparam, in, out);
             });
  }

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error("tscu native kernels run on the CPU only");
  }

  const char* name() const override {
    static const char* names[] = {"TscuSoftmax", "TscuSoftmaxGrad",
                                  "TscuCrossEntropy", "TscuCrossEntropyGrad",
                                  "TscuSwiglu", "TscuSwigluGrad", "TscuDequantize",
                                  "TscuRmsNorm", "TscuRmsNormGrad",
                                  "TscuSegmentSoftmax", "TscuSegmentSoftmaxGrad",
                                  "TscuQuantizedMatmul", "TscuAttention",
                                  "TscuAttentionGrad"};
    return names[kind_];
  }

  bool is_equivalent(const mx::Primitive& other) const override {
    auto& o = static_cast<const NativeKernel&>(other);
    return kind_ == o.kind_ && param_ == o.param_ && fparam_ == o.fparam_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    switch (kind_) {
      case CrossEntropy: return {{inputs[0].shape().begin(), inputs[0].shape().end() - 1}};
      case SwigluGrad: return {inputs[0].shape(), inputs[0].shape()};
      case Dequantize: {
        auto shape = inputs[0].shape();
        shape.back() = shape.back() * 32 / static_cast<int>(param_ % 256);
        return {shape};
      }
      case QuantizedMatmul: return {{inputs[0].shape(0), inputs[1].shape(0)}};
      case Attention: {
        auto probs = inputs[0].shape();
        probs.back() = inputs[1].shape(2);
        return {inputs[0].shape(), probs};
      }
      case AttentionGrad: return {inputs[0].shape(), inputs[1].shape(), inputs[2].shape()};
      default: return {inputs[0].shape()};
    }
  }

  enum { Softmax, SoftmaxGrad, CrossEntropy, CrossEntropyGrad, Swiglu, SwigluGrad,
         Dequantize, RmsNorm, RmsNormGrad, SegmentSoftmax, SegmentSoftmaxGrad,
         QuantizedMatmul, Attention, AttentionGrad };

 private:
  static void run(int kind, int64_t param, float fparam, std::vector<mx::array>& in,
                  std::vector<mx::array>& out) {
    const auto& x = in[0];
    int64_t cols = x.ndim() ? x.shape(-1) : 1;
    int64_t rows = cols ? static_cast<int64_t>(x.size()) / cols : 0;
    auto f = [](const mx::array& a) { return a.data<float>(); };
    // Segments: the starts come last, one per batch row and query (param = queries).
    auto segments = [&](const mx::array& starts) {
      Visible vis{starts.data<int32_t>(), param, cols, 1};
      int64_t batch = starts.size() / std::max<int64_t>(param, 1);
      vis.rows_per_batch = std::max<int64_t>(rows / std::max<int64_t>(batch, 1), 1);
      return vis;
    };
    switch (kind) {
      case Softmax:
        softmax_rows(f(x), out[0].data<float>(), rows, cols, Visible{nullptr, param, cols, 1});
        break;
      case SoftmaxGrad:
        softmax_grad_rows(f(x), f(in[1]), out[0].data<float>(), rows, cols,
                          Visible{nullptr, param, cols, 1});
        break;
      case SegmentSoftmax:
        softmax_rows(f(x), out[0].data<float>(), rows, cols, segments(in[1]));
        break;
      case SegmentSoftmaxGrad:
        softmax_grad_rows(f(x), f(in[1]), out[0].data<float>(), rows, cols,
                          segments(in[2]));
        break;
      case CrossEntropy:
        cross_entropy_rows(f(x), in[1].data<int32_t>(), out[0].data<float>(), rows,
                           cols);
        break;
      case CrossEntropyGrad:
        cross_entropy_grad_rows(f(x), in[1].data<int32_t>(), f(in[2]), f(in[3]),
                                out[0].data<float>(), rows, cols);
        break;
      case Swiglu:
        swiglu_rows(f(x), f(in[1]), out[0].data<float>(), x.size());
        break;
      case SwigluGrad:
        swiglu_grad_rows(f(x), f(in[1]), f(in[2]), out[0].data<float>(),
                         out[1].data<float>(), x.size());
        break;
      case RmsNorm:
        rms_norm_rows(f(x), f(in[1]), out[0].data<float>(), rows, cols, fparam);
        break;
      case RmsNormGrad:
        rms_norm_grad_rows(f(x), f(in[1]), f(in[2]), out[0].data<float>(), rows, cols,
                           fparam);
        break;
      case Dequantize: {  // param = group size * 256 + bits
        int64_t out_cols = out[0].shape(-1);
        if (param % 256 == 4) {
          dequantize_rows<4>(x.data<uint32_t>(), f(in[1]), f(in[2]), out[0].data<float>(),
                             rows, out_cols, param / 256);
        } else {
          dequantize_rows<8>(x.data<uint32_t>(), f(in[1]), f(in[2]), out[0].data<float>(),
                             rows, out_cols, param / 256);
        }
        break;
      }
      case QuantizedMatmul: {  // x, packed w, scales, biases; param as for Dequantize
        const auto& w = in[1];
        int64_t outs = w.shape(0), group = param / 256;
        auto qmm = quantized_matmul_kernel(static_cast<int>(param % 256), group);
        qmm(f(x), w.data<uint32_t>(), f(in[2]), f(in[3]), out[0].data<float>(), rows,
            outs, cols, group);
        break;
      }
      case Attention:  // q, k, v (+ starts); param = causal queries (0: none)
      case AttentionGrad: {  // q, k, v, probs, dout (+ starts)
        const auto &k = in[1];
        AttentionShape shape{x.shape(0), x.shape(1), k.shape(1), x.shape(2), k.shape(2),
                             x.shape(3), fparam, Visible{nullptr, param, k.shape(2), 1}};
        size_t plain = kind == Attention ? 3 : 5;
        if (in.size() > plain) {
          shape.vis.starts = in[plain].data<int32_t>();
          shape.vis.rows_per_batch = shape.heads * shape.queries;
        }
        if (kind == Attention) {
          attention_forward(f(x), f(k), f(in[2]), out[0].data<float>(), out[1].data<float>(),
                            shape);
        } else {
          attention_backward(f(x), f(k), f(in[2]), f(in[3]), f(in[4]), out[0].data<float>(),
                             out[1].data<float>(), out[2].data<float>(), shape);
        }
        break;
      }
    }
  }

  int kind_;
  int64_t param_;
  float fparam_;
};

// ------------------------------------------------------------------ ops

mx::Stream cpu_stream() {
  return mx::default_stream(mx::Device::cpu);
}

mx::array dense(const mx::array& a, const char* what) {
  if (a.dtype() != mx::float32) {
    throw std::invalid_argument(std::string("tscu native: ") + what + " must be float32");
  }
  return mx::contiguous(a, false, cpu_stream());
}

void same_shape(const mx::array& a, const mx::array& b, const char* what) {
  if (a.shape() != b.shape()) {
    throw std::invalid_argument(std::string("tscu native: ") + what + " shapes differ");
  }
}

// One target (and one loss, one cotangent) per row of the logits.
void per_row(const mx::array& logits, const mx::array& other, const char* what) {
  if (logits.ndim() < 1 || other.size() * logits.shape(-1) != logits.size()) {
    throw std::invalid_argument(std::string("tscu native: ") + what +
                                " must have one entry per row of the logits");
  }
}

std::vector<mx::array> make(int kind, int64_t param, std::vector<mx::Shape> shapes,
                            std::vector<mx::array> inputs, float fparam = 0.0f) {
  auto s = cpu_stream();
  std::vector<mx::Dtype> dtypes(shapes.size(), mx::float32);
  return mx::array::make_arrays(std::move(shapes), dtypes,
                                std::make_shared<NativeKernel>(s, kind, param, fparam),
                                std::move(inputs));
}

// A causal block of `queries` rows needs at least that many columns: with more
// queries than keys the first rows would see a negative number of columns and
// the kernels would write before their row.
void check_queries(const mx::array& scores, int64_t queries) {
  if (scores.ndim() < 1) {
    throw std::invalid_argument("tscu native: scores need at least one axis");
  }
  if (queries < 0 || queries > scores.shape(-1)) {
    throw std::invalid_argument("tscu native: queries must be between 0 and the number of "
                                "columns (" + std::to_string(scores.shape(-1)) + "), got " +
                                std::to_string(queries));
  }
}

mx::array softmax(const mx::array& x, int64_t queries) {
  check_queries(x, queries);
  auto d = dense(x, "scores");
  return make(NativeKernel::Softmax, queries, {d.shape()}, {d})[0];
}

mx::array softmax_grad(const mx::array& y, const mx::array& dy, int64_t queries) {
  same_shape(y, dy, "probabilities and cotangent");
  check_queries(y, queries);
  auto a = dense(y, "probabilities"), b = dense(dy, "cotangent");
  return make(NativeKernel::SoftmaxGrad, queries, {a.shape()}, {a, b})[0];
}

// Where each query's document starts: int32 (batch, queries), and the scores'
// rows must be a whole number of (heads x queries) blocks per batch row.
mx::array starts_of(int64_t batch, int64_t queries, const mx::array& starts) {
  if (starts.ndim() != 2 || starts.shape(1) != queries || starts.shape(0) != batch) {
    throw std::invalid_argument(
        "tscu native: segment starts must be (batch, queries) of the scores");
  }
  return mx::contiguous(mx::astype(starts, mx::int32, cpu_stream()), false, cpu_stream());
}

mx::array starts_of(const mx::array& scores, const mx::array& starts) {
  if (scores.ndim() < 2) {
    throw std::invalid_argument(
        "tscu native: segment starts must be (batch, queries) of the scores");
  }
  return starts_of(scores.shape(0), scores.shape(-2), starts);
}

mx::array segment_softmax(const mx::array& x, const mx::array& starts) {
  auto d = dense(x, "scores");
  return make(NativeKernel::SegmentSoftmax, starts.shape(-1), {d.shape()},
              {d, starts_of(d, starts)})[0];
}

mx::array segment_softmax_grad(const mx::array& y, const mx::array& dy,
                               const mx::array& starts) {
  same_shape(y, dy, "probabilities and cotangent");
  auto a = dense(y, "probabilities"), b = dense(dy, "cotangent");
  return make(NativeKernel::SegmentSoftmaxGrad, starts.shape(-1), {a.shape()},
              {a, b, starts_of(a, starts)})[0];
}

mx::array targets_of(const mx::array& t) {
  return mx::contiguous(mx::astype(t, mx::int32, cpu_stream()), false, cpu_stream());
}

mx::array cross_entropy(const mx::array& logits, const mx::array& targets) {
  per_row(logits, targets, "targets");
  auto z = dense(logits, "logits");
  mx::Shape shape(z.shape().begin(), z.shape().end() - 1);
  return make(NativeKernel::CrossEntropy, 0, {shape}, {z, targets_of(targets)})[0];
}

mx::array cross_entropy_grad(const mx::array& logits, const mx::array& targets,
                             const mx::array& loss, const mx::array& cotangent) {
  per_row(logits, targets, "targets");
  per_row(logits, loss, "loss");
  per_row(logits, cotangent, "cotangent");
  auto z = dense(logits, "logits");
  return make(NativeKernel::CrossEntropyGrad, 0, {z.shape()},
              {z, targets_of(targets), dense(loss, "loss"),
               dense(cotangent, "cotangent")})[0];
}

mx::array swiglu(const mx::array& gate, const mx::array& up) {
  same_shape(gate, up, "gate and up");
  auto g = dense(gate, "gate"), u = dense(up, "up");
  return make(NativeKernel::Swiglu, 0, {g.shape()}, {g, u})[0];
}

std::tuple<mx::array, mx::array> swiglu_grad(const mx::array& gate, const mx::array& up,
                                             const mx::array& cotangent) {
  same_shape(gate, up, "gate and up");
  same_shape(gate, cotangent, "gate and cotangent");
  auto g = dense(gate, "gate");
  auto outs = make(NativeKernel::SwigluGrad, 0, {g.shape(), g.shape()},
                   {g, dense(up, "up"), dense(cotangent, "cotangent")});
  return {outs[0], outs[1]};
}

void check_norm(const mx::array& x, const mx::array& w) {
  if (x.ndim() < 1 || w.ndim() != 1 || w.shape(0) != x.shape(-1)) {
    throw std::invalid_argument("tscu native: the norm's weight must match the last axis");
  }
}

mx::array rms_norm(const mx::array& x, const mx::array& weight, float eps) {
  check_norm(x, weight);
  auto d = dense(x, "input");
  return make(NativeKernel::RmsNorm, 0, {d.shape()}, {d, dense(weight, "weight")}, eps)[0];
}

mx::array rms_norm_grad(const mx::array& x, const mx::array& weight,
                        const mx::array& cotangent, float eps) {
  check_norm(x, weight);
  same_shape(x, cotangent, "input and cotangent");
  auto d = dense(x, "input");
  return make(NativeKernel::RmsNormGrad, 0, {d.shape()},
              {d, dense(weight, "weight"), dense(cotangent, "cotangent")}, eps)[0];
}

// The columns of MLX-packed weights `w`, after checking that the packing, the scales
// and the biases agree.
int packed_columns(const mx::array& w, const mx::array& scales, const mx::array& biases,
                   int group_size, int bits) {
  if (bits != 4 && bits != 8) throw std::invalid_argument("tscu native: bits must be 4 or 8");
  if (w.dtype() != mx::uint32 || w.ndim() != 2) {
    throw std::invalid_argument("tscu native: packed weights must be 2-D uint32");
  }
  int cols = w.shape(1) * (32 / bits);
  if (group_size <= 0 || cols % group_size || group_size % (32 / bits) ||
      scales.ndim() != 2 || scales.shape(0) != w.shape(0) ||
      scales.shape(1) != cols / group_size || biases.shape() != scales.shape()) {
    throw std::invalid_argument("tscu native: scales/biases do not match the weights");
  }
  return cols;
}

mx::array dequantize(const mx::array& w, const mx::array& scales,
                     const mx::array& biases, int group_size, int bits) {
  int cols = packed_columns(w, scales, biases, group_size, bits);
  auto s = cpu_stream();
  auto packed = mx::contiguous(w, false, s);
  return make(NativeKernel::Dequantize, int64_t{group_size} * 256 + bits,
              {{w.shape(0), cols}}, {packed, dense(scales, "scales"), dense(biases, "biases")})[0];
}

mx::array quantized_matmul(const mx::array& x, const mx::array& w, const mx::array& scales,
                           const mx::array& biases, int group_size, int bits) {
  if (x.ndim() != 2 || x.shape(0) < 1 || x.shape(0) > kMatvecRows) {
    throw std::invalid_argument("tscu native: quantized_matmul takes 1 to " +
                                std::to_string(kMatvecRows) + " rows of x (2-D)");
  }
  if (x.shape(1) != packed_columns(w, scales, biases, group_size, bits)) {
    throw std::invalid_argument("tscu native: x and the weights' columns differ");
  }
  if (group_size / (32 / bits) > kMaxWordsPerGroup) {
    throw std::invalid_argument("tscu native: quantized_matmul takes groups of at most " +
                                std::to_string(kMaxWordsPerGroup * 32 / bits) + " values");
  }
  auto s = cpu_stream();
  return make(NativeKernel::QuantizedMatmul, int64_t{group_size} * 256 + bits,
              {{x.shape(0), w.shape(0)}},
              {dense(x, "x"), mx::contiguous(w, false, s), dense(scales, "scales"),
               dense(biases, "biases")})[0];
}

bool attention_available() {
  return blas().sgemm && blas().set_threads && blas().get_threads;
}

// q (batch, heads, queries, dim), k and v (batch, kv_heads, keys, dim), heads a
// multiple of kv_heads; causal needs queries <= keys; starts as segment_softmax's.
void check_attention(const mx::array& q, const mx::array& k, const mx::array& v, bool causal,
                     const std::optional<mx::array>& starts) {
  if (!attention_available()) {
    throw std::invalid_argument("tscu native: attention needs cblas_sgemm and "
                                "openblas_set_num_threads in the process");
  }
  if (q.ndim() != 4 || k.ndim() != 4 || k.shape() != v.shape() || k.shape(0) != q.shape(0) ||
      k.shape(3) != q.shape(3) || k.shape(1) < 1 || q.shape(1) % k.shape(1) ||
      k.shape(2) < 1 || q.shape(2) < 1) {
    throw std::invalid_argument("tscu native: attention takes q (batch, heads, queries, dim) "
                                "and k, v (batch, kv_heads, keys, dim), heads a multiple of "
                                "kv_heads");
  }
  if ((causal || starts) && q.shape(2) > k.shape(2)) {
    throw std::invalid_argument("tscu native: causal attention needs queries <= keys");
  }
}

std::vector<mx::array> attention(const mx::array& q, const mx::array& k, const mx::array& v,
                                 float scale, bool causal, std::optional<mx::array> starts) {
  check_attention(q, k, v, causal, starts);
  std::vector<mx::array> inputs{dense(q, "queries"), dense(k, "keys"), dense(v, "values")};
  mx::Shape probs = q.shape();
  probs.back() = k.shape(2);
  if (starts) inputs.push_back(starts_of(q.shape(0), q.shape(2), *starts));
  int64_t queries = (causal || starts) ? q.shape(2) : 0;
  return make(NativeKernel::Attention, queries, {q.shape(), probs}, inputs, scale);
}

std::vector<mx::array> attention_grad(const mx::array& q, const mx::array& k,
                                      const mx::array& v, const mx::array& probs,
                                      const mx::array& dout, float scale, bool causal,
                                      std::optional<mx::array> starts) {
  check_attention(q, k, v, causal, starts);
  mx::Shape shape = q.shape();
  shape.back() = k.shape(2);
  if (probs.shape() != shape || dout.shape() != q.shape()) {
    throw std::invalid_argument("tscu native: attention_grad's probs or cotangent do not "
                                "match q, k, v");
  }
  std::vector<mx::array> inputs{dense(q, "queries"), dense(k, "keys"), dense(v, "values"),
                                dense(probs, "probabilities"), dense(dout, "cotangent")};
  if (starts) inputs.push_back(starts_of(q.shape(0), q.shape(2), *starts));
  int64_t queries = (causal || starts) ? q.shape(2) : 0;
  return make(NativeKernel::AttentionGrad, queries, {q.shape(), k.shape(), v.shape()}, inputs,
              scale);
}

}  // namespace tscu

NB_MODULE(_native, m) {
  m.doc() = "tscu's multi-threaded CPU kernels as MLX primitives (float32)";
  m.def("softmax", &tscu::softmax, nb::arg("scores"), nb::arg("queries") = 0,
        "Softmax over the last axis; with queries > 0, causal over blocks of that "
        "many rows (masked entries are 0).");
  m.def("softmax_grad", &tscu::softmax_grad, nb::arg("probs"), nb::arg("cotangent"),
        nb::arg("queries") = 0);
  m.def("segment_softmax", &tscu::segment_softmax, nb::arg("scores"), nb::arg("starts"),
        "Causal softmax over the last axis where each query also sees no key before "
        "starts[batch, query] (its document's first token); masked entries are 0.");
  m.def("segment_softmax_grad", &tscu::segment_softmax_grad, nb::arg("probs"),
        nb::arg("cotangent"), nb::arg("starts"));
  m.def("cross_entropy", &tscu::cross_entropy, nb::arg("logits"), nb::arg("targets"),
        "Per-row cross-entropy in nats.");
  m.def("cross_entropy_grad", &tscu::cross_entropy_grad, nb::arg("logits"),
        nb::arg("targets"), nb::arg("loss"), nb::arg("cotangent"));
  m.def("swiglu", &tscu::swiglu, nb::arg("gate"), nb::arg("up"));
  m.def("swiglu_grad", &tscu::swiglu_grad, nb::arg("gate"), nb::arg("up"),
        nb::arg("cotangent"));
  m.def("rms_norm", &tscu::rms_norm, nb::arg("x"), nb::arg("weight"), nb::arg("eps"),
        "x / sqrt(mean(x**2, -1) + eps) * weight.");
  m.def("rms_norm_grad", &tscu::rms_norm_grad, nb::arg("x"), nb::arg("weight"),
        nb::arg("cotangent"), nb::arg("eps"));
  m.def("dequantize", &tscu::dequantize, nb::arg("weight"), nb::arg("scales"),
        nb::arg("biases"), nb::arg("group_size"), nb::arg("bits"),
        "Affine dequantization of MLX-packed 4- or 8-bit weights to float32.");
  m.def("quantized_matmul", &tscu::quantized_matmul, nb::arg("x"), nb::arg("weight"),
        nb::arg("scales"), nb::arg("biases"), nb::arg("group_size"), nb::arg("bits"),
        "x @ dequantize(weight).T for 1 to 8 rows of float32 x, never writing the "
        "float32 weights (affine 4- or 8-bit).");
  m.def("attention", &tscu::attention, nb::arg("queries"), nb::arg("keys"), nb::arg("values"),
        nb::arg("scale"), nb::arg("causal"), nb::arg("starts") = nb::none(),
        "softmax(scale q k^T + mask) v and the probabilities, causal (and, with starts, "
        "per document) in blocks of queries that multiply only the keys they see.");
  m.def("attention_grad", &tscu::attention_grad, nb::arg("queries"), nb::arg("keys"),
        nb::arg("values"), nb::arg("probs"), nb::arg("cotangent"), nb::arg("scale"),
        nb::arg("causal"), nb::arg("starts") = nb::none());
  m.def("attention_available", &tscu::attention_available);
  m.def("set_threads", [](int n) { tscu::g_threads.store(std::max(1, n)); },
        nb::arg("threads"));
  m.def("threads", []() { return tscu::g_threads.load(); });
}
