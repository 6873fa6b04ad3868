"""TF "same" padding (Kinetics I3D's convs and pools) computed from the input's shape survives
ONNX export: sizes that are not a multiple of the stride pad the same in both."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from harkit.backbones.inflate import InflatedMaxPool3d, SamePadConv3d, SamePadMaxPool3d


@pytest.mark.parametrize(
    "module",
    [
        SamePadMaxPool3d((2, 2, 2), stride=(2, 2, 2)),  # maxpool4 of I3D: 7x7 maps at 224 px
        SamePadConv3d(2, 3, kernel_size=(3, 3, 3), stride=(2, 2, 2)),
        InflatedMaxPool3d((3, 3, 3), stride=(2, 2, 2), padding=(0, 1, 1)),  # time: replicated
    ],
)
def test_same_padding_exports_for_sizes_off_the_stride(module: torch.nn.Module) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    x = torch.rand(1, 2, 5, 7, 9)  # odd sizes: a stride-2 "same" output needs padding at the end
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (x,),
        buffer,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch", 2: "time"}},
        dynamo=False,
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for probe in (x, torch.rand(2, 2, 7, 7, 9)):  # the traced size and another length
        with torch.no_grad():
            want = module(probe).numpy()
        got = session.run(None, {"x": probe.numpy()})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)
