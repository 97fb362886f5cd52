// The LSTM layers of keras_l2o's lstm rule with their gradient, for meta-training.
//
// lstm_rule_op.cc applies the rule; it has no gradient. BPTT meta-training
// (keras_l2o/unroll.py) differentiates through every step of the rule, and on
// TensorFlow ops each layer's step is ~12 ops forward and ~20 backward, each
// streaming [n, 4H] tensors. These two ops compute the stack of LSTM layers
// (keras_l2o.rules.lstm.lstm_cell, layer after layer) and its backward pass:
//
//   KerasL2OLstmCells:     (x, state) -> new_state
//   KerasL2OLstmCellsGrad: (x, state, d new_state) -> (d x, d state, d z)
//
// where x [n, in] are the rule's input features, state the (h, c) of each
// layer, [n, H] each, and d z [n, 4H] per layer the gradient of the gate
// pre-activations, from which the caller (keras_l2o/native/lstm_cells.py)
// gets the kernels' and biases' gradients with two TensorFlow ops per layer
// (a [in + H, n] x [n, 4H] matmul and a sum over n). The backward op
// recomputes the forward pass instead of keeping the activations, so the
// forward op's outputs are all it needs.
//
// Layout: coordinates in vector lanes, 16 per block. Each input, gate and
// state unit of a block is one register, the kernels' entries are broadcast,
// and every product of the matmuls is a fused multiply-add in order of k. A
// block's rows of a [n, width] tensor are transposed into registers (and
// back) 16 x 16 at a time. Sigmoid and tanh are lstm_math.h's; the cell's
// products and sums are rounded where the reference rounds them
// (-ffp-contract=off). Blocks are independent, so the result does not depend
// on how they are shared between threads (ParallelBlocks).
//
// Supported: float32, H a multiple of 4 up to 64 (4H fills whole registers),
// 1 to 4 layers, at most 64 input features. The Python side checks this.

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "lstm_math.h"

#if !defined(__AVX512F__)
#error "lstm_cells_op.cc needs AVX-512 (build.py compiles it with -march=native)"
#endif

