import numpy as np
import pytest

from models.errors import UserInputError
from models.registry import ARCHITECTURES, FRAMEWORKS, get_arch


def _torch_counts(model):
    trainable = sum(p.numel() for p in model.parameters())
    stats = sum(
        b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")
    )
    return trainable, trainable + stats


def _keras_counts(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, model.count_params()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("channels,size", [(1, 32), (3, 40)])
def test_registry_twins_have_equal_parameter_counts_when_built_for_any_input(arch, channels, size):
    spec = ARCHITECTURES[arch]
    torch_model = spec.build("torch", 7, channels, size)
    keras_model = spec.build("tf", 7, channels, size)
    assert _torch_counts(torch_model) == _keras_counts(keras_model)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_registry_twins_produce_logits_of_the_same_shape_when_run(arch):
    import torch

    spec = ARCHITECTURES[arch]
    x = np.random.default_rng(0).standard_normal((2, 48, 48, 3)).astype(np.float32)
    t_out = spec.build("torch", 5, 3, 48).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    k_out = spec.build("tf", 5, 3, 48)(x)
    assert tuple(t_out.shape) == tuple(k_out.shape) == (2, 5)


def test_registry_every_arch_has_both_twins_importable():
    from models.registry import _resolve

    for spec in ARCHITECTURES.values():
        assert callable(_resolve(spec.torch_builder))
        assert callable(_resolve(spec.keras_builder))
    assert FRAMEWORKS == ("torch", "tf")


def test_seedcnn_first_dense_input_is_derived_when_image_is_224():
    model = get_arch("seedcnn").build("torch", 10, 3, 224)
    assert model.classifier[1].in_features == 128 * 56 * 56


def test_get_arch_names_choices_when_unknown():
    with pytest.raises(UserInputError, match="seedcnn"):
        get_arch("vgg99")
