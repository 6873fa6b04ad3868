"""How far a fast path (channels-last, ONNX Runtime, bf16) may move results from fp32."""

from __future__ import annotations

#: Largest |fast - fp32| of a softmax probability, per precision the fast path ran in. fp32
#: fast paths differ from the reference only in op order and kernels (channels-last, ONNX
#: Runtime): <= 2e-7 measured. bf16 keeps 8 mantissa bits (relative rounding 2**-9 = 2e-3 per
#: op); over the test networks it moved probabilities by <= 3.7e-4 (the issue's AVX512-BF16
#: CPU saw the same 3.7e-4), so 3e-3 leaves an 8x margin.
PROB_ATOL = {"fp32": 1e-4, "bf16": 3e-3}
#: Largest ||fast - fp32|| / ||fp32|| of encoder features: fp32 <= 1e-6 measured; bf16
#: <= 7.7e-3 (roundings of 2**-9 accumulated over the depth of a ResNet18), bound 3e-2.
#: Checked beside the probabilities so that a flat softmax cannot hide wrong features.
FEATURE_RTOL = {"fp32": 1e-5, "bf16": 3e-2}