namespace keras_l2o {
namespace {

using ::tensorflow::OpInputList;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelContext;
using ::tensorflow::OpOutputList;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;

constexpr int kLanes = 16;
constexpr int kMaxHidden = 64;
constexpr int kMaxFeatures = 64;
constexpr int kMaxLayers = 4;

struct Layer {
  int in;                  // inputs from below: the features, or the H units of the layer below
  const float* kernel;     // [in + H, 4H]
  const float* bias;       // [4H]
  std::vector<float> kernel_t;  // [4H, padded(in + H)], zeros past in + H: for d inputs (TransposeKernels)
  int padded = 0;
};

struct Cells {
  int64_t n;
  int features, hidden, layers;
  std::vector<Layer> layer;
  const float* x;                   // [n, features]
  std::vector<const float*> state;  // h, c per layer, [n, H]
};

// The activations a block keeps per layer and unit.
enum { kI = 0, kF, kG, kO, kCPrev, kCNew, kTanhC, kH, kKinds };

// What one block keeps of the forward pass, per layer (each entry 16 lanes).
struct Scratch {
  explicit Scratch(const Cells& c)
      : hidden(c.hidden),
        inputs(c.layers * (kMaxFeatures + kMaxHidden)),
        acts(c.layers * kKinds * c.hidden),
        z(4 * c.hidden) {}
  __m512* in(int l) { return inputs.data() + l * (kMaxFeatures + kMaxHidden); }
  // Activations of layer l, one of the kinds above.
  __m512* act(int l, int kind) { return acts.data() + (l * kKinds + kind) * hidden; }
  int hidden;
  std::vector<__m512> inputs, acts, z;
};

// Index vectors of the transpose's butterfly stages, for _mm512_permutex2var_ps:
// at distance d, register i (bit d clear) keeps its lanes j with bit d clear and
// takes lane j - d of register i + d for the others; register i + d the converse.
struct TransposeIndices {
  __m512i low[4], high[4];
  TransposeIndices() {
    for (int s = 0, d = 8; d >= 1; ++s, d /= 2) {
      alignas(64) int lo[kLanes], hi[kLanes];
      for (int j = 0; j < kLanes; ++j) {
        lo[j] = (j & d) ? kLanes + j - d : j;
        hi[j] = (j & d) ? kLanes + j : j + d;
      }
      low[s] = _mm512_load_si512(lo);
      high[s] = _mm512_load_si512(hi);
    }
  }
};

// Transposes the 16 x 16 matrix whose rows are r[0..16) in place: swaps the
// off-diagonal blocks of every 2d x 2d block, for d = 8, 4, 2, 1.
const TransposeIndices kTransposeIndices;

inline void Transpose16(__m512* r) {
  const TransposeIndices& indices = kTransposeIndices;
#pragma GCC unroll 4
  for (int s = 0, d = 8; d >= 1; ++s, d /= 2) {
#pragma GCC unroll 16
    for (int i = 0; i < kLanes; ++i) {
      if (i & d) continue;
      const __m512 a = r[i], b = r[i + d];
      r[i] = _mm512_permutex2var_ps(a, indices.low[s], b);
      r[i + d] = _mm512_permutex2var_ps(a, indices.high[s], b);
    }
  }
}

// Columns [0, width) of the block's `valid` rows of a [n, width] tensor, one
// register per column (lanes past `valid` zero), 16 columns at a time.
inline void LoadBlock(const float* rows, int width, int valid, __m512* out) {
  __m512 r[kLanes];
  for (int col = 0; col < width; col += kLanes) {
    const int w = std::min(kLanes, width - col);
    const __mmask16 mask = static_cast<__mmask16>((1u << w) - 1);
#pragma GCC unroll 16
    for (int cc = 0; cc < kLanes; ++cc)
      r[cc] = cc < valid ? _mm512_maskz_loadu_ps(mask, rows + cc * width + col) : _mm512_setzero_ps();
    Transpose16(r);
    std::copy(r, r + w, out + col);
  }
}

// The inverse: lane cc of register col goes to rows[cc * width + col], for the valid rows.
inline void StoreBlock(float* rows, int width, int valid, const __m512* in) {
  __m512 r[kLanes];
  for (int col = 0; col < width; col += kLanes) {
    const int w = std::min(kLanes, width - col);
    const __mmask16 mask = static_cast<__mmask16>((1u << w) - 1);
#pragma GCC unroll 16
    for (int t = 0; t < kLanes; ++t) r[t] = t < w ? in[col + t] : _mm512_setzero_ps();
    Transpose16(r);
    for (int cc = 0; cc < valid; ++cc) _mm512_mask_storeu_ps(rows + cc * width + col, mask, r[cc]);
  }
}

// z[j] = sum_k in[k] w[k, j] + b[j] for j < 4H, 16 columns at a time.
inline void Gates(const Layer& layer, int hidden, const __m512* in, __m512* z) {
  const int inputs = layer.in + hidden, cols = 4 * hidden;
  for (int jc = 0; jc < cols; jc += 16) {
    __m512 acc[16];
    for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
    for (int k = 0; k < inputs; ++k) {
      const float* w = layer.kernel + static_cast<int64_t>(k) * cols + jc;
      for (int t = 0; t < 16; ++t) acc[t] = _mm512_fmadd_ps(in[k], _mm512_set1_ps(w[t]), acc[t]);
    }
    for (int t = 0; t < 16; ++t) z[jc + t] = _mm512_add_ps(acc[t], _mm512_set1_ps(layer.bias[jc + t]));
  }
}

// The forward pass of the block of rows [first, first + valid) (the other lanes read zeros).
void Forward(const Cells& c, int64_t first, int valid, Scratch* s) {
  const int hidden = c.hidden;
  for (int l = 0; l < c.layers; ++l) {
    const Layer& layer = c.layer[l];
    __m512* in = s->in(l);
    if (l == 0) {
      LoadBlock(c.x + first * c.features, c.features, valid, in);
    } else {
      std::copy(s->act(l - 1, kH), s->act(l - 1, kH) + hidden, in);
    }
    LoadBlock(c.state[2 * l] + first * hidden, hidden, valid, in + layer.in);
    __m512* cp = s->act(l, kCPrev);
    LoadBlock(c.state[2 * l + 1] + first * hidden, hidden, valid, cp);
    __m512* z = s->z.data();
    Gates(layer, hidden, in, z);
    __m512 *i = s->act(l, kI), *f = s->act(l, kF), *g = s->act(l, kG), *o = s->act(l, kO);
    __m512 *c_new = s->act(l, kCNew), *tc = s->act(l, kTanhC), *h_new = s->act(l, kH);
    for (int u = 0; u < hidden; ++u) {
      i[u] = Sigmoid(z[u]);
      f[u] = Sigmoid(z[hidden + u]);
      g[u] = Tanh(z[2 * hidden + u]);
      o[u] = Sigmoid(z[3 * hidden + u]);
      c_new[u] = _mm512_add_ps(_mm512_mul_ps(f[u], cp[u]), _mm512_mul_ps(i[u], g[u]));
      tc[u] = Tanh(c_new[u]);
      h_new[u] = _mm512_mul_ps(o[u], tc[u]);
    }
  }
}

void ForwardRange(const Cells& c, int64_t begin, int64_t end, const std::vector<float*>& new_state) {
  Scratch s(c);
  const int hidden = c.hidden;
  for (int64_t block = begin; block < end; ++block) {
    const int64_t first = block * kLanes;
    const int valid = static_cast<int>(std::min<int64_t>(kLanes, c.n - first));
    Forward(c, first, valid, &s);
    for (int l = 0; l < c.layers; ++l) {
      StoreBlock(new_state[2 * l] + first * hidden, hidden, valid, s.act(l, kH));
      StoreBlock(new_state[2 * l + 1] + first * hidden, hidden, valid, s.act(l, kCNew));
    }
  }
}

struct Grads {
  std::vector<const float*> d_new_state;  // h, c per layer
  float* d_x;
  std::vector<float*> d_state;  // h, c per layer
  std::vector<float*> d_z;      // [n, 4H] per layer
};

void BackwardRange(const Cells& c, const Grads& d, int64_t begin, int64_t end) {
  Scratch s(c);
  const int hidden = c.hidden;
  const __m512 one = _mm512_set1_ps(1.0f);
  std::vector<__m512> dz(4 * hidden), d_in(kMaxFeatures + kMaxHidden + 16), carry(hidden),
      dh_new(hidden), dc_new(hidden), dc_prev(hidden);
  for (int64_t block = begin; block < end; ++block) {
    const int64_t first = block * kLanes;
    const int valid = static_cast<int>(std::min<int64_t>(kLanes, c.n - first));
    Forward(c, first, valid, &s);
    std::fill(carry.begin(), carry.end(), _mm512_setzero_ps());
    for (int l = c.layers - 1; l >= 0; --l) {
      const Layer& layer = c.layer[l];
      LoadBlock(d.d_new_state[2 * l] + first * hidden, hidden, valid, dh_new.data());
      LoadBlock(d.d_new_state[2 * l + 1] + first * hidden, hidden, valid, dc_new.data());
      const __m512 *i = s.act(l, kI), *f = s.act(l, kF), *g = s.act(l, kG), *o = s.act(l, kO);
      const __m512 *cp = s.act(l, kCPrev), *tc = s.act(l, kTanhC);
      for (int u = 0; u < hidden; ++u) {
        const __m512 dh = _mm512_add_ps(dh_new[u], carry[u]);
        // d c_new: from the next step, and through h_new = o tanh(c_new).
        const __m512 dtc = _mm512_mul_ps(dh, o[u]);
        const __m512 dc = _mm512_add_ps(dc_new[u],
                                        _mm512_mul_ps(dtc, _mm512_sub_ps(one, _mm512_mul_ps(tc[u], tc[u]))));
        dc_prev[u] = _mm512_mul_ps(dc, f[u]);
        // Through the gates' nonlinearities: sigmoid' = s (1 - s), tanh' = 1 - t^2.
        const __m512 di = _mm512_mul_ps(dc, g[u]), df = _mm512_mul_ps(dc, cp[u]);
        const __m512 dg = _mm512_mul_ps(dc, i[u]), d_o = _mm512_mul_ps(dh, tc[u]);
        dz[u] = _mm512_mul_ps(di, _mm512_mul_ps(i[u], _mm512_sub_ps(one, i[u])));
        dz[hidden + u] = _mm512_mul_ps(df, _mm512_mul_ps(f[u], _mm512_sub_ps(one, f[u])));
        dz[2 * hidden + u] = _mm512_mul_ps(dg, _mm512_sub_ps(one, _mm512_mul_ps(g[u], g[u])));
        dz[3 * hidden + u] = _mm512_mul_ps(d_o, _mm512_mul_ps(o[u], _mm512_sub_ps(one, o[u])));
      }
      StoreBlock(d.d_state[2 * l + 1] + first * hidden, hidden, valid, dc_prev.data());
      StoreBlock(d.d_z[l] + first * 4 * hidden, 4 * hidden, valid, dz.data());
      // d inputs[k] = sum_j dz[j] w[k, j], 16 inputs at a time over the transposed kernel.
      const int cols = 4 * hidden;
      for (int kc = 0; kc < layer.padded; kc += 16) {
        __m512 acc[16];
        for (int t = 0; t < 16; ++t) acc[t] = _mm512_setzero_ps();
        for (int j = 0; j < cols; ++j) {
          const float* w = layer.kernel_t.data() + static_cast<int64_t>(j) * layer.padded + kc;
          for (int t = 0; t < 16; ++t) acc[t] = _mm512_fmadd_ps(dz[j], _mm512_set1_ps(w[t]), acc[t]);
        }
        for (int t = 0; t < 16; ++t) d_in[kc + t] = acc[t];
      }
      StoreBlock(d.d_state[2 * l] + first * hidden, hidden, valid, d_in.data() + layer.in);
      if (l > 0) {
        std::copy(d_in.begin(), d_in.begin() + hidden, carry.begin());
      } else {
        StoreBlock(d.d_x + first * c.features, c.features, valid, d_in.data());
      }
    }
  }
}

// Inputs "x", "state", "kernels", "biases" read and checked into `c`.
absl::Status ReadCells(OpKernelContext* ctx, Cells* c) {
  const Tensor& x = ctx->input(0);
  OpInputList state, kernels, biases;
  TF_RETURN_IF_ERROR(ctx->input_list("state", &state));
  TF_RETURN_IF_ERROR(ctx->input_list("kernels", &kernels));
  TF_RETURN_IF_ERROR(ctx->input_list("biases", &biases));
  if (x.dims() != 2) return InvalidArgument("x must be [n, features]; received ", x.shape().DebugString());
  c->n = x.dim_size(0);
  c->features = static_cast<int>(x.dim_size(1));
  c->layers = kernels.size();
  if (c->features < 1 || c->features > kMaxFeatures) {
    return InvalidArgument("x must have 1 to ", kMaxFeatures, " features; received ", x.shape().DebugString());
  }
  if (c->layers > kMaxLayers || state.size() != 2 * c->layers || biases.size() != c->layers) {
    return InvalidArgument("expected 1 to ", kMaxLayers, " layers with 2 state tensors, a kernel and a bias each; "
                           "received ", state.size(), " state tensors, ", kernels.size(), " kernels, ",
                           biases.size(), " biases");
  }
  c->hidden = static_cast<int>(biases[0].NumElements() / 4);
  const int hidden = c->hidden;
  if (hidden < 4 || hidden > kMaxHidden || hidden % 4 || biases[0].NumElements() != 4 * hidden) {
    return InvalidArgument("the hidden size must be a multiple of 4 up to ", kMaxHidden, "; received a bias of ",
                           biases[0].shape().DebugString());
  }
  c->x = x.flat<float>().data();
  int in = c->features;
  for (int l = 0; l < c->layers; ++l) {
    const int inputs = in + hidden;
    if (kernels[l].dims() != 2 || kernels[l].dim_size(0) != inputs || kernels[l].dim_size(1) != 4 * hidden ||
        biases[l].NumElements() != 4 * hidden) {
      return InvalidArgument("layer ", l + 1, ": kernel ", kernels[l].shape().DebugString(), " and bias ",
                             biases[l].shape().DebugString(), " do not match [", inputs, ", ", 4 * hidden,
                             "] and [", 4 * hidden, "]");
    }
    Layer layer;
    layer.in = in;
    layer.kernel = kernels[l].flat<float>().data();
    layer.bias = biases[l].flat<float>().data();
    c->layer.push_back(std::move(layer));
    in = hidden;
  }
  for (int i = 0; i < state.size(); ++i) {
    if (state[i].dims() != 2 || state[i].dim_size(0) != c->n || state[i].dim_size(1) != hidden) {
      return InvalidArgument("state tensor ", i, " has shape ", state[i].shape().DebugString(), "; expected [",
                             c->n, ", ", hidden, "]");
    }
    c->state.push_back(state[i].flat<float>().data());
  }
  return absl::OkStatus();
}

// Each layer's kernel transposed and zero-padded to whole registers, for the
// backward pass's d inputs = W dz (the forward op does not need it).
void TransposeKernels(Cells* c) {
  const int cols = 4 * c->hidden;
  for (Layer& layer : c->layer) {
    const int inputs = layer.in + c->hidden;
    layer.padded = (inputs + kLanes - 1) / kLanes * kLanes;
    layer.kernel_t.assign(static_cast<size_t>(cols) * layer.padded, 0.0f);
    for (int k = 0; k < inputs; ++k)
      for (int j = 0; j < cols; ++j) layer.kernel_t[j * layer.padded + k] = layer.kernel[k * cols + j];
  }
}

// The blocks of 16 rows, shared between the calling thread and helpers run by
// the inter-op thread pool (ctx->runner()). BPTT runs every op on one thread
// (intra-op threads: 1, meta_train_defaults) so that independent small ops
// run side by side; this op, on the critical path of every step, also takes
// the idle cores. Helpers claim chunks of blocks from a counter; the caller
// claims too and then waits only for chunks a helper has started, so a helper
// the pool has not started yet (a busy pool) never delays it, and one that
// starts after the op has returned finds the share closed and does nothing.
struct WorkShare {
  std::atomic<int64_t> next{0};
  int64_t blocks = 0, chunk = 1;
  std::function<void(int64_t, int64_t)> work;
  std::mutex mu;
  std::condition_variable done;
  int active = 0;       // helpers inside Run, guarded by mu
  bool closed = false;  // guarded by mu

