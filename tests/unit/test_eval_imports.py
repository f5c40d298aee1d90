"""The pure parts of rmkit.evaluate never import torch (DESIGN.md dependency rule)."""
import subprocess
import sys


def test_evaluate_modules_do_not_import_torch():
    mods = ["metrics", "common", "diagnostics", "rewardbench2", "rmbench", "judgebench", "pairwise",
            "compare", "report", "rewardbench"]
    code = ("import sys\n" + "".join(f"import rmkit.evaluate.{m}\n" for m in mods)
            + "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
