"""The README's Python quick start runs as written."""

import os
import re
import tempfile

import tensorflow as tf

_README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


class ReadmeTest(tf.test.TestCase):

  def test_python_blocks_run(self):
    with open(_README, encoding="utf-8") as f:
      blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    self.assertNotEmpty(blocks)
    for block in blocks:
      namespace = {}
      # The examples save into `tempfile.mkdtemp()` folders, as a user would: here those go
      # into a folder deleted after the block.
      with tempfile.TemporaryDirectory() as folder:
        previous, tempfile.tempdir = tempfile.tempdir, folder
        try:
          exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
        finally:
          tempfile.tempdir = previous
      # The quick start's own assertion checks the loss fell; also check what it built.
      if "history" in namespace:
        losses = namespace["history"].history["loss"]
        self.assertLess(losses[-1], 0.8 * losses[0])
      if "summary" in namespace:  # the meta-training example ran all its steps
        self.assertEqual(namespace["summary"]["steps"], 20)
        self.assertTrue(all(v is not None for v in (namespace["summary"]["first_validation_loss"],
                                                    namespace["summary"]["last_validation_loss"])))
      if "optimizer" in namespace:
        self.assertEqual(namespace["optimizer"].rule.name, "mlp")

  def test_readme_names_exactly_the_two_setup_commands(self):
    with open(_README, encoding="utf-8") as f:
      text = f.read()
    setup = text.split("## Set up", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.strip()]
    self.assertEqual(commands, ["make demo", "make test"])


if __name__ == "__main__":
  tf.test.main()
