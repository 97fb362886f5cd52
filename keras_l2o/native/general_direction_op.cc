// The `general` rule's accumulators, scale-free channels and per-coordinate MLP of a
// matrix (keras_l2o/rules/general.py, `GeneralRule.direction`) as one CPU kernel.
//
// The reference is a chain of ~60 TensorFlow ops, each streaming one or more
// [15, ..., r, c] tensors through memory. This kernel computes the same function
// in three passes over the matrix, each reading the gradient, the parameter and
// the state once and keeping every channel in registers:
//
// 1. the new momenta (0.9 / 0.99 / 0.999) and second moment (0.95), written out;
//    per slice the row and column means of g^2 and the sums of squares of the
//    channels that need no normalised second moment (g, the parameter, momenta);
// 2. (after the small row / column work: factored EMAs, their relative values,
//    the row / column channels) the sums of squares of the 10 channels divided
//    by a second moment;
// 3. every channel divided by its RMS, the MLP (ReLU hidden layers, a linear skip
//    and output), the raw direction d written out.
//
// Leading axes are a batch of matrices (a conv kernel's spatial taps): every
// reduction is per slice, as in the reference. Reductions sum in double in a
// fixed order (blocks of rows, then blocks in order), so the result does not
// depend on the thread count. The result differs from the reference by rounding
// only: the MLP's sums in another order with fused multiply-adds (as oneDNN's
// matmuls), the reductions in double. tests/native/test_native_general.py bounds the
// difference. Compiled with -ffp-contract=off (build.py), so every other product
// and sum rounds where the reference rounds it; 16 columns at a time fill one
// AVX-512 register.
//
// Supported: float32, 1 to kMaxLayers hidden layers of at most kMaxWidth units.
// The Python side (keras_l2o/native/general_rule.py) checks this and otherwise
// leaves the step to the reference path. Built by keras_l2o/native/build.py.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

#if !defined(__AVX512F__)
#error "general_direction_op.cc needs AVX-512 (build.py compiles it with -march=native)"
#endif