  void RunChunks() {
    for (int64_t b = next.fetch_add(chunk); b < blocks; b = next.fetch_add(chunk)) {
      work(b, std::min(blocks, b + chunk));
    }
  }
};

template <typename F>
void ParallelBlocks(OpKernelContext* ctx, int64_t n, F work) {
  const int64_t blocks = (n + kLanes - 1) / kLanes;
  constexpr int64_t kChunk = 4;  // 64 rows: tens of microseconds of work
  const int helpers = static_cast<int>(
      std::min<int64_t>(std::max(0, static_cast<int>(std::thread::hardware_concurrency()) - 1),
                        blocks / kChunk - 1));
  auto* runner = ctx->runner();
  if (helpers <= 0 || runner == nullptr) {
    work(0, blocks);
    return;
  }
  auto share = std::make_shared<WorkShare>();
  share->blocks = blocks;
  share->chunk = kChunk;
  share->work = work;
  for (int h = 0; h < helpers; ++h) {
    (*runner)([share]() {
      {
        std::lock_guard<std::mutex> lock(share->mu);
        if (share->closed) return;
        ++share->active;
      }
      share->RunChunks();
      std::lock_guard<std::mutex> lock(share->mu);
      --share->active;
      share->done.notify_all();
    });
  }
  share->RunChunks();
  std::unique_lock<std::mutex> lock(share->mu);
  share->closed = true;
  share->done.wait(lock, [&share] { return share->active == 0; });
}

// Allocates the output list `name`: `shapes[i]` for entry i; returns its buffers in `data`.
absl::Status AllocateList(OpKernelContext* ctx, const char* name, const std::vector<TensorShape>& shapes,
                          std::vector<float*>* data) {
  OpOutputList list;
  TF_RETURN_IF_ERROR(ctx->output_list(name, &list));
  for (int i = 0; i < static_cast<int>(shapes.size()); ++i) {
    Tensor* t = nullptr;
    TF_RETURN_IF_ERROR(list.allocate(i, shapes[i], &t));
    data->push_back(t->flat<float>().data());
  }
  return absl::OkStatus();
}

// The shapes of the state inputs (h, c per layer).
std::vector<TensorShape> StateShapes(OpKernelContext* ctx, int num_state) {
  std::vector<TensorShape> shapes;
  for (int i = 0; i < num_state; ++i) shapes.push_back(ctx->input(1 + i).shape());
  return shapes;
}

class LstmCellsOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    Cells c;
    OP_REQUIRES_OK(ctx, ReadCells(ctx, &c));
    std::vector<float*> new_state;
    OP_REQUIRES_OK(ctx, AllocateList(ctx, "new_state", StateShapes(ctx, 2 * c.layers), &new_state));
    ParallelBlocks(ctx, c.n, [&](int64_t begin, int64_t end) { ForwardRange(c, begin, end, new_state); });
  }
};

class LstmCellsGradOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    Cells c;
    OP_REQUIRES_OK(ctx, ReadCells(ctx, &c));
    TransposeKernels(&c);
    OpInputList d_new_state;
    OP_REQUIRES_OK(ctx, ctx->input_list("d_new_state", &d_new_state));
    Grads d;
    for (int i = 0; i < d_new_state.size(); ++i) {
      OP_REQUIRES(ctx, d_new_state[i].shape() == ctx->input(1 + i).shape(),
                  InvalidArgument("d_new_state ", i, " has shape ", d_new_state[i].shape().DebugString(),
                                  "; expected ", ctx->input(1 + i).shape().DebugString()));
      d.d_new_state.push_back(d_new_state[i].flat<float>().data());
    }
    Tensor* d_x = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output("d_x", ctx->input(0).shape(), &d_x));
    d.d_x = d_x->flat<float>().data();
    OP_REQUIRES_OK(ctx, AllocateList(ctx, "d_state", StateShapes(ctx, 2 * c.layers), &d.d_state));
    OP_REQUIRES_OK(ctx, AllocateList(ctx, "d_z", std::vector<TensorShape>(c.layers, TensorShape({c.n, 4 * c.hidden})),
                                     &d.d_z));
    ParallelBlocks(ctx, c.n, [&](int64_t begin, int64_t end) { BackwardRange(c, d, begin, end); });
  }
};

}  // namespace

