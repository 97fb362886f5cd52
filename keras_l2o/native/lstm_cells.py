"""The lstm rule's LSTM layers, differentiable, through the native kernel `lstm_cells_op.cc`.

`cells(x, state, kernels, biases)` computes what `keras_l2o.rules.lstm.tf_cells`
computes, the stack of LSTM layers of the coordinatewise rule, with one op
forward and one backward instead of ~12 and ~20 TensorFlow ops per layer.
The same function up to rounding (sigmoid and tanh are the kernel's own, the
matmuls sum in another order); its gradient is exact for that function
(tests/native/test_native_lstm_cells.py compares both with TensorFlow's). BPTT
meta-training uses it through `for_meta_training`.

Example:

>>> import numpy as np, tensorflow as tf, keras_l2o
>>> from keras_l2o.native import lstm_cells
>>> from keras_l2o.rules import lstm
>>> rule = keras_l2o.rules.get("lstm")
>>> meta = rule.init_meta_params(0)
>>> x = tf.constant(np.random.default_rng(0).normal(size=(5, 2)), tf.float32)
>>> state = [tf.zeros([5, 20])] * 4
>>> kernels = [meta["layer1"]["kernel"], meta["layer2"]["kernel"]]
>>> biases = [meta["layer1"]["bias"], meta["layer2"]["bias"]]
>>> if lstm_cells.supports(rule, tf.float32):
...   native = lstm_cells.cells(x, state, kernels, biases)
...   reference = lstm.tf_cells(x, state, kernels, biases)
...   assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(native, reference))
"""

import copy

import tensorflow as tf

from keras_l2o.native import library
from keras_l2o.rules import lstm

KERNEL = "lstm_cells"
MAX_HIDDEN = 64
MAX_LAYERS = 4
MAX_FEATURES = 64


def supports(rule, dtype) -> bool:
  """Whether `cells` computes `rule`'s layers in `dtype`.

  True for an `LSTMRule` with 1 to `MAX_LAYERS` layers and a hidden size that
  is a multiple of 4 up to `MAX_HIDDEN`, computing in float32, once the kernel
  is built and loaded.
  """
  return (isinstance(rule, lstm.LSTMRule) and 1 <= rule.num_layers <= MAX_LAYERS
          and rule.hidden_size % 4 == 0 and 4 <= rule.hidden_size <= MAX_HIDDEN
          and rule.input_size <= MAX_FEATURES and tf.as_dtype(dtype) == tf.float32
          and library.available(KERNEL))


def cells(x, state, kernels, biases):
  """The LSTM layers, layer l's input the new `h` of layer l - 1; differentiable.

  Args:
    x: the first layer's inputs, `[n, features]` float32.
    state: `h` and `c` of each layer, `[n, hidden]` each.
    kernels: each layer's `[inputs + hidden, 4 * hidden]` kernel (gates i, f, g, o).
    biases: each layer's `[4 * hidden]` bias.

  Returns:
    The new `h` and `c` of each layer, as `keras_l2o.rules.lstm.tf_cells`
    (which computes them when `x` is not float32).
  """
  if x.dtype != tf.float32:
    return lstm.tf_cells(x, state, kernels, biases)
  ops = library.load(KERNEL)
  if ops is None:
    raise ValueError("The native kernel 'lstm_cells' is not built; build it with "
                     "python -c 'from keras_l2o.native import build; build.build_all()'.")
  num_layers = len(kernels)
  num_state = 2 * num_layers

  @tf.custom_gradient
  def run(x, *inputs):
    state, kernels, biases = (inputs[:num_state], inputs[num_state:num_state + num_layers],
                              inputs[num_state + num_layers:])
    new_state = ops.keras_l2o_lstm_cells(x, state, kernels, biases)

    def grad(*d_new_state):
      d_new_state = [tf.zeros_like(s) if d is None else d for d, s in zip(d_new_state, new_state)]
      d_x, d_state, d_z = ops.keras_l2o_lstm_cells_grad(x, state, kernels, biases, d_new_state)
      # The weights' gradients: sums over the coordinates of outer products.
      d_kernels, d_biases, below = [], [], x
      for layer in range(num_layers):
        layer_inputs = tf.concat([below, state[2 * layer]], axis=1)
        d_kernels.append(tf.matmul(layer_inputs, d_z[layer], transpose_a=True))
        d_biases.append(tf.reduce_sum(d_z[layer], axis=0))
        below = new_state[2 * layer]
      return (d_x, *d_state, *d_kernels, *d_biases)

    return list(new_state), grad

  return run(x, *state, *kernels, *biases)


def for_meta_training(rule):
  """`rule` computing its layers with `cells` where `supports` allows, else `rule` itself.

  The copy is the same rule (same config and meta-parameters) with a
  differentiable native kernel inside `apply`, for the unrolls of
  meta-training (`trainers/bptt.py` with `native_kernels=True`). The kernel
  is CPU-only: with a GPU or TPU visible the rule is returned as it is.
  """
  accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
  if accelerators or not supports(rule, tf.float32):
    return rule
  native = copy.copy(rule)
  native.cells = cells
  return native
