using System.Text.Json;
using Ebp.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Models;

[TestClass]
public sealed class ModelSpecTests
{
    private static nn.Module<Tensor, Tensor> Build(string json) => ModelSpec.Build(json);

    [TestMethod]
    public void VggFeatureNumberingFollowsCfg()
    {
        using var model = (Vgg)Build("""{"kind":"vgg","cfg":[8,"M",16],"batch_norm":true,"in_channels":3,"hidden":20,"num_classes":4,"pool_size":[2,3]}""");
        var children = model.Features.named_children().ToArray();
        CollectionAssert.AreEqual(new[] { "0", "1", "2", "3", "4", "5", "6" }, children.Select(c => c.name).ToArray());
        Assert.IsInstanceOfType<Conv2d>(children[0].module);
        Assert.IsInstanceOfType<BatchNorm2d>(children[1].module);
        Assert.IsInstanceOfType<ReLU>(children[2].module);
        Assert.IsInstanceOfType<MaxPool2d>(children[3].module);
        Assert.IsInstanceOfType<Conv2d>(children[4].module);
        Assert.IsInstanceOfType<BatchNorm2d>(children[5].module);
        Assert.IsInstanceOfType<ReLU>(children[6].module);
        var sd = model.state_dict();
        CollectionAssert.AreEqual(new long[] { 20, 16 * 2 * 3 }, sd["classifier.0.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 4, 20 }, sd["classifier.6.weight"].shape);
        Assert.AreEqual(2, model.Config.PoolHeight);
        Assert.AreEqual(3, model.Config.PoolWidth);
        Assert.IsFalse(model.training);
        var cls = model.Classifier.named_children().Select(c => c.module.GetType()).ToArray();
        CollectionAssert.AreEqual(new[] { typeof(Linear), typeof(ReLU), typeof(Dropout), typeof(Linear), typeof(ReLU), typeof(Dropout), typeof(Linear) }, cls);
    }

    [TestMethod]
    public void ResNetSpecUsesWidth()
    {
        using var model = (ResNet)Build("""{"kind":"resnet","block":"bottleneck","layers":[2,1,1,1],"width":8,"num_classes":10,"in_channels":3}""");
        var sd = model.state_dict();
        CollectionAssert.AreEqual(new long[] { 8, 3, 7, 7 }, sd["conv1.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 32, 8, 1, 1 }, sd["layer1.0.downsample.0.weight"].shape);
        Assert.IsTrue(sd.ContainsKey("layer1.1.conv3.weight"));
        Assert.IsFalse(sd.ContainsKey("layer1.1.downsample.0.weight"));
        CollectionAssert.AreEqual(new long[] { 10, 256 }, sd["fc.weight"].shape);
        using var y = model.call(rand(1, 3, 64, 64));
        CollectionAssert.AreEqual(new long[] { 1, 10 }, y.shape);
    }

    [TestMethod]
    public void SequentialSpecBuildsAllLayerTypes()
    {
        const string json = """
        {"kind":"sequential","layers":[
          {"type":"conv2d","in":3,"out":4,"kernel":[3,1],"stride":[1,2],"padding":[1,0],"bias":false},
          {"type":"batchnorm2d","features":4},
          {"type":"relu"},
          {"type":"maxpool2d","kernel":3,"stride":2,"padding":1},
          {"type":"avgpool2d","kernel":3,"stride":1,"padding":1},
          {"type":"adaptiveavgpool2d","output":[3,2]},
          {"type":"flatten"},
          {"type":"linear","in":24,"out":5,"bias":true}
        ]}
        """;
        using var model = Build(json);
        var sd = model.state_dict();
        CollectionAssert.AreEqual(new long[] { 4, 3, 3, 1 }, sd["0.weight"].shape);
        Assert.IsFalse(sd.ContainsKey("0.bias"));
        Assert.IsTrue(sd.ContainsKey("1.running_mean"));
        CollectionAssert.AreEqual(new long[] { 5, 24 }, sd["7.weight"].shape);
        using var y = model.call(rand(2, 3, 20, 20));
        CollectionAssert.AreEqual(new long[] { 2, 5 }, y.shape);
    }

    [TestMethod]
    public void AvgPoolCountsPadding()
    {
        using var pool = SequentialSpec.Build("""[{"type":"avgpool2d","kernel":3,"stride":1,"padding":1}]""");
        using var y = pool.call(ones(1, 1, 4, 4));
        // A corner window holds 4 ones out of 9 positions; count_include_pad divides by 9.
        Assert.AreEqual(4f / 9f, y[0, 0, 0, 0].item<float>(), 1e-6f);
        using var pool1 = SequentialSpec.Build("""[{"type":"avgpool1d","kernel":2,"stride":2,"padding":1}]""");
        using var y1 = pool1.call(ones(1, 1, 4));
        CollectionAssert.AreEqual(new long[] { 1, 1, 3 }, y1.shape);
        Assert.AreEqual(0.5f, y1[0, 0, 0].item<float>(), 1e-6f);
        using var pool3 = SequentialSpec.Build("""[{"type":"avgpool3d","kernel":[2,2,2],"stride":[2,2,2],"padding":1}]""");
        using var y3 = pool3.call(ones(new long[] { 1, 1, 2, 2, 2 }));
        Assert.AreEqual(1f / 8f, y3[0, 0, 0, 0, 0].item<float>(), 1e-6f);
    }

    [TestMethod]
    public void Conv1dAnd3dAndAdaptive1d3d()
    {
        using var m1 = SequentialSpec.Build("""[{"type":"conv1d","in":3,"out":8,"kernel":5,"stride":1,"padding":2,"bias":true},{"type":"adaptiveavgpool1d","output":5},{"type":"flatten"},{"type":"linear","in":40,"out":6,"bias":true}]""");
        using var y1 = m1.call(rand(2, 3, 64));
        CollectionAssert.AreEqual(new long[] { 2, 6 }, y1.shape);
        using var m3 = SequentialSpec.Build("""[{"type":"conv3d","in":2,"out":6,"kernel":[3,3,3],"stride":[1,1,1],"padding":[1,1,1],"bias":true},{"type":"batchnorm3d","features":6},{"type":"adaptiveavgpool3d","output":[2,2,2]},{"type":"flatten"},{"type":"linear","in":48,"out":5}]""");
        using var y3 = m3.call(rand(new long[] { 1, 2, 6, 6, 6 }));
        CollectionAssert.AreEqual(new long[] { 1, 5 }, y3.shape);
    }

    [TestMethod]
    [DataRow("""{"kind":"transformer"}""", "transformer")]
    [DataRow("""{"kind":"vgg","cfg":[8,"M"],"batchnorm":true}""", "batchnorm")]
    [DataRow("""{"kind":"resnet","block":"basic","layers":[1,1,1,1],"depth":3}""", "depth")]
    [DataRow("""{"kind":"resnet","block":"wide","layers":[1,1,1,1]}""", "wide")]
    [DataRow("""{"kind":"resnet","block":"basic","layers":[1,1,1]}""", "layers")]
    [DataRow("""{"kind":"sequential","layers":[{"type":"relu"},{"type":"gelu"}]}""", "gelu")]
    [DataRow("""{"kind":"sequential","layers":[{"type":"linear","in":3,"out":4,"bais":true}]}""", "bais")]
    [DataRow("""{"kind":"sequential","layers":[{"type":"conv2d","in":3,"out":4,"kernel":[3,3,3]}]}""", "kernel")]
    [DataRow("""{"kind":"sequential","layers":[{"type":"conv2d","in":3,"kernel":3}]}""", "out")]
    [DataRow("""{"kind":"vgg","cfg":[8,"X"]}""", "X")]
    [DataRow("""{"kind":"vgg","cfg":[8],"pool_size":[7,7],"extra":1}""", "extra")]
    [DataRow("""{"kind":"sequential","layers":[],"name":"x"}""", "name")]
    [DataRow("""{"cfg":[8]}""", "kind")]
    public void InvalidSpecThrowsNamingTheProblem(string json, string named)
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Build(json));
        StringAssert.Contains(e.Message, named);
    }
}
