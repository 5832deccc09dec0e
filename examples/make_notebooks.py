"""Write the example notebooks (first_hour.ipynb, lectures_side_by_side.ipynb) from the cells below.

    python examples/make_notebooks.py      # rewrites both, without outputs

Edit the cells here, not the .ipynb files: tests/test_docs_and_notebooks.py executes both notebooks top
to bottom and checks that they are what this script writes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def code(source: str) -> nbformat.NotebookNode:
    return new_code_cell(textwrap.dedent(source).strip())


FIRST_HOUR = [
    new_markdown_cell(
        "# nnexp: your first hour\n\n"
        "Every run below trains a small network on scikit-learn's 8x8 digits (offline, seconds on a laptop "
        "CPU) and leaves a folder under `outputs/` with its metrics, pictures and `report.html`. "
        "`nnexp.run([...])` takes the same `key=value` settings as the `nnexp` command."
    ),
    code(
        """\
        import nnexp

        result = nnexp.run(["trainer.epochs=5"])  # the default MLP, 5 epochs instead of 30
        result  # shows the run: what ran, its final metrics and its learning curves
        """
    ),
    new_markdown_cell(
        "## Change one thing\n\n"
        "Plain SGD instead of Adam. Each run gets its own folder, so nothing is overwritten; "
        "`outputs/latest` always names the newest."
    ),
    code(
        """\
        sgd = nnexp.run(["optim=sgd", "optim.lr=0.1", "trainer.epochs=5"])
        for name, run in [("adam 0.001", result), ("sgd 0.1", sgd)]:
            print(f"{name:>10}: test accuracy {run.metrics['test_accuracy']:.3f}  ({run.run_dir})")
        """
    ),
    new_markdown_cell(
        "## A mistake on purpose\n\n"
        "A softmax in front of cross-entropy (which applies its own) trains badly. nnexp's learner checks "
        "name the mistake and the fix, in the console, in `summary.json` and on the run's page."
    ),
    code(
        """\
        bad = nnexp.run(["model.output_activation=softmax", "trainer.epochs=3"])
        for finding in bad.summary["diagnostics"]:
            print(finding["code"], "-", finding["message"])
        """
    ),
    new_markdown_cell(
        "## The trained model is a plain `torch.nn.Module`\n\n"
        "Classify the first ten digits with the first run's model."
    ),
    code(
        """\
        import torch
        from sklearn.datasets import load_digits

        digits = load_digits()
        print("how training scaled the pixels:", result.summary["data"]["details"]["scaling"])
        result.model.eval()
        images = torch.tensor(digits.images[:10], dtype=torch.float32)[:, None] / 16  # (10, 1, 8, 8)
        with torch.no_grad():
            predicted = result.model(images).argmax(1).tolist()
        print("the model's classes:", predicted)
        print("the true classes:   ", digits.target[:10].tolist())
        """
    ),
    new_markdown_cell(
        "Next: `lectures_side_by_side.ipynb` runs the lecture experiments, and the docs site "
        "(`mkdocs serve`) explains every setting."
    ),
]

LECTURES = [
    new_markdown_cell(
        "# The lecture experiments, side by side\n\n"
        "Each `experiments/lectures/*.yaml` preset is one experiment of the lecture notebooks nnexp grew "
        "from, written as the notebook ran it. The full runs take minutes each (`docs/lectures.md` has "
        "their numbers); here each trains **200 full-batch steps** instead of 1000-2000, so the numbers "
        "below are this notebook's short runs, not the lectures'."
    ),
    code(
        """\
        import pandas as pd

        import nnexp

        SHORT = ["trainer.epochs=200", "trainer.eval_every=100"]
        lecture = {  # the lecture notebook's test accuracy after its full 1000-2000 steps
            "digits_softmax": 0.9667,
            "digits_fnn_relu": 0.9722,
            "digits_fnn_tanh": 0.9722,
        }
        runs = {name: nnexp.run([f"experiment=lectures/{name}", *SHORT]) for name in lecture}
        pd.DataFrame(
            {
                "lecture (full run)": lecture,
                "nnexp, 200 steps": {name: run.metrics["test_accuracy"] for name, run in runs.items()},
                "nnexp, train": {name: run.metrics["train_accuracy"] for name, run in runs.items()},
            }
        )
        """
    ),
    new_markdown_cell("The ReLU network's run, as its page shows it:"),
    code('runs["digits_fnn_relu"]'),
    new_markdown_cell(
        "## One example (seed 001)\n\n"
        "Gradient descent on a single row: each step multiplies the loss by 0.64, whatever the start, so "
        "after 10 steps the loss is 0.64^9 = 0.018 of the first. The preset reads the row from a CSV file."
    ),
    code(
        """\
        from pathlib import Path

        Path("one_example.csv").write_text("x1,x2,x3,x4,y1,y2\\n0.8,0.4,0.4,0.2,1,0\\n")
        one = nnexp.run(["experiment=lectures/one_example", "data.path=one_example.csv"])
        losses = pd.read_csv(one.run_dir / "metrics.csv")["train_loss"]
        ratio = losses.iloc[-1] / losses.iloc[0]
        print(f"loss at step 10 / loss at step 1 = {ratio:.4f} (lecture: 0.0180)")
        """
    ),
    new_markdown_cell(
        "## A curve (seed 004)\n\n"
        "The lecture fits a 1-D curve; nnexp writes its stand-in (`python -m nnexp.data.curve curve.csv`). "
        "A ReLU network bends where a line cannot."
    ),
    code(
        """\
        from nnexp.data.curve import write_curve_csv

        write_curve_csv("curve.csv")
        curves = {
            name: nnexp.run([f"experiment=lectures/{name}", "data.path=curve.csv", *SHORT])
            for name in ["gp_linear", "gp_relu"]
        }
        for name, run in curves.items():
            print(f"{name:>10}: train MSE {run.metrics['train_mse']:.4f}")
        curves["gp_relu"]
        """
    ),
]


def notebook(cells: list) -> nbformat.NotebookNode:
    book = new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.metadata["language_info"] = {"name": "python"}
    return book


NOTEBOOKS = {"first_hour.ipynb": FIRST_HOUR, "lectures_side_by_side.ipynb": LECTURES}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        book = notebook(cells)
        for number, cell in enumerate(book.cells):  # stable ids: the file changes only when a cell does
            cell["id"] = f"cell-{number}"
        nbformat.validate(book)
        nbformat.write(book, HERE / name)
        print(HERE / name)


if __name__ == "__main__":
    main()
