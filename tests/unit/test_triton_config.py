from pathlib import Path

import pytest

from exporters.errors import ExportInputError
from exporters.spec import ModelSpec, TensorSpec
from exporters.triton_config import ServingOptions, config_dict, parse_pbtxt, to_pbtxt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _spec(name="seedcnn_torch_onnx", dims=(1, 32, 32), classes=10, mbs=64, layout="NCHW"):
    arch, framework, fmt = name.split("_")
    return ModelSpec(
        name=name,
        arch=arch,
        framework=framework,
        format=fmt,
        inputs=(TensorSpec("input", "FP32", dims),),
        outputs=(TensorSpec("logits", "FP32", (classes,)),),
        layout=layout,
        max_batch_size=mbs,
        classes=tuple(str(i) for i in range(classes)),
    )


def test_config_matches_fixture_when_cpu_defaults():
    text = to_pbtxt(config_dict(_spec(), ServingOptions()))
    assert text == (FIXTURES / "seedcnn_torch_onnx_cpu.pbtxt").read_text()


def test_config_matches_fixture_when_gpu_tensorrt_without_batching():
    spec = _spec("resnet18_tf_onnx", (224, 224, 3), 1000, 32, "NHWC")
    spec = ModelSpec(**{**spec.__dict__, "classes": ("a",)})
    options = ServingOptions(
        max_batch_size=32, device="gpu", instances=2, trt="fp16", dynamic_batching=False
    )
    text = to_pbtxt(config_dict(spec, options))
    assert text == (FIXTURES / "resnet18_tf_onnx_gpu_trt.pbtxt").read_text()


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.pbtxt")))
def test_fixture_round_trips_through_triton_protobuf(fixture):
    from google.protobuf import text_format

    text = (FIXTURES / fixture).read_text()
    assert text_format.MessageToString(parse_pbtxt(text)) == text


def test_config_rejects_misspelled_field_when_serialized():
    from google.protobuf.json_format import ParseError

    bad = config_dict(_spec(), ServingOptions()) | {"max_batch_sise": 4}
    with pytest.raises(ParseError, match="max_batch_sise"):
        to_pbtxt(bad)


def test_serving_options_reject_trt_when_device_is_cpu():
    with pytest.raises(ExportInputError, match="--device gpu"):
        ServingOptions(trt="fp16").validate()


def test_config_carries_recipe_and_class_names_when_preprocess_given():
    from google.protobuf import json_format

    from exporters.triton_config import described_model
    from models.datasets import Preprocess

    recipe = Preprocess(image_size=64, channels=3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.2, 0.3))
    spec = ModelSpec(**{**_spec(classes=2).__dict__, "classes": ("cat", "dog")})
    text = to_pbtxt(config_dict(spec, ServingOptions(), recipe))
    served = json_format.MessageToDict(parse_pbtxt(text), preserving_proto_field_name=True)
    assert described_model(served) == (recipe, ("cat", "dog"))
    assert described_model({"name": "elsewhere"}) is None  # a model servebench did not export
