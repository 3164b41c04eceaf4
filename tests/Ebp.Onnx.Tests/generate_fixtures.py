#!/usr/bin/python3
"""Generates the ONNX test fixtures of Ebp.Onnx.Tests (committed in TestData/).

Run with Debian's python3-torch 1.13 and python3-onnx (apt-get install python3-torch python3-onnx):

    /usr/bin/python3 tests/Ebp.Onnx.Tests/generate_fixtures.py

The test suite itself never needs Python. Every model is seeded, so a rerun writes the same files
(up to exporter version differences)."""
import io, json, os, struct, sys, warnings
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx
from onnx import helper, numpy_helper

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "TestData")
REF = os.path.join(HERE, "..", "Ebp.Core.Tests", "TestData", "reference")
PRESERVE = torch.onnx.TrainingMode.PRESERVE


def randomise_bn(model, g):
    """Random inference statistics, positive scale: BN must do something the test can see."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean.data = 0.1 * torch.randn(n, generator=g)
            m.running_var.data = 0.5 + torch.rand(n, generator=g)


def export(model, shape, name, opset=13, training=PRESERVE, **kw):
    model.eval()
    x = torch.rand(*shape)
    path = os.path.join(OUT, name)
    torch.onnx.export(model, x, path, opset_version=opset, training=training,
                      input_names=["input"], output_names=["output"], **kw)
    print(f"{name}: {os.path.getsize(path)} bytes, opset {opset}")
    return path


# ---- architectures as the README (and Ebp's zoo) describe them -------------------------------------------

class Vgg(nn.Module):
    def __init__(self, cfg, bn, in_ch=3, hidden=32, classes=10, pool=(2, 2)):
        super().__init__()
        layers, c = [], in_ch
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.Conv2d(c, v, 3, padding=1))
                if bn:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=False))
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Sequential(
            nn.Linear(c * pool[0] * pool[1], hidden), nn.ReLU(), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(), nn.Linear(hidden, classes))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class Basic(nn.Module):
    expansion = 1

    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inp != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)  # torchvision's form: a plain '+', as exported models have it


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inp != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inp, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, w=8, classes=10, in_ch=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp = w
        for i, n in enumerate(layers):
            planes = w * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(block(inp, planes, (2 if i > 0 and j == 0 else 1)))
                inp = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- the other architectures the importer must read ----------------------------------------------------

class Fire(nn.Module):
    def __init__(self, inp, s, e):
        super().__init__()
        self.squeeze = nn.Conv2d(inp, s, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(s, e, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(s, e, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNetLike(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(16, 8, 16), Fire(32, 8, 16), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(32, 12, 24))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(48, classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class InvertedResidual(nn.Module):
    def __init__(self, c, expand, dilation=1):
        super().__init__()
        h = c * expand
        self.conv = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, 1, dilation, dilation=dilation, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.conv(x)


class MobileNetLike(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
            nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            InvertedResidual(16, 4), nn.Conv2d(16, 24, 3, 2, 1), nn.LeakyReLU(0.1),
            InvertedResidual(24, 2, dilation=2), nn.Conv2d(24, 32, 1), nn.Hardsigmoid())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class KerasLikeNhwc(nn.Module):
    """What tf2onnx emits for a Keras model: NHWC input, a Transpose to NCHW, asymmetric 'same' padding,
    count_include_pad=False pooling, a MatMul + Add dense layer."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 4, stride=2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)
        g = torch.Generator().manual_seed(7)
        self.dense_w = nn.Parameter(0.1 * torch.randn(16 * 4 * 4, classes, generator=g))
        self.dense_b = nn.Parameter(0.1 * torch.randn(classes, generator=g))

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        x = F.relu(self.conv1(F.pad(x, (1, 2, 1, 2))))  # 'same' for an even kernel: more padding after
        x = self.pool(F.relu(self.conv2(x)))
        x = x.permute(0, 2, 3, 1).reshape(1, -1)
        return x @ self.dense_w + self.dense_b


