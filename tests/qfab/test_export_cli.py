"""``qfab export model.py:build``: a Brevitas model of the user's own (written here, not
from the zoo: a small conv net with a residual block and a grouped conv, its own layer
names), exported into a run folder, then lowered, generated and simulated stage by stage:
levels 1 and 2 hold. An unsupported model is refused naming the module, leaving nothing."""

from __future__ import annotations

import json

import pytest

from qfab.cli import main

pytestmark = pytest.mark.slow

MODEL = """
import torch
from torch import nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int32Bias,
    Uint8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPointMaxInit,
)

W4 = {"weight_quant": Int8WeightPerTensorFixedPoint, "weight_bit_width": 4}


def relu():
    return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True)


class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.pixels = QuantIdentity(act_quant=Uint8ActPerTensorFixedPointMaxInit, bit_width=8,
                                    max_val=1 - 2**-8, return_quant_tensor=True)
        self.stem = QuantConv2d(1, 8, 3, padding=1, bias=False, **W4)
        self.stem_bn = nn.BatchNorm2d(8)
        self.stem_act = relu()
        self.pool = nn.MaxPool2d(2)
        self.grouped = QuantConv2d(8, 8, 3, padding=1, groups=4, bias=False, **W4)
        self.grouped_bn = nn.BatchNorm2d(8)
        self.requant = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=5,
                                     return_quant_tensor=True)
        self.merge_act = relu()
        self.classify = QuantLinear(8 * 4 * 4, 10, bias=True, bias_quant=Int32Bias, **W4)

    def forward(self, x):
        x = self.pool(self.stem_act(self.stem_bn(self.stem(self.pixels(x)))))
        branch = self.requant(self.grouped_bn(self.grouped(x)))
        y = self.merge_act(x.value + branch.value)
        return self.classify(torch.flatten(y, 1))


def build():
    torch.manual_seed(0)
    return MyNet()


def build_bad():
    net = build()
    net.stem_act = nn.Sigmoid()
    return net
"""

CONFIG = "hw: {target_cycles: 256}\nsim: {simulator: icarus, vectors: 8}\nsynth: {enabled: false}\n"


@pytest.fixture
def user_model(tmp_path):
    import sys

    import torch

    (tmp_path / "mynet.py").write_text(MODEL)
    sys.path.insert(0, str(tmp_path))
    try:
        import mynet

        net = mynet.build()
        with torch.no_grad():
            net.train()(torch.rand(16, 1, 8, 8))  # as training would: Brevitas' act scales
            for bn in (net.stem_bn, net.grouped_bn):  # batch-norm statistics, not defaults
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
        torch.save(net.state_dict(), tmp_path / "mynet.pt")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mynet", None)
    (tmp_path / "c.yaml").write_text(CONFIG)
    return tmp_path


def test_your_own_model_goes_through_every_stage_exactly(user_model, capsys):
    d = user_model
    run = d / "run"
    args = ["export", f"{d}/mynet.py:build", "--weights", str(d / "mynet.pt")]
    args += ["--input-shape", "1,8,8", "--config", str(d / "c.yaml"), "--out", str(run)]
    assert main(args) == 0, capsys.readouterr().err
    for stage in ("lower", "gen", "sim"):
        assert main([stage, str(run)]) == 0, capsys.readouterr().err
    report = json.loads((run / "report.json").read_text())
    assert report["source"]["input_shape"] == [1, 8, 8]
    level1 = report["equality"]["brevitas_vs_golden"]
    assert level1["mismatches"] == 0 and level1["vectors"] == 360
    rtl = report["equality"]["rtl_vs_golden"]
    assert rtl["mismatches"] == 0 and rtl["vectors"] == rtl["extreme_vectors"] + 8
    assert report["stages"] == ["export", "lower", "gen", "sim"]
    units = {n["name"] for n in report["hardware"]["units"]}
    assert {"stem", "grouped", "merge_act", "classify"} <= units  # the user's own layer names


def test_an_unsupported_model_is_refused_naming_the_module(user_model, capsys):
    d = user_model
    args = ["export", f"{d}/mynet.py:build_bad", "--input-shape", "1,8,8", "--out", str(d / "r")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("qfab: error: ") and "'stem_act' (nn.Sigmoid)" in err
    assert not (d / "r").exists()


def test_a_shape_that_is_not_the_data_sets_is_refused(user_model, capsys):
    d = user_model
    args = ["export", f"{d}/mynet.py:build", "--input-shape", "1,4,4", "--out", str(d / "r")]
    assert main(args) == 2
    assert "16 inputs; data set 'digits' has 64 features" in capsys.readouterr().err
    assert not (d / "r").exists()
