"""The user's own model and data: `model=custom model._target_=mynet.Net`, `data=custom
data._target_=mydata.load`.

Each test writes the user's files (mynet.py, mydata.py) into its own folder and runs nnexp there, in this
process, as `nnexp` would from that folder: the folder is not on sys.path until nnexp puts it there for the
import. A run folder that names such code is read back (resume, nnexp-predict) only when the command names
the code too (docs/resume-and-errors.md, "A run folder is data, never code").
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nnexp
from conftest import compose_config, exit_code_of, read_summary, resume_in_process
from nnexp.config.checks import check_config
from nnexp.config.trust import UntrustedConfig
from nnexp.errors import ConfigError, DataError
from nnexp.look.predict import main as predict_main
from nnexp.look.predict import predict

MYNET = """
import math
from torch import nn


class Net(nn.Module):
    def __init__(self, input_shape, num_outputs, hidden):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(), nn.Linear(hidden, num_outputs)
        )

    def forward(self, x):
        return self.layers(x)


class Wide(nn.Module):  # takes the sizes through **kwargs, and none of its own
    def __init__(self, **sizes):
        super().__init__()
        self.linear = nn.Linear(math.prod(sizes["input_shape"]), sizes["num_outputs"])

    def forward(self, x):
        return self.linear(x.flatten(1))


class WrongOut(nn.Module):  # 3 outputs, whatever the data
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 3)

    def forward(self, x):
        return self.linear(x.flatten(1))


class Empty(nn.Module):  # nothing to train
    def forward(self, x):
        return x.flatten(1)


class Refuses(nn.Module):
    def __init__(self, input_shape):
        super().__init__()
        raise ValueError("needs a GPU\\nand more")


def not_a_class():
    return None
"""

MYDATA = """
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split


def load(seed=0):
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_train.mean(0), x_train.std(0)
    standardised = lambda rows: torch.tensor((rows - mean) / std, dtype=torch.float32)
    return {
        "train": (standardised(x_train), torch.tensor(y_train)),
        "test": (standardised(x_test), torch.tensor(y_test)),
    }


def no_train():
    return {"test": (torch.zeros(4, 2), torch.zeros(4))}


def raises():
    raise FileNotFoundError("no file data.npz\\nsecond line")


