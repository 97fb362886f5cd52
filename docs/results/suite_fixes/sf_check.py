"""Keras ScheduleFreeAdamW against the algorithm it documents, on f(w) = 0.5 * |w - 3|^2."""
import numpy as np, keras, tensorflow as tf

def reference(steps, lr=0.1, b1=0.9, b2=0.999, eps=1e-8, w0=0.0):
  z = x = y = np.float64(w0); v = 0.0; ys = []
  for t in range(1, steps + 1):
    g = y - 3.0
    v = b2 * v + (1 - b2) * g * g
    z = z - lr * g / (np.sqrt(v / (1 - b2 ** t)) + eps)
    c = 1.0 / t
    x = (1 - c) * x + c * z
    y = (1 - b1) * z + b1 * x
    ys.append(y)
  return np.array(ys)

def primal_average(steps, lr=0.1, b2=0.999, eps=1e-8, w0=0.0):
  # y_{t} = (1 - 1/t) y_{t-1} + (1/t) z_t: the gradient taken at the plain average of z
  z = y = np.float64(w0); v = 0.0; ys = []
  for t in range(1, steps + 1):
    g = y - 3.0
    v = b2 * v + (1 - b2) * g * g
    z = z - lr * g / (np.sqrt(v / (1 - b2 ** t)) + eps)
    y = (1 - 1.0 / t) * y + z / t
    ys.append(y)
  return np.array(ys)

def keras_run(steps, jit, lr=0.1):
  w = keras.Variable(np.zeros(1, np.float32))
  opt = keras.optimizers.ScheduleFreeAdamW(lr)
  opt.build([w])
  def step():
    with tf.GradientTape() as tape:
      loss = 0.5 * tf.reduce_sum((w.value - 3.0) ** 2)
    opt.apply([tape.gradient(loss, w.value)], [w])
  fn = tf.function(step) if jit else step
  ys = []
  for _ in range(steps):
    fn(); ys.append(float(w.numpy()[0]))
  return np.array(ys)

n = 200
for name, ys in (("reference (documented algorithm)", reference(n)),
                 ("primal average of z (beta_1 ignored)", primal_average(n)),
                 ("keras eager", keras_run(n, False)), ("keras tf.function", keras_run(n, True))):
  print(f"{name:40s} y after 1,2,3,50,200 steps:", np.round(ys[[0, 1, 2, 49, 199]], 5))

from keras_l2o.suite import schedule_free
def ours(steps, jit, lr=0.1):
  w = keras.Variable(np.zeros(1, np.float32))
  opt = schedule_free.ScheduleFreeAdamW(lr)
  opt.build([w])
  def step():
    with tf.GradientTape() as tape:
      loss = 0.5 * tf.reduce_sum((w.value - 3.0) ** 2)
    opt.apply([tape.gradient(loss, w.value)], [w])
  fn = tf.function(step) if jit else step
  ys = []
  for _ in range(steps):
    fn(); ys.append(float(w.numpy()[0]))
  return np.array(ys)
for name, ys in (("ours eager", ours(n, False)), ("ours tf.function", ours(n, True))):
  print(f"{name:40s} y after 1,2,3,50,200 steps:", np.round(ys[[0, 1, 2, 49, 199]], 5))
