"""riskmodel.device: the one device choice; and the torch-free foundation modules."""

import subprocess
import sys

import pytest
import torch

from riskmodel.device import choose_device


def test_auto_is_this_processs_gpu_or_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device() == torch.device("cpu") and choose_device("auto", local_rank=2) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("auto") == torch.device("cuda:0")
    assert choose_device("auto", local_rank=3) == torch.device("cuda:3")
    assert choose_device("cuda:1") == torch.device("cuda:1")


def test_named_devices_and_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("cpu") == torch.device("cpu") and choose_device("meta").type == "meta"
    with pytest.raises(ValueError, match=r"device='cuda:1': CUDA is not available on this machine"):
        choose_device("cuda:1")
    # Before: torch's RuntimeError, which the CLI does not turn into a one-line message.
    with pytest.raises(ValueError, match=r"device='gpu': not a device .*use auto, cpu, cuda, cuda:1"):
        choose_device("gpu")


def test_every_caller_uses_the_one_choice():
    from riskmodel.training import distributed

    assert distributed.choose_device is choose_device


def test_the_foundation_imports_no_torch():
    code = ("import sys; import riskmodel.version, riskmodel.survival, riskmodel.jsonstate, riskmodel.device, "
            "riskmodel.fusion.persist; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