class SoftmaxHead(nn.Module):
    """Input normalisation by constants, Clip, a Gemm, and a final Softmax."""

    def __init__(self, classes=10):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, 8, 5, stride=2, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(3, 2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.act2 = nn.Hardtanh(0.0, 4.0)
        self.pool2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        return torch.softmax(self.fc(torch.flatten(x, 1)), dim=1)


class OldFlatten(nn.Module):
    """Opset 9: x.view(x.size(0), -1) exports as Shape → Gather → Unsqueeze → Concat → Reshape."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU6()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2, ceil_mode=True)
        self.fc1 = nn.Linear(8 * 4 * 4, 16)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(16, classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = x.unsqueeze(4).squeeze(4)
        x = x.view(x.size(0), -1)
        return self.fc2(self.relu3(self.fc1(x)))


class SqueezeExcite(nn.Module):
    """An element-wise product of two activations: no EBP rule exists for it."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc1 = nn.Conv2d(8, 4, 1)
        self.fc2 = nn.Conv2d(4, 8, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = self.relu(self.conv(x))
        gate = torch.sigmoid(self.fc2(self.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        x = x * gate
        return self.fc(torch.flatten(self.pool(x), 1))


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, a, b):
        return self.fc(a + b)


class CumSumModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.cumsum(x, 1))


def lrn_model():
    """torch exports LocalResponseNorm as a decomposition; the LRN operator itself (AlexNet, GoogLeNet) is written by hand."""
    g = np.random.default_rng(5)
    w = numpy_helper.from_array(g.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "conv.weight")
    fw = numpy_helper.from_array(g.normal(0, 0.3, (5, 4 * 4 * 4)).astype(np.float32), "fc.weight")
    # The bias in the typed float_data field (not raw_data), as some exporters write small tensors.
    fb = helper.make_tensor("fc.bias", onnx.TensorProto.FLOAT, [5], g.normal(0, 0.1, (5,)).astype(np.float32).tolist())
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("LRN", ["r"], ["n"], name="norm", size=3, alpha=1e-2, beta=0.75, bias=2.0),
        helper.make_node("MaxPool", ["n"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["output"], name="fc", transB=1, alpha=0.5, beta=2.0),
    ]
    graph = helper.make_graph(nodes, "lrn", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 5])], [w, fw, fb])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    m.ir_version = 7
    onnx.save(m, os.path.join(OUT, "lrn_gemm.onnx"))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(data[b:e], dtype=dt).reshape(v["shape"]).copy())
    return out


def reference_models():
    """The public reference models, rebuilt with each vector's weights and exported."""
    cases = json.load(open(os.path.join(REF, "cases.json")))
    wanted = ["vgg_bn_ebp_mid", "vgg_bn_cebp_explicit", "resnet_basic_ebp_layer2",
              "resnet_bottleneck_ebp_layer3", "resnet_bottleneck_cebp_avgpool"]
    os.makedirs(os.path.join(OUT, "reference"), exist_ok=True)
    for case in cases:
        if case["name"] not in wanted:
            continue
        spec = case["model"]
        if spec["kind"] == "vgg":
            m = Vgg(spec["cfg"], spec["batch_norm"], spec["in_channels"], spec["hidden"], spec["num_classes"], tuple(spec["pool_size"]))
        else:
            m = ResNet(Basic if spec["block"] == "basic" else Bottleneck, spec["layers"], spec["width"], spec["num_classes"], spec["in_channels"])
        t = read_safetensors(os.path.join(REF, case["file"]))
        m.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, strict=False)
        export(m, [1] + case["input_shape"][1:], os.path.join("reference", case["name"] + ".onnx"))


