using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Tests;

/// <summary>The imported module's logits against ONNX Runtime on the same file.</summary>
[TestClass]
public sealed class RuntimeParityTests
{
    [TestMethod]
    [DataRow("vgg_bn.onnx")]
    [DataRow("resnet_basic.onnx")]
    [DataRow("resnet_bottleneck.onnx")]
    [DataRow("resnet_bottleneck_folded.onnx")]
    [DataRow("squeezenet_concat.onnx")]
    [DataRow("mobilenet_depthwise.onnx")]
    [DataRow("keras_nhwc.onnx")]
    [DataRow("softmax_head.onnx")]
    [DataRow("opset9_flatten.onnx")]
    [DataRow("squeeze_excite.onnx")]
    [DataRow("lrn_gemm.onnx")]
    [DataRow("external/vgg_bn_external.onnx")]
    [DataRow("reference/resnet_bottleneck_ebp_layer3.onnx")]
    public void LogitsEqualOnnxRuntime(string fixture)
    {
        using var scope = torch.NewDisposeScope();
        var path = Fixtures.Path(fixture);
        using var model = OnnxModel.Load(path);
        var generator = new Generator(1234);
        foreach (var input in new[] { torch.rand(model.InputShape.ToArray(), generator: generator), torch.randn(model.InputShape.ToArray(), generator: generator) })
        {
            var expected = Fixtures.RunOrt(path, model.InputName, input);
            var logits = model.Module.call(input);
            var actual = model.Head switch
            {
                OnnxHead.Softmax => logits.softmax(-1),
                OnnxHead.LogSoftmax => logits.log_softmax(-1),
                _ => logits,
            };
            CollectionAssert.AreEqual(expected.shape, actual.shape);
            double err = Fixtures.RelativeError(actual, expected);
            Assert.IsTrue(err <= 1e-4, $"{fixture}: max rel err {err:E2} against ONNX Runtime");
        }
    }

    [TestMethod]
    public void SoftmaxHeadIsLeftOutAndNamesComeFromTheMetadata()
    {
        using var model = OnnxModel.Load(Fixtures.Path("softmax_head.onnx"));
        Assert.AreEqual(OnnxHead.Softmax, model.Head);
        Assert.AreEqual(10, model.ClassCount);
        Assert.AreEqual("class_3", model.ClassNames![3]);
        using var scope = torch.NewDisposeScope();
        var logits = model.Module.call(torch.rand(1, 3, 32, 32));
        // Logits, not probabilities: a softmax output would sum to exactly 1.
        Assert.IsTrue(Math.Abs(logits.sum().item<float>() - 1) > 1e-3);
    }

    [TestMethod]
    public void ImportedModuleKeepsTorchvisionNamesAndSuggestsTorchRaysLayers()
    {
        using (var resnet = OnnxModel.Load(Fixtures.Path("resnet_bottleneck.onnx")))
        {
            var names = Ebp.Composites.ModelInspection.NamedModules(resnet.Module).Select(m => m.Name).ToHashSet();
            foreach (var n in new[] { "conv1", "layer1.0.conv1", "layer2.0.downsample.0", "layer3", "avgpool", "fc" })
                Assert.IsTrue(names.Contains(n), $"missing module '{n}'");
            Assert.AreEqual(new SuggestedLayers("layer3", "avgpool", "fc"), resnet.Suggested);
        }
        using (var vgg = OnnxModel.Load(Fixtures.Path("vgg_bn.onnx")))
            // cfg [8,M,16,M,32,32,M]: the pool before the last conv stage is features.7, fc8's input is classifier.4.
            Assert.AreEqual(new SuggestedLayers("features.7", "classifier.4", "classifier.6"), vgg.Suggested);
    }
}

/// <summary>Real inputs: handwritten MNIST test digits (the committed subset), centred on each fixture's canvas.</summary>
[TestClass]
public sealed class RealInputParityTests
{
    [TestMethod]
    [DataRow("vgg_bn.onnx")]
    [DataRow("resnet_basic.onnx")]
    [DataRow("squeezenet_concat.onnx")]
    [DataRow("mobilenet_depthwise.onnx")]
    [DataRow("softmax_head.onnx")]
    [DataRow("opset9_flatten.onnx")]
    public void LogitsEqualOnnxRuntime_OnRealDigits(string fixture)
    {
        using var scope = torch.NewDisposeScope();
        var path = Fixtures.Path(fixture);
        using var model = OnnxModel.Load(path);
        var digits = Ebp.Datasets.IdxReader.ReadImages(Fixtures.Path("mnist/t10k-images-idx3-ubyte.gz"));
        var shape = model.InputShape.ToArray();
        Assert.AreEqual(4, shape.Length);
        long c = shape[1], h = shape[2], w = shape[3];
        for (int d = 0; d < 3; d++)
        {
            var canvas = new float[c * h * w];
            int oy = (int)(h - digits.Rows) / 2, ox = (int)(w - digits.Cols) / 2;
            for (int y = 0; y < digits.Rows; y++)
                for (int x = 0; x < digits.Cols; x++)
                {
                    int cy = y + oy, cx = x + ox;
                    if (cy < 0 || cx < 0 || cy >= h || cx >= w) continue;
                    float v = digits.Pixels[(d * digits.Rows + y) * digits.Cols + x] / 255f;
                    for (int ch = 0; ch < c; ch++) canvas[(ch * h + cy) * w + cx] = v;
                }
            var input = torch.tensor(canvas, shape);
            var expected = Fixtures.RunOrt(path, model.InputName, input);
            var logits = model.Module.call(input);
            var actual = model.Head == OnnxHead.Softmax ? logits.softmax(-1) : logits;
            double err = Fixtures.RelativeError(actual, expected);
            Assert.IsTrue(err <= 1e-4, $"{fixture}, digit {d}: max rel err {err:E2} against ONNX Runtime");
        }
    }
}
