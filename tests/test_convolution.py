"""Dead-tap convolutions: the same outputs and gradients as nn.Conv2d, with fewer taps on small inputs."""

from __future__ import annotations

import itertools

import pytest
import timm
import torch
from torch import nn

from selfsup.encoders.convolution import LiveTapConv2d, live_taps, skip_dead_taps
from selfsup.registry import get_encoder_builder


def test_live_taps_of_padded_kernels_on_tiny_maps():
    assert live_taps(1, 3, 1, 1) == (1, 1, 0, 0)  # 3x3 on a 1x1 map: the centre tap only
    assert live_taps(2, 3, 2, 1) == (1, 2, 0, 0)  # stride-2 3x3 on a 2x2 map: a 2x2 kernel, no padding
    assert live_taps(8, 3, 1, 1) == (0, 2, 1, 1)  # nothing to skip on a larger map
    assert live_taps(1, 3, 3, 0) is None  # too small to convolve


@pytest.mark.parametrize("groups", [1, 2])
def test_outputs_and_gradients_match_nn_conv2d(groups):
    torch.manual_seed(0)
    cropped = 0
    for height, width, kernel, stride, padding in itertools.product([1, 2, 3, 5], [1, 2, 4], [1, 2, 3, 5], [1, 2, 3], [0, 1, 2]):
        if (height + 2 * padding - kernel) // stride < 0 or (width + 2 * padding - kernel) // stride < 0:
            continue
        reference = nn.Conv2d(4, 6, kernel, stride, padding, groups=groups).double()
        conv = nn.Conv2d(4, 6, kernel, stride, padding, groups=groups).double()
        conv.load_state_dict(reference.state_dict())
        skip_dead_taps(conv)
        x_ref = torch.randn(3, 4, height, width, dtype=torch.double, requires_grad=True)
        x = x_ref.detach().clone().requires_grad_()
        y_ref, y = reference(x_ref), conv(x)
        assert y.shape == y_ref.shape
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
        grad = torch.randn_like(y)
        y_ref.backward(grad)
        y.backward(grad)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-10)
        torch.testing.assert_close(conv.weight.grad, reference.weight.grad, rtol=0, atol=1e-10)
        torch.testing.assert_close(conv.bias.grad, reference.bias.grad, rtol=0, atol=1e-10)
        rows, cols = live_taps(height, kernel, stride, padding), live_taps(width, kernel, stride, padding)
        cropped += rows is not None and cols is not None and (rows[1] - rows[0], cols[1] - cols[0]) != (kernel - 1,) * 2
    assert cropped > 50  # the grid exercises the cropped path, not only the fallback


def test_resnet_encoders_skip_dead_taps_with_unchanged_weights():
    encoder = get_encoder_builder("resnet18")()
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is LiveTapConv2d for m in convs)
    plain = timm.create_model("resnet18", pretrained=False, num_classes=0, zero_init_last=False)
    plain.load_state_dict(encoder.model.state_dict())  # same keys and shapes: checkpoints and exports unchanged
    plain.eval(), encoder.eval()
    images = torch.randn(2, 3, 32, 32)  # the last stage runs on 1x1 maps: its 3x3 kernels are cropped
    with torch.no_grad():
        torch.testing.assert_close(encoder.model.forward_features(images), plain.forward_features(images),
                                   rtol=1e-4, atol=1e-5)