namespace keras_l2o {
namespace {

using ::tensorflow::OpInputList;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;

constexpr int kLanes = 16;       // columns per block (one AVX-512 register of floats)
constexpr int kMaxWidth = 32;    // units per hidden layer
constexpr int kMaxLayers = 4;    // hidden layers
constexpr int kPerCoordinate = 15;  // channels 0-14 of general_features.CHANNELS
constexpr int kChannels = 21;       // + 3 row and 3 column channels
constexpr int kDecays = 3;
constexpr float kTiny = 1e-30f;
constexpr double kEpsRel = 1e-10;
// 1 - decay, rounded to float as `general_features.ema` rounds it.
const float kMomentumRate[kDecays] = {static_cast<float>(1.0 - 0.9), static_cast<float>(1.0 - 0.99),
                                      static_cast<float>(1.0 - 0.999)};
const float kVelocityRate = static_cast<float>(1.0 - 0.95);
const float kFactoredRate[kDecays] = {static_cast<float>(1.0 - 0.9), static_cast<float>(1.0 - 0.99),
                                      static_cast<float>(1.0 - 0.999)};

struct Net {
  int num_layers = 0;
  int width[kMaxLayers] = {};
  const float* kernel[kMaxLayers] = {};  // layer 0: [21 (+ 9), width0]; others [width_{l-1}, width_l]
  const float* bias[kMaxLayers] = {};
  const float* skip = nullptr;        // [21 (+ 9)]
  const float* out_kernel = nullptr;  // [width_last]
  float out_bias = 0.0f;
  const float* time_hidden = nullptr;  // [width0]: the time features' product with the kernel
  float time_skip = 0.0f;
  bool has_time = false;
};

// Everything one matrix (slice) needs between the passes.
struct Slice {
  int64_t r = 0, c = 0;
  // Pass 1 sums: v, and the squares of g, the parameter, momenta.
  double sum_v = 0, sq_g = 0, sq_p = 0, sq_m[kDecays] = {};
  std::vector<double> row_mean_sq;  // [r]: mean_j g^2
  std::vector<double> col_sum_sq;   // [c]: sum_i g^2
  // After pass 1.
  float rho_floor = 0, fac_floor[kDecays] = {};
  std::vector<float> row_rel, cols;  // [3 * r], [3 * c] (the new factored EMAs: cols as they are)
  // Pass 2 sums of squares: g rho, m_k rho, g fac_k, m_k fac_k.
  double sq2[10] = {};
  float inv_rms[kPerCoordinate] = {};
  // Per-row and per-column terms of the first layer ([width0, r], [width0, c]) and of the skip.
  std::vector<float> row_term, col_term, skip_row, skip_col;
};

// A range of rows of one slice: the unit of parallel work.
struct Chunk {
  int64_t slice, row_begin, row_end;
  double sum_v = 0, sq_g = 0, sq_p = 0, sq_m[kDecays] = {};
  double sq2[10] = {};
  std::vector<double> col_sum_sq;
};

struct Buffers {
  const float *grad, *var, *m_old, *v_old, *rows_old, *cols_old;
  float *m, *v, *rows, *cols, *d;
  int64_t slices, r, c;
  int64_t matrix() const { return r * c; }
  int64_t total() const { return slices * r * c; }
};

float Rsqrt(float x) { return 1.0f / std::sqrt(x); }

// Pass 1 on one chunk: new momenta and second moment, row / column sums of g^2, sums of squares.
void Accumulate(const Buffers& b, Chunk& chunk, std::vector<double>& row_mean_sq) {
  const int64_t c = b.c;
  chunk.col_sum_sq.assign(c, 0.0);
  for (int64_t i = chunk.row_begin; i < chunk.row_end; ++i) {
    const int64_t base = chunk.slice * b.matrix() + i * c;
    double row_sq = 0;
    for (int64_t j = 0; j < c; ++j) {
      const int64_t at = base + j;
      const float g = b.grad[at], p = b.var[at], g2 = g * g;
      for (int k = 0; k < kDecays; ++k) {
        const float old = b.m_old[k * b.total() + at];
        const float m = old + (g - old) * kMomentumRate[k];
        b.m[k * b.total() + at] = m;
        chunk.sq_m[k] += static_cast<double>(m) * m;
      }
      const float v = b.v_old[at] + (g2 - b.v_old[at]) * kVelocityRate;
      b.v[at] = v;
      chunk.sum_v += v;
      chunk.sq_g += static_cast<double>(g2);
      chunk.sq_p += static_cast<double>(p) * p;
      row_sq += g2;
      chunk.col_sum_sq[j] += g2;
    }
    row_mean_sq[i] = row_sq / static_cast<double>(c);
  }
}

__m512 Rsqrt16(__m512 x) { return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_sqrt_ps(x)); }

// The 15 per-coordinate channels (unnormalised) of up to 16 columns from `at` (row i,
// column j), lanes outside `mask` zero.
inline void Channels(const Buffers& b, const Slice& s, int64_t at, int64_t i, int64_t j,
                     __mmask16 mask, __m512 f[kPerCoordinate]) {
  const __m512 g = _mm512_maskz_loadu_ps(mask, b.grad + at);
  const __m512 rho = Rsqrt16(_mm512_add_ps(_mm512_maskz_loadu_ps(mask, b.v + at),
                                           _mm512_set1_ps(s.rho_floor)));
  f[0] = g;
  f[1] = _mm512_maskz_loadu_ps(mask, b.var + at);
  f[5] = _mm512_mul_ps(g, rho);
  for (int k = 0; k < kDecays; ++k) {
    const __m512 m = _mm512_maskz_loadu_ps(mask, b.m + k * b.total() + at);
    const __m512 factored = _mm512_mul_ps(_mm512_set1_ps(s.row_rel[k * s.r + i]),
                                          _mm512_maskz_loadu_ps(mask, &s.cols[k * s.c + j]));
    const __m512 fac = Rsqrt16(_mm512_add_ps(factored, _mm512_set1_ps(s.fac_floor[k])));
    f[2 + k] = m;
    f[6 + k] = _mm512_mul_ps(m, rho);
    f[9 + k] = _mm512_mul_ps(g, fac);
    f[12 + k] = _mm512_mul_ps(m, fac);
  }
}

__mmask16 Mask(int64_t n) { return n >= kLanes ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1); }

