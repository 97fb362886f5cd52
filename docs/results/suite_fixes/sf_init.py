import numpy as np, keras
from keras_l2o.suite import schedule_free
for cls in (keras.optimizers.ScheduleFreeAdamW, schedule_free.ScheduleFreeAdamW):
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
  model.compile(cls(1e-9), "mse")
  before = model.layers[0].kernel.numpy().copy()
  model.fit(np.ones((8, 4), np.float32), np.zeros((8, 3), np.float32), batch_size=8, epochs=1, verbose=0)
  opt = model.optimizer
  print(cls.__module__, "kernel |before|", np.abs(before).mean(), "after", np.abs(model.layers[0].kernel.numpy()).mean(),
        "momentum slot", np.abs(opt._momentums[0].numpy()).mean())
