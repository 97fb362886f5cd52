"""Runs every ```python block of README.md (as tests/test_readme.py does) with whatever keras_l2o is importable."""
import re
import sys

import keras_l2o
import keras_l2o_meta.trainers

print("keras_l2o from", keras_l2o.__file__)
print("keras_l2o_meta.trainers from", list(keras_l2o_meta.trainers.__path__))
with open(sys.argv[1], encoding="utf-8") as f:
  blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
for i, block in enumerate(blocks):
  namespace = {}
  exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)  # pylint: disable=exec-used
  shown = {}
  if "history" in namespace:
    shown["fit losses (first, last)"] = [round(namespace["history"].history["loss"][k], 4) for k in (0, -1)]
  if "summary" in namespace:
    shown["meta-training summary steps"] = namespace["summary"]["steps"]
  if "optimizer" in namespace:
    shown["loaded optimizer rule"] = namespace["optimizer"].rule.name
  print(f"README python block {i + 1} of {len(blocks)} ran:", shown)
print("modules named trainers/scripts imported:",
      sorted(m for m in sys.modules if m.split(".")[0] in ("trainers", "scripts")))