// Pass 2 on one chunk: sums of squares of the 10 channels divided by a second moment.
void AccumulateScaled(const Buffers& b, const Slice& s, Chunk& chunk) {
  __m512d lo[10], hi[10];
  for (int q = 0; q < 10; ++q) lo[q] = hi[q] = _mm512_setzero_pd();
  __m512 f[kPerCoordinate];
  for (int64_t i = chunk.row_begin; i < chunk.row_end; ++i) {
    const int64_t base = chunk.slice * b.matrix() + i * b.c;
    for (int64_t j = 0; j < b.c; j += kLanes) {
      Channels(b, s, base + j, i, j, Mask(b.c - j), f);
      for (int q = 0; q < 10; ++q) {
        const __m512 sq = _mm512_mul_ps(f[5 + q], f[5 + q]);
        lo[q] = _mm512_add_pd(lo[q], _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
        hi[q] = _mm512_add_pd(hi[q], _mm512_cvtps_pd(_mm256_castpd_ps(
                                         _mm512_extractf64x4_pd(_mm512_castps_pd(sq), 1))));
      }
    }
  }
  for (int q = 0; q < 10; ++q) chunk.sq2[q] += _mm512_reduce_add_pd(_mm512_add_pd(lo[q], hi[q]));
}

// `a + w * x` as one fused multiply-add (one rounding, as TensorFlow's CPU matmuls).
inline __m512 MulAdd(__m512 a, float w, __m512 x) {
  return _mm512_fmadd_ps(_mm512_set1_ps(w), x, a);
}

// Pass 3 on one block of up to kLanes columns of row i: the MLP, d written out.
void Block(const Buffers& b, const Slice& s, const Net& net, int64_t slice, int64_t i, int64_t j0,
           __mmask16 mask) {
  const int64_t base = slice * b.matrix() + i * b.c + j0;
  __m512 f[kPerCoordinate];
  Channels(b, s, base, i, j0, mask, f);
  for (int q = 0; q < kPerCoordinate; ++q) f[q] = _mm512_mul_ps(f[q], _mm512_set1_ps(s.inv_rms[q]));
  // First hidden layer: ((W^T f + bias) + (row term + column term)) (+ time term), ReLU.
  __m512 h[2][kMaxWidth];
  const __m512 zero = _mm512_setzero_ps();
  const int w0 = net.width[0];
  for (int u = 0; u < w0; ++u) {
    __m512 acc = zero;
    for (int q = 0; q < kPerCoordinate; ++q) acc = MulAdd(acc, net.kernel[0][q * w0 + u], f[q]);
    const __m512 rows_cols = _mm512_add_ps(_mm512_set1_ps(s.row_term[u * s.r + i]),
                                           _mm512_maskz_loadu_ps(mask, &s.col_term[u * s.c + j0]));
    __m512 x = _mm512_add_ps(_mm512_add_ps(acc, _mm512_set1_ps(net.bias[0][u])), rows_cols);
    if (net.has_time) x = _mm512_add_ps(x, _mm512_set1_ps(net.time_hidden[u]));
    h[0][u] = _mm512_max_ps(x, zero);
  }
  int cur = 0;
  for (int layer = 1; layer < net.num_layers; ++layer) {
    const int in = net.width[layer - 1], out = net.width[layer];
    for (int u = 0; u < out; ++u) {
      __m512 acc = zero;
      for (int q = 0; q < in; ++q) acc = MulAdd(acc, net.kernel[layer][q * out + u], h[cur][q]);
      h[1 - cur][u] = _mm512_max_ps(_mm512_add_ps(acc, _mm512_set1_ps(net.bias[layer][u])), zero);
    }
    cur = 1 - cur;
  }
  // Output: (skip . f + out_bias + (row + column terms) (+ time)) + out_kernel . h.
  __m512 skip = zero, mlp = zero;
  for (int q = 0; q < kPerCoordinate; ++q) skip = MulAdd(skip, net.skip[q], f[q]);
  for (int q = 0; q < net.width[net.num_layers - 1]; ++q) mlp = MulAdd(mlp, net.out_kernel[q], h[cur][q]);
  const __m512 rows_cols = _mm512_add_ps(_mm512_set1_ps(s.skip_row[i]),
                                         _mm512_maskz_loadu_ps(mask, &s.skip_col[j0]));
  __m512 x = _mm512_add_ps(_mm512_add_ps(skip, _mm512_set1_ps(net.out_bias)), rows_cols);
  if (net.has_time) x = _mm512_add_ps(x, _mm512_set1_ps(net.time_skip));
  _mm512_mask_storeu_ps(b.d + base, mask, _mm512_add_ps(x, mlp));
}

// `x * rsqrt(mean(x^2) + TINY)` over a small vector, in place.
void RmsNormalise(float* x, int64_t n) {
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(x[i]) * x[i];
  const float scale = Rsqrt(static_cast<float>(sq / n) + kTiny);
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

// `values[k] + (mean - values[k]) * rate[k]` for the 3 factored EMAs, then their relative values.
void FactoredEmas(const float* old, const double* means, int64_t n, float* out, float* rel) {
  for (int k = 0; k < kDecays; ++k) {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float prev = old[k * n + i];
      out[k * n + i] = prev + (static_cast<float>(means[i]) - prev) * kFactoredRate[k];
      total += out[k * n + i];
    }
    const float denominator = static_cast<float>(total / n) + kTiny;
    for (int64_t i = 0; i < n; ++i) rel[k * n + i] = out[k * n + i] / denominator;
  }
}

// The row (or column) channels rsqrt(rel + TINY), RMS-normalised, times the layer's 3 weights.
void Terms(const float* rel, int64_t n, const float* kernel, int width, int first_row,
           float* terms) {
  std::vector<float> channel(kDecays * n);
  for (int64_t i = 0; i < kDecays * n; ++i) channel[i] = Rsqrt(rel[i] + kTiny);
  for (int k = 0; k < kDecays; ++k) RmsNormalise(&channel[k * n], n);
  for (int u = 0; u < width; ++u)
    for (int64_t i = 0; i < n; ++i) {
      float x = 0.0f;
      for (int k = 0; k < kDecays; ++k) x += kernel[(first_row + k) * width + u] * channel[k * n + i];
      terms[u * n + i] = x;
    }
}

// Between passes 1 and 2: floors, factored EMAs, row / column channels and terms.
void Prepare(const Buffers& b, const Net& net, int64_t slice, Slice& s) {
  const int64_t r = b.r, c = b.c, n = r * c;
  s.rho_floor = static_cast<float>(kEpsRel * static_cast<float>(s.sum_v / n)) + kTiny;
  std::vector<double> col_mean(c);
  for (int64_t j = 0; j < c; ++j) col_mean[j] = s.col_sum_sq[j] / r;
  // rows [3, slices, r] and cols [3, slices, c]: gather this slice's rows of each decay.
  std::vector<float> old_rows(kDecays * r), old_cols(kDecays * c), new_rows(kDecays * r);
  std::vector<float> col_rel(kDecays * c);
  for (int k = 0; k < kDecays; ++k) {
    std::memcpy(&old_rows[k * r], b.rows_old + (k * b.slices + slice) * r, r * sizeof(float));
    std::memcpy(&old_cols[k * c], b.cols_old + (k * b.slices + slice) * c, c * sizeof(float));
  }
  s.row_rel.resize(kDecays * r);
  s.cols.resize(kDecays * c);
  FactoredEmas(old_rows.data(), s.row_mean_sq.data(), r, new_rows.data(), s.row_rel.data());
  FactoredEmas(old_cols.data(), col_mean.data(), c, s.cols.data(), col_rel.data());
  for (int k = 0; k < kDecays; ++k) {
    std::memcpy(b.rows + (k * b.slices + slice) * r, &new_rows[k * r], r * sizeof(float));
    std::memcpy(b.cols + (k * b.slices + slice) * c, &s.cols[k * c], c * sizeof(float));
    // mean over the matrix of row_rel_i * cols_j = mean(row_rel) * mean(cols).
    double rel_total = 0, col_total = 0;
    for (int64_t i = 0; i < r; ++i) rel_total += s.row_rel[k * r + i];
    for (int64_t j = 0; j < c; ++j) col_total += s.cols[k * c + j];
    s.fac_floor[k] = static_cast<float>(kEpsRel * static_cast<float>(rel_total / r * (col_total / c))) + kTiny;
  }
  const int w0 = net.width[0];
  s.row_term.resize(w0 * r);
  s.col_term.resize(w0 * c);
  s.skip_row.resize(r);
  s.skip_col.resize(c);
  Terms(s.row_rel.data(), r, net.kernel[0], w0, kPerCoordinate, s.row_term.data());
  Terms(col_rel.data(), c, net.kernel[0], w0, kPerCoordinate + kDecays, s.col_term.data());
  Terms(s.row_rel.data(), r, net.skip, 1, kPerCoordinate, s.skip_row.data());
  Terms(col_rel.data(), c, net.skip, 1, kPerCoordinate + kDecays, s.skip_col.data());
}

float InvRms(double sum_sq, int64_t n) { return Rsqrt(static_cast<float>(sum_sq / n) + kTiny); }

void Run(OpKernelContext* ctx, const Buffers& b, const Net& net) {
  // Chunks of rows: about 16 in all, at least one per slice.
  const int64_t per_slice = std::max<int64_t>(1, std::min<int64_t>(b.r, (16 + b.slices - 1) / b.slices));
  const int64_t rows_per_chunk = (b.r + per_slice - 1) / per_slice;
  std::vector<Chunk> chunks;
  for (int64_t slice = 0; slice < b.slices; ++slice)
    for (int64_t i = 0; i < b.r; i += rows_per_chunk)
      chunks.push_back({slice, i, std::min(b.r, i + rows_per_chunk)});
  std::vector<Slice> slices(b.slices);
  for (auto& s : slices) {
    s.r = b.r;
    s.c = b.c;
    s.row_mean_sq.assign(b.r, 0.0);
  }
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t num_chunks = chunks.size();
  const int64_t chunk_size = rows_per_chunk * b.c;
  pool->ParallelFor(num_chunks, 30 * chunk_size, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) Accumulate(b, chunks[q], slices[chunks[q].slice].row_mean_sq);
  });
  for (auto& chunk : chunks) {  // in order: the sums do not depend on the threads
    Slice& s = slices[chunk.slice];
    s.sum_v += chunk.sum_v;
    s.sq_g += chunk.sq_g;
    s.sq_p += chunk.sq_p;
    for (int k = 0; k < kDecays; ++k) s.sq_m[k] += chunk.sq_m[k];
    if (s.col_sum_sq.empty()) s.col_sum_sq.assign(b.c, 0.0);
    for (int64_t j = 0; j < b.c; ++j) s.col_sum_sq[j] += chunk.col_sum_sq[j];
  }
  for (int64_t slice = 0; slice < b.slices; ++slice) Prepare(b, net, slice, slices[slice]);
  pool->ParallelFor(num_chunks, 40 * chunk_size, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) AccumulateScaled(b, slices[chunks[q].slice], chunks[q]);
  });
  const int64_t n = b.matrix();
  for (auto& chunk : chunks)
    for (int q = 0; q < 10; ++q) slices[chunk.slice].sq2[q] += chunk.sq2[q];
  for (auto& s : slices) {
    s.inv_rms[0] = InvRms(s.sq_g, n);
    s.inv_rms[1] = InvRms(s.sq_p, n);
    for (int k = 0; k < kDecays; ++k) s.inv_rms[2 + k] = InvRms(s.sq_m[k], n);
    for (int q = 0; q < 10; ++q) s.inv_rms[5 + q] = InvRms(s.sq2[q], n);
  }
  const int64_t flops = 2 * (kChannels + 1) * net.width[0] + 300;
  pool->ParallelFor(num_chunks, flops * chunk_size, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const Chunk& chunk = chunks[q];
      for (int64_t i = chunk.row_begin; i < chunk.row_end; ++i)
        for (int64_t j = 0; j < b.c; j += kLanes)
          Block(b, slices[chunk.slice], net, chunk.slice, i, j, Mask(b.c - j));
    }
  });
}

