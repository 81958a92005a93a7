"""Every supported ONNX op, with its attribute variants, against onnxruntime and onnx's
float64 reference evaluator."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from onnx import helper

import fxq
from helpers import (F64_TOLERANCE, ORT_TOLERANCE, make_model, ort_error, run_ort,
                     run_reference_f64, save)

RNG = np.random.default_rng(1234)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@dataclass
class Case:
    id: str
    nodes: list
    inputs: dict
    init: dict = field(default_factory=dict)
    opset: int = 17
    outputs: tuple = ("y",)
    # onnx's ReferenceEvaluator applies opset-13 Softmax (one axis) to older opsets too;
    # onnxruntime implements the opset-11 coercion to 2-D, and fxq agrees with it
    float64_oracle: bool = True


N = helper.make_node
CASES = [
    # -- convolution
    Case("conv2d", [N("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
         {"x": ("N", 3, 7, 7)}, {"w": rand(4, 3, 3, 3), "b": rand(4)}),
    Case("conv2d_stride2_nobias", [N("Conv", ["x", "w"], ["y"], strides=[2, 2])],
         {"x": ("N", 2, 9, 8)}, {"w": rand(5, 2, 3, 2)}),
    Case("conv2d_asym_pads", [N("Conv", ["x", "w", "b"], ["y"], pads=[0, 2, 1, 0])],
         {"x": ("N", 2, 6, 6)}, {"w": rand(3, 2, 3, 3), "b": rand(3)}),
    Case("conv2d_same_upper", [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER",
                                 strides=[2, 2])],
         {"x": ("N", 2, 7, 6)}, {"w": rand(3, 2, 4, 4)}),
    Case("conv2d_same_lower", [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER")],
         {"x": ("N", 2, 5, 5)}, {"w": rand(3, 2, 2, 2)}),
    Case("conv2d_valid", [N("Conv", ["x", "w"], ["y"], auto_pad="VALID")],
         {"x": ("N", 1, 5, 5)}, {"w": rand(2, 1, 3, 3)}),
    Case("conv2d_depthwise", [N("Conv", ["x", "w", "b"], ["y"], group=4, pads=[1, 1, 1, 1])],
         {"x": ("N", 4, 6, 6)}, {"w": rand(4, 1, 3, 3), "b": rand(4)}),
    Case("conv2d_depthwise_multiplier2", [N("Conv", ["x", "w"], ["y"], group=3)],
         {"x": ("N", 3, 5, 5)}, {"w": rand(6, 1, 3, 3)}),
    Case("conv2d_grouped", [N("Conv", ["x", "w", "b"], ["y"], group=2, pads=[1, 0, 1, 0])],
         {"x": ("N", 4, 6, 5)}, {"w": rand(6, 2, 3, 3), "b": rand(6)}),
    Case("conv1d", [N("Conv", ["x", "w", "b"], ["y"], pads=[2, 1], strides=[2])],
         {"x": ("N", 3, 17)}, {"w": rand(4, 3, 5), "b": rand(4)}),
    Case("conv1d_depthwise", [N("Conv", ["x", "w"], ["y"], group=3, pads=[1, 1])],
         {"x": ("N", 3, 10)}, {"w": rand(3, 1, 3)}),
    # -- dense
    Case("gemm_transB_alpha_beta", [N("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.5,
                                      beta=2.0)],
         {"x": ("N", 6)}, {"w": rand(4, 6), "b": rand(4)}),
    Case("gemm_plain", [N("Gemm", ["x", "w", "b"], ["y"])],
         {"x": ("N", 6)}, {"w": rand(6, 3), "b": rand(1, 3)}),
    Case("gemm_nobias", [N("Gemm", ["x", "w"], ["y"], transB=1)],
         {"x": ("N", 5)}, {"w": rand(2, 5)}),
    Case("gemm_scalar_bias", [N("Gemm", ["x", "w", "b"], ["y"])],
         {"x": ("N", 5)}, {"w": rand(5, 2), "b": rand(1)}),
    Case("matmul", [N("MatMul", ["x", "w"], ["y"])], {"x": ("N", 7)}, {"w": rand(7, 3)}),
    Case("matmul_add", [N("MatMul", ["x", "w"], ["t"]), N("Add", ["t", "b"], ["y"])],
         {"x": ("N", 7)}, {"w": rand(7, 3), "b": rand(3)}),
    Case("matmul_3d_add", [N("MatMul", ["x", "w"], ["t"]), N("Add", ["b", "t"], ["y"])],
         {"x": ("N", 4, 7)}, {"w": rand(7, 3), "b": rand(1, 3)}),
    # -- element-wise and merges
    Case("add_two_inputs", [N("Add", ["x", "z"], ["y"])], {"x": ("N", 3, 4), "z": ("N", 3, 4)}),
    Case("add_broadcast_input", [N("Add", ["x", "z"], ["y"])],
         {"x": ("N", 3, 4), "z": ("N", 1, 4)}),
    Case("add_const_channel", [N("Relu", ["x"], ["r"]), N("Add", ["r", "c"], ["y"])],
         {"x": ("N", 3, 4, 4)}, {"c": rand(3, 1, 1)}),
    Case("mul_const", [N("Mul", ["x", "c"], ["y"])], {"x": ("N", 3, 4)}, {"c": rand(4)}),
    Case("mul_two_inputs", [N("Mul", ["x", "z"], ["y"])], {"x": ("N", 5), "z": ("N", 5)}),
    Case("sub_two_inputs", [N("Sub", ["x", "z"], ["y"])], {"x": ("N", 3, 4), "z": ("N", 3, 4)}),
    Case("sub_broadcast_input", [N("Relu", ["z"], ["r"]), N("Sub", ["x", "r"], ["y"])],
         {"x": ("N", 3, 4), "z": ("N", 1, 4)}),
    Case("const_minus_input", [N("Relu", ["x"], ["r"]), N("Sub", ["c", "r"], ["y"])],
         {"x": ("N", 3, 4)}, {"c": rand(3, 1)}),
    Case("sub_div_const", [N("Sub", ["x", "c"], ["t"]), N("Div", ["t", "d"], ["y"])],
         {"x": ("N", 2, 3)}, {"c": rand(3), "d": np.array([2.0, -4.0, 0.5], np.float32)}),
    Case("concat_channels", [N("Relu", ["x"], ["a"]), N("Sigmoid", ["x"], ["b"]),
                             N("Concat", ["a", "b"], ["y"], axis=1)], {"x": ("N", 2, 3, 3)}),
    Case("concat_last_negative_axis", [N("Concat", ["x", "z"], ["y"], axis=-1)],
         {"x": ("N", 2, 3), "z": ("N", 2, 5)}),
    Case("residual", [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                      N("Add", ["c", "x"], ["s"]), N("Relu", ["s"], ["y"])],
         {"x": ("N", 2, 5, 5)}, {"w": rand(2, 2, 3, 3)}),
    # -- activations
    Case("relu", [N("Relu", ["x"], ["y"])], {"x": ("N", 10)}),
    Case("leaky_relu", [N("LeakyRelu", ["x"], ["y"], alpha=0.2)], {"x": ("N", 10)}),
    Case("leaky_relu_default", [N("LeakyRelu", ["x"], ["y"])], {"x": ("N", 3, 4)}),
    Case("elu", [N("Elu", ["x"], ["y"], alpha=0.7)], {"x": ("N", 10)}),
    Case("elu_default", [N("Elu", ["x"], ["y"])], {"x": ("N", 3, 4)}),
    Case("selu", [N("Selu", ["x"], ["y"])], {"x": ("N", 3, 4)}),
    Case("hard_sigmoid", [N("HardSigmoid", ["x"], ["y"], alpha=1 / 6, beta=0.5)],
         {"x": ("N", 10)}),
    Case("hard_sigmoid_default", [N("HardSigmoid", ["x"], ["y"])], {"x": ("N", 3, 4)}),
    Case("hard_swish", [N("HardSwish", ["x"], ["y"])], {"x": ("N", 2, 3, 4)}, opset=14),
    Case("prelu_per_channel", [N("PRelu", ["x", "s"], ["y"])], {"x": ("N", 3, 4, 4)},
         {"s": rand(3, 1, 1)}),
    Case("prelu_shared", [N("PRelu", ["x", "s"], ["y"])], {"x": ("N", 5)}, {"s": rand(1)}),
    Case("resize_nearest_half_pixel", [N("Resize", ["x", "", "s"], ["y"], mode="nearest")],
         {"x": ("N", 2, 3, 4)}, {"s": np.array([1, 1, 2, 3], np.float32)}),
    Case("resize_nearest_asymmetric_ceil",
         [N("Resize", ["x", "", "s"], ["y"], mode="nearest", nearest_mode="ceil",
            coordinate_transformation_mode="asymmetric")],
         {"x": ("N", 2, 5)}, {"s": np.array([1, 1, 1.5], np.float32)}, opset=13),
    Case("resize_nearest_align_corners_sizes_axes",
         [N("Resize", ["x", "", "", "z"], ["y"], mode="nearest", axes=[2, 3],
            coordinate_transformation_mode="align_corners")],
         {"x": ("N", 2, 3, 3)}, {"z": np.array([5, 7], np.int64)}, opset=19),
    Case("clip_relu6", [N("Clip", ["x", "lo", "hi"], ["y"])], {"x": ("N", 10)},
         {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}),
    Case("clip_min_only", [N("Clip", ["x", "lo"], ["y"])], {"x": ("N", 10)},
         {"lo": np.array(-0.5, np.float32)}),
    Case("clip_max_only", [N("Clip", ["x", "", "hi"], ["y"])], {"x": ("N", 10)},
         {"hi": np.array(0.25, np.float32)}),
    Case("sigmoid", [N("Sigmoid", ["x"], ["y"])], {"x": ("N", 10)}),
    Case("tanh", [N("Tanh", ["x"], ["y"])], {"x": ("N", 10)}),
    Case("softmax_opset13", [N("Softmax", ["x"], ["y"])], {"x": ("N", 10)}, opset=13),
    Case("softmax_opset11_coerced", [N("Softmax", ["x"], ["y"], axis=1)],
         {"x": ("N", 3, 4)}, opset=11, float64_oracle=False),
    Case("softmax_axis1_4d", [N("Softmax", ["x"], ["y"], axis=1)], {"x": ("N", 3, 2, 2)}),
    # -- pooling
    Case("maxpool2d", [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
         {"x": ("N", 3, 8, 8)}),
    Case("maxpool2d_pads", [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
         {"x": ("N", 2, 5, 5)}),
    Case("maxpool2d_same_upper", [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3],
                                    strides=[2, 2], auto_pad="SAME_UPPER")],
         {"x": ("N", 2, 6, 6)}),
    Case("maxpool1d", [N("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2])],
         {"x": ("N", 3, 11)}),
    Case("avgpool2d", [N("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
         {"x": ("N", 3, 8, 8)}),
    Case("avgpool2d_pads_exclude", [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1], count_include_pad=0)],
         {"x": ("N", 2, 5, 5)}),
    Case("avgpool2d_pads_include", [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                      pads=[1, 0, 1, 2], count_include_pad=1)],
         {"x": ("N", 2, 5, 5)}),
    Case("avgpool1d_pads_exclude", [N("AveragePool", ["x"], ["y"], kernel_shape=[4],
                                      pads=[1, 2], strides=[3])],
         {"x": ("N", 2, 12)}),
    Case("global_avg_pool", [N("GlobalAveragePool", ["x"], ["y"])], {"x": ("N", 3, 4, 5)}),
    Case("global_max_pool", [N("GlobalMaxPool", ["x"], ["y"])], {"x": ("N", 3, 4, 5)}),
    Case("global_avg_pool_1d", [N("GlobalAveragePool", ["x"], ["y"])], {"x": ("N", 3, 9)}),
    Case("reduce_mean_spatial_keepdims", [N("ReduceMean", ["x"], ["y"], axes=[2, 3])],
         {"x": ("N", 3, 4, 5)}, opset=13),
    Case("reduce_mean_negative_axes_flat",
         [N("ReduceMean", ["x"], ["y"], axes=[-1, -2], keepdims=0)],
         {"x": ("N", 3, 4, 5)}, opset=13),
    Case("reduce_mean_axes_input_opset18", [N("ReduceMean", ["x", "a"], ["y"], keepdims=0)],
         {"x": ("N", 2, 6)}, {"a": np.array([2], np.int64)}, opset=18),
    Case("reduce_max_spatial", [N("ReduceMax", ["x", "a"], ["y"])], {"x": ("N", 3, 4, 4)},
         {"a": np.array([2, 3], np.int64)}, opset=18),
    Case("reduce_sum_spatial", [N("ReduceSum", ["x", "a"], ["y"])], {"x": ("N", 3, 4, 5)},
         {"a": np.array([2, 3], np.int64)}, opset=13),
    Case("reduce_sum_1d_flat", [N("ReduceSum", ["x", "a"], ["y"], keepdims=0)],
         {"x": ("N", 2, 7)}, {"a": np.array([-1], np.int64)}, opset=18),
    # -- batch norm
    Case("batchnorm_standalone", [N("Relu", ["x"], ["r"]),
                                  N("BatchNormalization", ["r", "s", "b", "m", "v"], ["y"],
                                    epsilon=1e-3)],
         {"x": ("N", 3, 4, 4)}, {"s": rand(3), "b": rand(3), "m": rand(3),
                                 "v": np.abs(rand(3)) + 0.1}),
    Case("batchnorm_after_conv", [N("Conv", ["x", "w", "cb"], ["c"]),
                                  N("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"])],
         {"x": ("N", 2, 5, 5)}, {"w": rand(3, 2, 3, 3), "cb": rand(3), "s": rand(3),
                                 "b": rand(3), "m": rand(3), "v": np.abs(rand(3)) + 0.1}),
    Case("batchnorm_after_gemm", [N("Gemm", ["x", "w"], ["c"], transB=1),
                                  N("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"])],
         {"x": ("N", 6)}, {"w": rand(4, 6), "s": rand(4), "b": rand(4), "m": rand(4),
                           "v": np.abs(rand(4)) + 0.1}),
    Case("batchnorm_1d", [N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
         {"x": ("N", 3, 7)}, {"s": rand(3), "b": rand(3), "m": rand(3),
                              "v": np.abs(rand(3)) + 0.1}),
    # -- layout
    Case("flatten", [N("Flatten", ["x"], ["y"])], {"x": ("N", 2, 3, 4)}),
    Case("reshape_minus1_first", [N("Reshape", ["x", "s"], ["y"])], {"x": ("N", 2, 3, 4)},
         {"s": np.array([-1, 6, 4], np.int64)}),
    Case("reshape_zero_copy", [N("Reshape", ["x", "s"], ["y"])], {"x": ("N", 2, 3, 4)},
         {"s": np.array([0, 0, -1], np.int64)}),
    Case("reshape_to_batch_from_shape",          # TorchScript's x.view(x.size(0), -1)
         [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i"], ["n"], axis=0),
          N("Unsqueeze", ["n", "a"], ["n1"]), N("Concat", ["n1", "m"], ["t"], axis=0),
          N("Reshape", ["x", "t"], ["y"])], {"x": ("N", 2, 3)},
         {"i": np.array(0, np.int64), "a": np.array([0], np.int64),
          "m": np.array([-1], np.int64)}),
    Case("unsqueeze_squeeze_axes_input",
         [N("Unsqueeze", ["x", "a"], ["t"]), N("Relu", ["t"], ["r"]),
          N("Squeeze", ["r", "b"], ["y"])], {"x": ("N", 3, 4)},
         {"a": np.array([1, -1], np.int64), "b": np.array([1], np.int64)}),
    Case("unsqueeze_squeeze_axes_attribute_opset11",
         [N("Unsqueeze", ["x"], ["t"], axes=[2]), N("Relu", ["t"], ["r"]),
          N("Squeeze", ["r"], ["y"], axes=[-1])], {"x": ("N", 5)}, opset=11),
    Case("transpose_nhwc", [N("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])],
         {"x": ("N", 2, 3, 4)}),
    Case("gather_spatial", [N("Gather", ["x", "i"], ["y"], axis=2)], {"x": ("N", 2, 4, 3)},
         {"i": np.array([3, 0, 0, -1], dtype=np.int64)}),
    Case("pad_constant", [N("Pad", ["x", "p", "v"], ["y"])], {"x": ("N", 2, 3, 3)},
         {"p": np.array([0, 0, 1, 2, 0, 1, 0, 1], np.int64), "v": np.array(0.5, np.float32)}),
    Case("pad_axes_opset18", [N("Pad", ["x", "p", "", "a"], ["y"])], {"x": ("N", 2, 3, 3)},
         {"p": np.array([1, 2, 0, 1], np.int64), "a": np.array([2, 3], np.int64)}, opset=18),
    Case("identity_dropout", [N("Identity", ["x"], ["a"]), N("Dropout", ["a"], ["b"]),
                              N("Relu", ["b"], ["y"])], {"x": ("N", 4)}),
    Case("identity_output", [N("Relu", ["x"], ["a"]), N("Identity", ["a"], ["y"])],
         {"x": ("N", 4)}),
    Case("constant_node", [N("Constant", [], ["c"], value=helper.make_tensor(
        "c", 1, [3], [1.0, -2.0, 0.5])), N("Mul", ["x", "c"], ["y"])], {"x": ("N", 2, 3)}),
    Case("constant_subgraph_folded", [N("Transpose", ["w"], ["wt"], perm=[1, 0]),
                                      N("MatMul", ["x", "wt"], ["y"])],
         {"x": ("N", 5)}, {"w": rand(3, 5)}),
    Case("two_outputs", [N("Relu", ["x"], ["y"]), N("Tanh", ["x"], ["z"])], {"x": ("N", 4)},
         outputs=("y", "z")),
]
# the same small network at the ends of the supported opset range
for opset in (11, 13, 21):
    CASES.append(Case(f"conv_pool_dense_opset{opset}", [
        N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["r"]),
        N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        N("Flatten", ["p"], ["f"]), N("Gemm", ["f", "d", "e"], ["g"], transB=1),
        N("Softmax", ["g"], ["y"], axis=1)],
        {"x": ("N", 1, 6, 6)}, {"w": rand(2, 1, 3, 3), "b": rand(2), "d": rand(3, 18),
                                "e": rand(3)}, opset=opset))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_matches_onnxruntime_and_float64_reference(case: Case, tmp_path):
    model = make_model(case.nodes, case.inputs, list(case.outputs), case.init, case.opset)
    path = save(model, tmp_path)
    feeds = {name: rand(5, *shape[1:], scale=2.0) for name, shape in case.inputs.items()}
    graph = fxq.load(path)
    got = graph.run(feeds)
    got = [got] if isinstance(got, np.ndarray) else [got[n] for n in case.outputs]
    for y, want in zip(got, run_ort(path, feeds)):
        assert y.shape == want.shape
        assert ort_error(y, want) <= ORT_TOLERANCE
    if not case.float64_oracle:
        return
    for y, want in zip(got, run_reference_f64(model, feeds)):
        assert np.max(np.abs(y - want)) <= F64_TOLERANCE


def test_every_supported_op_type_is_covered():
    covered = {n.op_type for case in CASES for n in case.nodes}
    assert set(fxq.onnx_import.supported_op_types()) <= covered
