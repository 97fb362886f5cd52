"""Runs one suite task once with one optimizer; prints the curve as JSON (float repr)."""
import json, sys, time
import tensorflow as tf
threads = int(sys.argv[3])
if threads:
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(threads)
import keras, keras_l2o
from keras_l2o import suite
from keras_l2o.suite import optimizers
task, which = sys.argv[1], sys.argv[2]
horizon = int(sys.argv[4]) if len(sys.argv) > 4 else None
if which.startswith("pretrained:"):
  make = lambda h: keras_l2o.pretrained.get(which.split(":")[1])
elif which == "adamw":
  make = lambda h: optimizers.baseline("adamw").make(h, learning_rate=1e-2, weight_decay=0.01)
elif which == "sf":
  make = lambda h: optimizers.baseline("schedule_free_adamw").make(h, learning_rate=float(sys.argv[5]))
t = time.time()
r = suite.run(suite.get(task), 0, make, horizon=horizon)
print(json.dumps({"curve": r["curve"], "seconds": time.time() - t, "file": keras_l2o.__file__}))