class GeneralDirectionOp : public OpKernel {
 public:
  explicit GeneralDirectionOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &grad = ctx->input(0), &var = ctx->input(1), &m = ctx->input(2),
                 &v = ctx->input(3), &rows = ctx->input(4), &cols = ctx->input(5);
    OP_REQUIRES(ctx, grad.dims() == 3, InvalidArgument("grad must be [slices, r, c]; received ",
                                                       grad.shape().DebugString()));
    const int64_t slices = grad.dim_size(0), r = grad.dim_size(1), c = grad.dim_size(2);
    OP_REQUIRES(ctx, r > 0 && c > 0 && slices > 0, InvalidArgument("empty matrix ", grad.shape().DebugString()));
    OP_REQUIRES(ctx, var.shape() == grad.shape() && v.shape() == grad.shape(),
                InvalidArgument("var and velocity must be shaped like grad ", grad.shape().DebugString()));
    OP_REQUIRES(ctx, m.shape() == TensorShape({kDecays, slices, r, c}),
                InvalidArgument("momentum must be [3, slices, r, c]; received ", m.shape().DebugString()));
    OP_REQUIRES(ctx, rows.shape() == TensorShape({kDecays, slices, r}) &&
                         cols.shape() == TensorShape({kDecays, slices, c}),
                InvalidArgument("rows / cols must be [3, slices, r] / [3, slices, c]; received ",
                                rows.shape().DebugString(), " ", cols.shape().DebugString()));
    OpInputList kernels, biases;
    OP_REQUIRES_OK(ctx, ctx->input_list("kernels", &kernels));
    OP_REQUIRES_OK(ctx, ctx->input_list("biases", &biases));
    Net net;
    net.num_layers = kernels.size();
    OP_REQUIRES(ctx, net.num_layers >= 1 && net.num_layers <= kMaxLayers,
                InvalidArgument("1 to ", kMaxLayers, " hidden layers; received ", net.num_layers));
    int64_t fan_in = -1;
    for (int l = 0; l < net.num_layers; ++l) {
      const Tensor& k = kernels[l];
      OP_REQUIRES(ctx, k.dims() == 2 && k.dim_size(1) >= 1 && k.dim_size(1) <= kMaxWidth &&
                           (l == 0 ? k.dim_size(0) >= kChannels : k.dim_size(0) == fan_in) &&
                           biases[l].NumElements() == k.dim_size(1),
                  InvalidArgument("hidden layer ", l, ": kernel ", k.shape().DebugString(), ", bias ",
                                  biases[l].shape().DebugString(), " (widths 1 to ", kMaxWidth, ")"));
      net.width[l] = k.dim_size(1);
      net.kernel[l] = k.flat<float>().data();
      net.bias[l] = biases[l].flat<float>().data();
      fan_in = k.dim_size(1);
    }
    const Tensor *skip_t, *out_kernel_t, *out_bias_t, *time_hidden_t, *time_skip_t;
    OP_REQUIRES_OK(ctx, ctx->input("skip", &skip_t));
    OP_REQUIRES_OK(ctx, ctx->input("out_kernel", &out_kernel_t));
    OP_REQUIRES_OK(ctx, ctx->input("out_bias", &out_bias_t));
    OP_REQUIRES_OK(ctx, ctx->input("time_hidden", &time_hidden_t));
    OP_REQUIRES_OK(ctx, ctx->input("time_skip", &time_skip_t));
    const Tensor &skip = *skip_t, &out_kernel = *out_kernel_t, &out_bias = *out_bias_t,
                 &time_hidden = *time_hidden_t, &time_skip = *time_skip_t;
    OP_REQUIRES(ctx, skip.NumElements() >= kChannels && out_kernel.NumElements() == fan_in &&
                         out_bias.NumElements() == 1,
                InvalidArgument("skip, output kernel and bias have ", skip.NumElements(), ", ",
                                out_kernel.NumElements(), ", ", out_bias.NumElements(), " entries"));
    net.has_time = time_hidden.NumElements() > 0;
    OP_REQUIRES(ctx, !net.has_time || (time_hidden.NumElements() == net.width[0] &&
                                       time_skip.NumElements() == 1),
                InvalidArgument("time terms must have ", net.width[0], " and 1 entries"));
    net.skip = skip.flat<float>().data();
    net.out_kernel = out_kernel.flat<float>().data();
    net.out_bias = out_bias.flat<float>()(0);
    if (net.has_time) {
      net.time_hidden = time_hidden.flat<float>().data();
      net.time_skip = time_skip.flat<float>()(0);
    }
    Tensor *d, *new_m, *new_v, *new_rows, *new_cols;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, grad.shape(), &d));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, m.shape(), &new_m));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, v.shape(), &new_v));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, rows.shape(), &new_rows));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, cols.shape(), &new_cols));
    Buffers b{grad.flat<float>().data(),  var.flat<float>().data(),      m.flat<float>().data(),
              v.flat<float>().data(),     rows.flat<float>().data(),     cols.flat<float>().data(),
              new_m->flat<float>().data(), new_v->flat<float>().data(), new_rows->flat<float>().data(),
              new_cols->flat<float>().data(), d->flat<float>().data(), slices, r, c};
    Run(ctx, b, net);
  }
};

}  // namespace

REGISTER_OP("KerasL2OGeneralDirection")
    .Input("grad: float")
    .Input("var: float")
    .Input("momentum: float")
    .Input("velocity: float")
    .Input("rows: float")
    .Input("cols: float")
    .Input("kernels: num_layers * float")
    .Input("biases: num_layers * float")
    .Input("skip: float")
    .Input("out_kernel: float")
    .Input("out_bias: float")
    .Input("time_hidden: float")
    .Input("time_skip: float")
    .Output("direction: float")
    .Output("new_momentum: float")
    .Output("new_velocity: float")
    .Output("new_rows: float")
    .Output("new_cols: float")
    .Attr("num_layers: int >= 1")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      for (int i = 0; i < 4; ++i) c->set_output(1 + i, c->input(2 + i));
      return absl::OkStatus();
    })
    .Doc("The general rule's new state and raw direction of a batch of matrices "
         "(keras_l2o/native/general_direction_op.cc).");

REGISTER_KERNEL_BUILDER(Name("KerasL2OGeneralDirection").Device(::tensorflow::DEVICE_CPU),
                        GeneralDirectionOp);

}  // namespace keras_l2o
