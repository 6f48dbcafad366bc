"""The grounder's learning-rate schedule is transformers' linear warmup + linear decay."""
import pytest
import torch

from grounding.train import lr_schedule


def lrs(warmup, total, steps=None):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_schedule(opt, warmup, total)
    out = []
    for _ in range(steps or total):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out, opt, sched


def test_linear_warmup_then_linear_decay_to_zero():
    got, _, _ = lrs(3, 10, 11)
    want = [0, 1 / 3, 2 / 3, 1, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7, 0]
    assert got == pytest.approx(want)


def test_no_warmup_starts_at_full_rate():
    got, _, _ = lrs(0, 4)
    assert got == pytest.approx([1, 0.75, 0.5, 0.25])


def test_schedule_state_resumes():
    _, _, sched = lrs(2, 8, 5)
    state = sched.state_dict()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    again = lr_schedule(opt2, 2, 8)
    again.load_state_dict(state)
    opt2.param_groups[0]["lr"] = again.get_last_lr()[0]
    assert again.get_last_lr() == pytest.approx(sched.get_last_lr()) and sched.get_last_lr() == pytest.approx([3 / 6])
    opt2.step()
    again.step()
    assert again.get_last_lr()[0] == pytest.approx(2 / 6)