class Broken(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        if index == 3:
            raise KeyError("row 3")
        return torch.zeros(2), index % 2


def bad_items():
    return {"train": Broken()}


def rows(labels):
    return torch.randn(len(labels), 3), torch.tensor(labels)


def with_nan():
    x, y = rows([0, 1] * 10)
    x[5, 2] = float("nan")
    return {"train": (x, y)}


def with_inf():
    x, y = rows([0.5, 1.5] * 10)
    y[7] = float("-inf")
    return {"train": (x, y), "test": rows([0.5, 1.5])}


def huge_label():
    return {"train": rows([0, 1] * 10 + [10**9])}


def one_class():
    return {"train": rows([0] * 20)}
"""

FAST = ["trainer.epochs=8", "outputs.views=false"]  # 8 epochs: test accuracy 0.93 on the digits (seed 0)


@pytest.fixture
def user_folder(tmp_path, monkeypatch) -> Path:
    """tmp_path holding mynet.py and mydata.py, as the current folder; their modules forgotten after."""
    (tmp_path / "mynet.py").write_text(MYNET)
    (tmp_path / "mydata.py").write_text(MYDATA)
    (tmp_path / "broken.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.chdir(tmp_path)
    for name in ("mynet", "mydata", "broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    return tmp_path


@pytest.fixture
def custom_run(user_folder) -> Path:
    result = nnexp.run(
        ["model=custom", "model._target_=mynet.Net", "model.hidden=64", *FAST], user_folder / "run"
    )
    assert result.status == "completed"
    return result.run_dir


def test_a_users_module_trains_on_the_digits_with_the_datas_sizes(custom_run, user_folder):
    summary = read_summary(custom_run)
    assert summary["metrics"]["final"]["test_accuracy"] >= 0.9, summary["metrics"]
    assert str(user_folder) not in sys.path  # put there for the import only
    wide = nnexp.run(["model=custom", "model._target_=mynet.Wide", "trainer.epochs=1"], user_folder / "wide")
    assert wide.status == "completed"  # the sizes reached it through **kwargs; the views drew its run


def test_a_users_loader_of_breast_cancer_tensors_trains_as_classification(user_folder):
    result = nnexp.run(
        ["data=custom", "data._target_=mydata.load", "data.seed=1", *FAST], user_folder / "run"
    )
    summary = read_summary(result.run_dir)
    assert summary["data"]["task"] == "classification" and summary["data"]["num_outputs"] == 2
    assert summary["data"]["sizes"] == {"train": 383, "val": 43, "test": 143}  # val carved from train
    assert summary["metrics"]["final"]["test_accuracy"] >= 0.9, summary["metrics"]
    as_regression = nnexp.run(
        ["data=custom", "data._target_=mydata.load", "data.task=regression", "trainer.epochs=2"],
        user_folder / "regression",
    )
    assert read_summary(as_regression.run_dir)["data"]["task"] == "regression"


def test_the_custom_groups_pass_the_config_checks_with_free_keys():
    cfg = compose_config("model=custom", "model._target_=mynet.Net", "model.hidden=word", "model.x.y=3")
    check_config(cfg)  # model.hidden is the user's: not the MLP's sizes rule
    assert cfg.model.x.y == 3
    with pytest.raises(ConfigError, match="model._target_ is required"):
        check_config(compose_config("model=custom"))
    with pytest.raises(ConfigError, match="model._target_=os.system is not allowed"):
        check_config(compose_config("model=custom", "model._target_=os.system"))
    with pytest.raises(ConfigError, match="optim._target_=mynet.Adam is not allowed"):
        check_config(compose_config("optim._target_=mynet.Adam"))  # own code only as the model or data


def digit_png(folder: Path) -> Path:
    from sklearn.datasets import load_digits

    pixels = (load_digits().images[0] * 255 / 16).astype(np.uint8)
    path = folder / "digit.png"
    Image.fromarray(pixels).resize((64, 64)).save(path)
    return path


def test_nnexp_predict_reads_a_custom_run_back_only_when_trusted(custom_run, user_folder, capsys):
    png = digit_png(user_folder)
    before = sorted(p.name for p in custom_run.iterdir())
    assert exit_code_of(predict_main, custom_run, png) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "model._target_=mynet.Net" in stderr and "--trust mynet.Net" in stderr
    assert sorted(p.name for p in custom_run.iterdir()) == before
    assert exit_code_of(predict_main, custom_run, png, "--trust", "mydata.load") == 2  # another name
    capsys.readouterr()
    table = predict(custom_run, [str(png)], trusted=["mynet.Net"])
    assert table["predicted"].astype(str).tolist() == ["0"]
    elsewhere = user_folder / "elsewhere"
    elsewhere.mkdir()
    shutil.move(user_folder / "mynet.py", elsewhere / "mynet.py")
    sys.modules.pop("mynet", None)
    with pytest.raises(
        ConfigError, match="there is no module mynet in .*run nnexp from the folder that holds"
    ):
        predict(custom_run, [str(png)], trusted=["mynet.Net"])


def test_a_custom_run_resumes_only_when_trusted(custom_run):
    files = {p: p.read_bytes() for p in custom_run.rglob("*") if p.is_file()}
    with pytest.raises(UntrustedConfig, match=r"trust=\[mynet.Net\]") as refused:
        resume_in_process(custom_run, "trainer.epochs=10", "force=true")
    assert "\n" not in str(refused.value) and refused.value.exit_code == 2
    assert {p: p.read_bytes() for p in custom_run.rglob("*") if p.is_file()} == files
    result = resume_in_process(custom_run, "trainer.epochs=10", "force=true", "trust=[mynet.Net]")
    assert result.status == "completed" and read_summary(custom_run)["epochs_completed"] == 10
    again = resume_in_process(custom_run, "trainer.epochs=11", "force=true", "model._target_=mynet.Net")
    assert again.status == "completed"  # naming it again on the command line trusts it as well


MISTAKES = [
    (
        ["model=custom", "model._target_=nomodule.Net"],
        "model._target_=nomodule.Net: there is no module nomodule",
    ),
    (["model=custom", "model._target_=mynet.Nope"], "mynet .* has no Nope"),
    (["model=custom", "model._target_=mynet.not_a_class"], "is a function, not an nn.Module class"),
    (
        ["model=custom", "model._target_=mynet.Net"],
        "mynet.Net needs the argument hidden: give it as model.hidden",
    ),
    (
        ["model=custom", "model._target_=mynet.Net", "model.hiden=3"],
        "model.hiden=3: mynet.Net takes no argument",
    ),
    (["model=custom", "model._target_=broken.Net"], "importing broken raised RuntimeError: no GPU here"),
    (
        ["data=custom", "data._target_=mydata.load", "data.sed=1"],
        "data.sed=1: mydata.load takes no argument sed",
    ),
    (["data=custom", "data._target_=mydata.no_train"], "returned no train split"),
]


CUSTOM_NET = ["model=custom", "model._target_=mynet.Net"]
MISTAKES += [
    (
        [*CUSTOM_NET, "model.hidden=-5"],
        r"model._target_=mynet.Net: building it with model.hidden=-5 raised RuntimeError: Trying to create "
        r"tensor with negative dimension -5.*; fix those values or its __init__",
    ),
    ([*CUSTOM_NET, "model.hidden=abc"], r"building it with model.hidden=abc raised TypeError: "),
    (
        ["model=custom", "model._target_=mynet.Refuses"],
        r"model._target_=mynet.Refuses: building it raised ValueError: needs a GPU; fix",
    ),
    (["model=custom", "model._target_=mynet.Empty"], "model._target_=mynet.Empty has no parameters to train"),
    (
        ["model=custom", "model._target_=mynet.WrongOut"],
        r"model._target_=mynet.WrongOut gives 3 outputs per example, and the data has 10 classes: give it "
        r"num_outputs",
    ),
    (  # a torch class goes by its signature too, and its forward is tried on two examples
        ["model=custom", "model._target_=torch.nn.Linear", "model.in_features=64", "model.out_features=10"],
        r"model._target_=torch.nn.Linear: its forward on 2 training examples, shape \(2, 1, 8, 8\), raised "
        r"RuntimeError: mat1 and mat2 shapes cannot be multiplied .*; make it take inputs of shape "
        r"\(N, 1, 8, 8\)",
    ),
    (
        ["data=custom", "data._target_=mydata.raises"],
        "data._target_=mydata.raises raised FileNotFoundError: no file data.npz; fix mydata.raises",
    ),
    (
        ["data=custom", "data._target_=mydata.bad_items"],
        "data._target_=mydata.bad_items: the train split's item 3 raised KeyError: 'row 3'; fix its Dataset",
    ),
    (
        ["data=custom", "data._target_=mydata.with_nan"],
        r"data._target_=mydata.with_nan: the train split's inputs hold 'nan' at \[5, 2\], not a finite "
        r"number; drop or fill",
    ),
    (
        ["data=custom", "data._target_=mydata.with_inf"],
        r"data._target_=mydata.with_inf: the train split's targets hold '-inf' at \[7\], not a finite number",
    ),
    (
        ["data=custom", "data._target_=mydata.huge_label"],
        r"data._target_=mydata.huge_label: the largest class label is 1,000,000,000 \(in the train split\)",
    ),
    (
        ["data=custom", "data._target_=mydata.one_class"],
        "every train target is class 0, so there is nothing to learn; .* or data.task=regression",
    ),
]


@pytest.mark.parametrize(("overrides", "said"), MISTAKES)
def test_each_mistake_is_one_line_exit_2_and_leaves_no_folder(user_folder, overrides, said):
    with pytest.raises((ConfigError, DataError), match=said) as refused:
        nnexp.run([*overrides, "debug=smoke"], user_folder / "run")
    assert "\n" not in str(refused.value) and refused.value.exit_code == 2
    assert not (user_folder / "run").exists()


def test_a_torch_class_and_one_class_as_regression_train_with_the_arguments_they_take(user_folder):
    linear = nnexp.run(
        [
            *("data=custom", "data._target_=mydata.load", "model=custom", "model._target_=torch.nn.Linear"),
            *("model.in_features=30", "model.out_features=2", "trainer.epochs=1", "outputs.views=false"),
        ],
        user_folder / "linear",
    )
    assert linear.status == "completed"  # no input_shape or num_outputs: nn.Linear takes neither
    constant = nnexp.run(
        ["data=custom", "data._target_=mydata.one_class", "data.task=regression", "debug=smoke"],
        user_folder / "constant",
    )
    assert constant.status == "completed"