REGISTER_OP("KerasL2OLstmCells")
    .Input("x: float")
    .Input("state: num_state * float")
    .Input("kernels: num_layers * float")
    .Input("biases: num_layers * float")
    .Output("new_state: num_state * float")
    .Attr("num_state: int >= 2")
    .Attr("num_layers: int >= 1")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      int num_state;
      TF_RETURN_IF_ERROR(c->GetAttr("num_state", &num_state));
      for (int i = 0; i < num_state; ++i) c->set_output(i, c->input(1 + i));
      return absl::OkStatus();
    })
    .Doc("keras_l2o's lstm rule layers, forward (keras_l2o/native/lstm_cells_op.cc).");

REGISTER_KERNEL_BUILDER(Name("KerasL2OLstmCells").Device(::tensorflow::DEVICE_CPU), LstmCellsOp);

REGISTER_OP("KerasL2OLstmCellsGrad")
    .Input("x: float")
    .Input("state: num_state * float")
    .Input("kernels: num_layers * float")
    .Input("biases: num_layers * float")
    .Input("d_new_state: num_state * float")
    .Output("d_x: float")
    .Output("d_state: num_state * float")
    .Output("d_z: num_layers * float")
    .Attr("num_state: int >= 2")
    .Attr("num_layers: int >= 1")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      int num_state, num_layers;
      TF_RETURN_IF_ERROR(c->GetAttr("num_state", &num_state));
      TF_RETURN_IF_ERROR(c->GetAttr("num_layers", &num_layers));
      c->set_output(0, c->input(0));
      for (int i = 0; i < num_state; ++i) c->set_output(1 + i, c->input(1 + i));
      auto n = c->Dim(c->input(0), 0);
      auto gates = c->Dim(c->input(1 + num_state + num_layers), 0);  // the first bias: [4H]
      for (int l = 0; l < num_layers; ++l) c->set_output(1 + num_state + l, c->Matrix(n, gates));
      return absl::OkStatus();
    })
    .Doc("The backward pass of KerasL2OLstmCells: d x, d state and each layer's d gate pre-activations.");

REGISTER_KERNEL_BUILDER(Name("KerasL2OLstmCellsGrad").Device(::tensorflow::DEVICE_CPU), LstmCellsGradOp);

}  // namespace keras_l2o
