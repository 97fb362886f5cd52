import json, sys, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from keras_l2o import suite
from keras_l2o.suite import metrics, optimizers
out = open("/tmp/suite2_probe/sf_tasks.jsonl", "a")
for task in sys.argv[1].split(","):
  for lr in [float(v) for v in sys.argv[2].split(",")]:
    r = suite.run(suite.get(task), 10_000, lambda h: optimizers._make_schedule_free(h, lr))
    old = json.load(open(f"/tmp/suite_quick_timing/runs/{task}/schedule_free_adamw/seed=10000/learning_rate={lr:g}.json"))
    line = {"task": task, "lr": lr, "ours_final": metrics.final_loss(r["curve"]), "keras_final": metrics.final_loss(old["curve"]),
            "ours_val": r["validation"].get("loss"), "keras_val": old["validation"].get("loss"), "seconds": r["seconds"]}
    out.write(json.dumps(line) + "\n"); out.flush(); print(line, flush=True)
