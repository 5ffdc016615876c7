"""Keras definitions of the registered CNNs (twins of ``models/torch_archs.py``).

Same topology and parameter counts as the PyTorch twins. Inputs are NHWC. PyTorch's symmetric
padding is reproduced with explicit ``ZeroPadding2D`` before strided convolutions and pools.
"""

from __future__ import annotations


def build_seedcnn(num_classes: int, in_channels: int = 3, image_size: int = 224):
    import keras
    from keras import layers

    inputs = keras.Input(shape=(image_size, image_size, in_channels), name="input")
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="seedcnn")


def _bn(name: str):
    from keras import layers

    # PyTorch's defaults: eps 1e-5, running stats updated with momentum 0.1 (= Keras 0.9)
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    from keras import layers

    pad = kernel // 2
    if stride > 1 and pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        return layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=name)(x)
    padding = "same" if pad else "valid"
    return layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, use_bias=False, name=name
    )(x)


def _basic_block(x, in_planes: int, planes: int, stride: int, name: str):
    from keras import layers

    out = _conv(x, planes, 3, stride, f"{name}_conv1")
    out = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(out))
    out = _bn(f"{name}_bn2")(_conv(out, planes, 3, 1, f"{name}_conv2"))
    shortcut = x
    if stride != 1 or in_planes != planes:
        shortcut = _bn(f"{name}_down_bn")(_conv(x, planes, 1, stride, f"{name}_down"))
    return layers.ReLU(name=f"{name}_relu2")(layers.Add(name=f"{name}_add")([out, shortcut]))


def build_resnet18(num_classes: int, in_channels: int = 3, image_size: int = 224):
    import keras
    from keras import layers

    inputs = keras.Input(shape=(image_size, image_size, in_channels), name="input")
    x = _conv(inputs, 64, 7, 2, "stem_conv")
    x = layers.ReLU(name="stem_relu")(_bn("stem_bn")(x))
    # after ReLU every value is >= 0, so zero padding equals PyTorch's -inf padding here
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    in_planes = 64
    for i, planes in enumerate((64, 128, 256, 512)):
        stride = 1 if i == 0 else 2
        x = _basic_block(x, in_planes, planes, stride, f"layer{i + 1}_0")
        x = _basic_block(x, planes, planes, 1, f"layer{i + 1}_1")
        in_planes = planes
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet18")
