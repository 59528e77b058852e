"""The per-path loss against its definition: the mean negative log-probability of each path's
response tokens (docs/METHOD.md, "Objective"), computed here token by token."""

import torch

from qrdistill.training.objective import per_path_loss


def test_per_path_loss_is_the_mean_response_token_nll_of_each_path():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=gen)
    labels = torch.randint(0, 11, (3, 7), generator=gen)
    labels[:, :2] = -100  # prompt
    labels[1, 5:] = -100  # padding of a shorter path
    loss, count = per_path_loss(logits, labels)

    logp = logits.log_softmax(-1)
    for b in range(3):
        nll = [-logp[b, t - 1, labels[b, t]] for t in range(1, 7) if labels[b, t] != -100]
        assert count[b] == len(nll)
        assert torch.allclose(loss[b], torch.stack(nll).mean(), atol=1e-6)
    assert count.tolist() == [5, 3, 5]


def test_per_path_loss_gradient_reaches_only_response_positions():
    logits = torch.randn(2, 5, 6, requires_grad=True)
    labels = torch.tensor([[-100, -100, 1, 2, 3], [-100, 4, 5, -100, -100]])
    per_path_loss(logits, labels)[0].sum().backward()
    touched = logits.grad.abs().sum(-1) > 0
    # position t predicts label t + 1
    assert touched.tolist() == [[False, True, True, True, False], [True, True, False, False, False]]