def bad_files():
    os.makedirs(os.path.join(OUT, "bad"), exist_ok=True)
    good = open(os.path.join(OUT, "opset9_flatten.onnx"), "rb").read()
    open(os.path.join(OUT, "bad", "truncated.onnx"), "wb").write(good[: len(good) // 2])
    open(os.path.join(OUT, "bad", "not_protobuf.onnx"), "wb").write(b"<html>this is not a model</html>\n" * 4)
    export(CumSumModel(), (1, 4), os.path.join("bad", "unsupported_op.onnx"), opset=13)
    torch.onnx.export(TwoInputs().eval(), (torch.rand(1, 4), torch.rand(1, 4)), os.path.join(OUT, "bad", "two_inputs.onnx"),
                      opset_version=13, input_names=["a", "b"], output_names=["output"])
    m = onnx.load(os.path.join(OUT, "opset9_flatten.onnx"))
    victim = [i for i in m.graph.initializer if i.name.endswith("fc1.weight")][0]
    m.graph.initializer.remove(victim)
    onnx.save(m, os.path.join(OUT, "bad", "missing_initializer.onnx"))
    torch.onnx.export(OldFlatten().eval(), torch.rand(1, 3, 16, 16), os.path.join(OUT, "bad", "dynamic_shape.onnx"),
                      opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}})
    # External data that points outside the model's folder.
    m = onnx.load(os.path.join(OUT, "opset9_flatten.onnx"))
    t = [i for i in m.graph.initializer if i.name.endswith("fc1.weight")][0]
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "../../outside.bin"), ("offset", "0"), ("length", str(8 * 4 * 4 * 16 * 4))):
        e = t.external_data.add()
        e.key, e.value = k, v
    onnx.save(m, os.path.join(OUT, "bad", "external_outside.onnx"))


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20261201)
    torch.manual_seed(20261201)
    vgg = Vgg([8, "M", 16, "M", 32, 32, "M"], True)
    randomise_bn(vgg, g)
    export(vgg, (1, 3, 64, 64), "vgg_bn.onnx")
    basic = ResNet(Basic, [1, 1, 1, 1])
    randomise_bn(basic, g)
    export(basic, (1, 3, 64, 64), "resnet_basic.onnx")
    bottleneck = ResNet(Bottleneck, [2, 1, 1, 1])
    randomise_bn(bottleneck, g)
    export(bottleneck, (1, 3, 64, 64), "resnet_bottleneck.onnx", opset=17)
    # The same bottleneck as exported by default in eval mode: BatchNorm folded into the convolutions.
    export(bottleneck, (1, 3, 64, 64), "resnet_bottleneck_folded.onnx", opset=17, training=torch.onnx.TrainingMode.EVAL)
    export(SqueezeNetLike(), (1, 3, 64, 64), "squeezenet_concat.onnx", opset=11, training=torch.onnx.TrainingMode.EVAL)
    mobile = MobileNetLike()
    randomise_bn(mobile, g)
    export(mobile, (1, 3, 32, 32), "mobilenet_depthwise.onnx", opset=14)
    export(KerasLikeNhwc(), (1, 16, 16, 3), "keras_nhwc.onnx", opset=13, training=torch.onnx.TrainingMode.EVAL)
    export(SoftmaxHead(), (1, 3, 32, 32), "softmax_head.onnx", opset=11, training=torch.onnx.TrainingMode.EVAL)
    export(OldFlatten(), (1, 3, 16, 16), "opset9_flatten.onnx", opset=9, training=torch.onnx.TrainingMode.EVAL)
    export(SqueezeExcite(), (1, 3, 16, 16), "squeeze_excite.onnx", opset=13, training=torch.onnx.TrainingMode.EVAL)
    # External data: the same VGG-BN with every initializer in a file next to the model.
    os.makedirs(os.path.join(OUT, "external"), exist_ok=True)
    m = onnx.load(os.path.join(OUT, "vgg_bn.onnx"))
    onnx.save(m, os.path.join(OUT, "external", "vgg_bn_external.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="vgg_bn_external.weights", size_threshold=0)
    # Class names in the metadata, as ML.NET and model-zoo exporters store them.
    m = onnx.load(os.path.join(OUT, "softmax_head.onnx"))
    e = m.metadata_props.add()
    e.key, e.value = "class_names", json.dumps([f"class_{i}" for i in range(10)])
    onnx.save(m, os.path.join(OUT, "softmax_head.onnx"))
    lrn_model()
    reference_models()
    bad_files()


def benchmark_model(path):
    """A full-size ResNet-50 (random weights, BatchNorm kept) for benchmarks/Ebp.Onnx.Benchmarks; not committed."""
    torch.manual_seed(0)
    m = ResNet(Bottleneck, [3, 4, 6, 3], 64, 1000).eval()
    torch.onnx.export(m, torch.rand(1, 3, 224, 224), path, opset_version=13, training=PRESERVE,
                      input_names=["input"], output_names=["output"])
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--benchmark":
        benchmark_model(sys.argv[2])
    else:
        main()
