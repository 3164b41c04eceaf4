using Ebp.Models;
using Ebp.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Models;

/// <remarks>
/// Building a full-size VGG (138 M parameters) costs seconds, so the structural tests share one model of each name
/// (built on first use; the tests of a class run one at a time) and the forward tests run the zoo's configuration
/// narrowed (hidden width 32, ResNet width 16): the name → configuration mapping is asserted on the full configuration.
/// </remarks>
[TestClass]
public sealed class ModelZooTests
{
    private static readonly Dictionary<string, nn.Module<Tensor, Tensor>> Shared = new(StringComparer.Ordinal);

    /// <summary>The full-size zoo model of <paramref name="name"/> (1000 classes), built once for the class.</summary>
    private static nn.Module<Tensor, Tensor> Zoo(string name)
    {
        lock (Shared)
        {
            if (!Shared.TryGetValue(name, out var m)) Shared[name] = m = ModelZoo.Create(name);
            return m;
        }
    }

    [ClassCleanup]
    public static void DisposeShared()
    {
        lock (Shared)
        {
            foreach (var m in Shared.Values) m.Dispose();
            Shared.Clear();
        }
    }

    private static bool BitEqual(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    private static long ParameterCount(nn.Module m) => m.parameters().Sum(p => p.numel());

    [TestMethod]
    [DataRow("resnet18", 11_689_512L)]
    [DataRow("resnet50", 25_557_032L)]
    [DataRow("vgg16", 138_357_544L)]
    [DataRow("vgg11_bn", 132_868_840L)]
    public void ParameterCountMatchesTorchvision(string name, long expected)
    {
        Assert.AreEqual(expected, ParameterCount(Zoo(name)));
    }

    [TestMethod]
    public void ResNet18StateDictHasTorchvisionKeyCount()
    {
        var model = Zoo("resnet18");
        var sd = model.state_dict();
        // torchvision resnet18: 62 parameters + 60 buffers (20 BatchNorms × running_mean/running_var/num_batches_tracked) = 122.
        Assert.AreEqual(122, sd.Count);
        Assert.AreEqual(20, sd.Keys.Count(k => k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)));
        Assert.AreEqual(62, model.named_parameters().Count());
        Assert.AreEqual(102, sd.Keys.Count(k => !k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)));
    }

    [TestMethod]
    public void ResNet50StateDictHasTorchvisionKeyCount()
    {
        var model = Zoo("resnet50");
        // torchvision resnet50: 161 parameters + 53 BatchNorms × 3 buffers = 320.
        Assert.AreEqual(320, model.state_dict().Count);
        Assert.AreEqual(161, model.named_parameters().Count());
    }

    [TestMethod]
    public void ResNetStateDictContainsTorchvisionKeys()
    {
        var r18 = Zoo("resnet18");
        var keys = r18.state_dict().Keys.ToHashSet();
        string[] expected =
        [
            "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
            "layer1.0.conv1.weight", "layer1.0.bn2.running_var", "layer1.1.conv2.weight",
            "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer2.0.downsample.1.num_batches_tracked",
            "layer4.1.bn2.bias", "fc.weight", "fc.bias",
        ];
        foreach (var k in expected)
            Assert.IsTrue(keys.Contains(k), $"missing {k}");
        Assert.IsFalse(keys.Any(k => k.StartsWith("layer1.0.downsample", StringComparison.Ordinal)), "layer1.0 of resnet18 needs no downsample");
        Assert.IsFalse(keys.Any(k => k.Contains(".add", StringComparison.Ordinal)), "ResidualSum must not add state");
        Assert.IsFalse(keys.Any(k => k.Contains("conv1.bias", StringComparison.Ordinal)), "ResNet convs have no bias");

        var r50 = Zoo("resnet50");
        var k50 = r50.state_dict();
        Assert.IsTrue(k50.ContainsKey("layer1.0.downsample.0.weight"), "resnet50 layer1.0 changes channels 64→256");
        CollectionAssert.AreEqual(new long[] { 64, 64, 3, 3 }, k50["layer1.0.conv2.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 256, 64, 1, 1 }, k50["layer1.0.conv3.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 1000, 2048 }, k50["fc.weight"].shape);
    }

    [TestMethod]
    public void BottleneckStrideIsOnThe3x3Conv()
    {
        var model = (ResNet)Zoo("resnet50");
        var block = (Bottleneck)model.Layer2[0];
        Assert.AreEqual(2L, block.Stride);
        // Check the strides with a forward pass: conv1 keeps the size, conv2 halves it.
        using var x = randn(1, 256, 8, 8);
        using var a = block.Conv1.call(x);
        using var b = block.Conv2.call(a);
        CollectionAssert.AreEqual(new long[] { 1, 128, 8, 8 }, a.shape);
        CollectionAssert.AreEqual(new long[] { 1, 128, 4, 4 }, b.shape);
        Assert.IsNotNull(block.Downsample);
    }

    [TestMethod]
    public void VggStateDictContainsTorchvisionKeys()
    {
        var model = Zoo("vgg16");
        var sd = model.state_dict();
        Assert.AreEqual(32, sd.Count); // 13 convs + 3 linears, weight + bias each
        CollectionAssert.AreEqual(new long[] { 64, 3, 3, 3 }, sd["features.0.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 512, 512, 3, 3 }, sd["features.28.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 4096, 25088 }, sd["classifier.0.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 1000 }, sd["classifier.6.bias"].shape);

        var bn = Zoo("vgg11_bn");
        var sdBn = bn.state_dict();
        Assert.IsTrue(sdBn.ContainsKey("features.1.running_var"));
        Assert.IsTrue(sdBn.ContainsKey("features.1.num_batches_tracked"));
        CollectionAssert.AreEqual(new long[] { 128, 64, 3, 3 }, sdBn["features.4.weight"].shape);
        CollectionAssert.AreEqual(new long[] { 512, 512, 3, 3 }, sdBn["features.25.weight"].shape);
    }

    [TestMethod]
    [DataRow("resnet18")]
    [DataRow("resnet34")]
    [DataRow("resnet50")]
    [DataRow("resnet101")]
    [DataRow("resnet152")]
    public void ResNetOutputShape(string name)
    {
        var config = (ResNetConfig)ModelZoo.Config(name);
        Assert.AreEqual(64, config.Width, "the zoo builds torchvision's width");
        using var model = ModelZoo.Build(config with { Width = 16 });
        using var x = rand(1, 3, 64, 64);
        using var y = model.call(x);
        CollectionAssert.AreEqual(new long[] { 1, 1000 }, y.shape);
        Assert.IsTrue(isfinite(y).all().item<bool>());
    }

    [TestMethod]
    [DataRow("vgg11")]
    [DataRow("vgg11_bn")]
    [DataRow("vgg13")]
    [DataRow("vgg13_bn")]
    [DataRow("vgg16")]
    [DataRow("vgg16_bn")]
    [DataRow("vgg19")]
    [DataRow("VGG19_BN")]
    public void VggOutputShape(string name)
    {
        var config = (VggConfig)ModelZoo.Config(name, numClasses: 7);
        Assert.AreEqual(4096, config.Hidden, "the zoo builds torchvision's hidden width");
        Assert.AreEqual(name.EndsWith("_bn", StringComparison.OrdinalIgnoreCase), config.BatchNorm);
        using var model = ModelZoo.Build(config with { Hidden = 32 });
        using var x = rand(2, 3, 32, 32);
        using var y = model.call(x);
        CollectionAssert.AreEqual(new long[] { 2, 7 }, y.shape);
        Assert.IsTrue(isfinite(y).all().item<bool>());
    }

    [TestMethod]
    public void ZooModelsAreInEvalModeAndDeterministic()
    {
        var model = Zoo("vgg11_bn");
        Assert.IsFalse(model.training);
        using var x = rand(1, 3, 32, 32);
        using var a = model.call(x);
        using var b = model.call(x);
        Assert.IsTrue(BitEqual(a, b), "dropout must be inactive in eval mode");
    }

    [TestMethod]
    public void UnknownNameListsValidNames()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => ModelZoo.Create("resnet19"));
        StringAssert.Contains(e.Message, "resnet19");
        foreach (var n in new[] { "vgg11", "vgg16_bn", "resnet18", "resnet152" })
            StringAssert.Contains(e.Message, n);
        Assert.AreEqual(13, ModelZoo.Names.Count);
    }

    [TestMethod]
    public void EveryModuleIsInvokedThroughCall()
    {
        // Forward hooks only fire through call(); every leaf module must see its hook fire.
        foreach (var name in new[] { "resnet18", "resnet50", "vgg11_bn" })
        {
            var model = name.StartsWith("vgg") ? (nn.Module)new Vgg(VggConfig.Vgg11(true, 10) with { Hidden = 32 }) : Zoo(name);
            var fired = new HashSet<string>();
            var removers = new List<Action>();
            foreach (var (path, m) in model.named_modules())
            {
                var p = path;
                switch (m)
                {
                    case nn.Module<Tensor, Tensor> one: { var r = one.register_forward_hook((nn.Module _) => { fired.Add(p); }); removers.Add(r.remove); break; }
                    case nn.Module<Tensor, Tensor, Tensor> two: { var r = two.register_forward_hook((nn.Module _) => { fired.Add(p); }); removers.Add(r.remove); break; }
                }
            }
            model.eval();
            using var x = rand(1, 3, 32, 32);
            using var y = ((nn.Module<Tensor, Tensor>)model).call(x);
            var notFired = model.named_modules().Select(t => t.name).Where(n => !fired.Contains(n)).ToList();
            Assert.AreEqual(0, notFired.Count, $"{name}: modules not invoked through call(): {string.Join(", ", notFired)}");
            foreach (var r in removers) r();
            if (name.StartsWith("vgg")) model.Dispose();
        }
    }

    [TestMethod]
    public void ResidualBlocksHaveAnAddModule()
    {
        var model = (ResNet)Zoo("resnet18");
        var adds = model.named_modules().Where(t => t.module is ResidualSum).Select(t => t.name).ToList();
        Assert.AreEqual(8, adds.Count);
        CollectionAssert.Contains(adds, "layer1.0.add");
        CollectionAssert.Contains(adds, "layer4.1.add");
        var block = (BasicBlock)model.Layer1[0];
        Assert.IsNull(block.Downsample);
        Assert.IsNotNull(((BasicBlock)model.Layer2[0]).Downsample);
    }

    private static IEnumerable<(string name, nn.Module module)> PreOrder(nn.Module m, string prefix)
    {
        foreach (var (n, c) in m.named_children())
        {
            string full = prefix.Length == 0 ? n : prefix + "." + n;
            yield return (full, c);
            foreach (var d in PreOrder(c, full)) yield return d;
        }
    }

    [TestMethod]
    public void DefinitionOrderIsTorchvisions()
    {
        var model = Zoo("resnet18");
        var top = model.named_children().Select(c => c.name).ToArray();
        CollectionAssert.AreEqual(new[] { "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc" }, top);
        // PyTorch's named_modules() is a pre-order walk; TorchSharp's lists all direct children before any
        // grandchildren, so "last conv/linear in definition order" needs an explicit pre-order walk.
        var lastLinearOrConv = PreOrder(model, "").Last(t => t.module is Conv2d or Linear).name;
        Assert.AreEqual("fc", lastLinearOrConv);
        var preOrder = PreOrder(model, "").Select(t => t.name).ToList();
        Assert.IsTrue(preOrder.IndexOf("layer1.0.add") < preOrder.IndexOf("layer1.1.conv1"));
        Assert.AreEqual("layer4.1.add", preOrder[^3]);

        var vgg = Zoo("vgg16"); // every torchvision VGG has these children
        CollectionAssert.AreEqual(new[] { "features", "avgpool", "classifier" }, vgg.named_children().Select(c => c.name).ToArray());
    }
}
