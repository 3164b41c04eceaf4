using Ebp.Composites;
using Ebp.Rules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Rules;

/// <summary>
/// The public rule types against their naive matrix form, as zennit tests its rules: each layer is written out as a
/// dense matrix A (built with explicit loops from the layer's definition), and
/// <c>G_in = x ⊙ A⁺ᵀ(G ⊘ (A⁺x + b⁺ + ε))</c> is evaluated in double precision.
/// </summary>
[TestClass]
public sealed class RuleConfigurationTests
{
    /// <summary>x ⊙ Aᵀ(g ⊘ (Ax + bias + ε)) with A already clamped; bias null when the rule ignores it.</summary>
    private static double[] NaiveWPlus(double[,] a, double[]? bias, double[] x, double[] g, double eps)
    {
        int rows = a.GetLength(0), cols = a.GetLength(1);
        var gin = new double[cols];
        for (int j = 0; j < rows; j++)
        {
            double z = bias?[j] ?? 0;
            for (int i = 0; i < cols; i++) z += a[j, i] * x[i];
            double s = g[j] / (z + eps);
            for (int i = 0; i < cols; i++) gin[i] += a[j, i] * s;
        }
        for (int i = 0; i < cols; i++) gin[i] *= x[i];
        return gin;
    }

    /// <summary>A 5 → 4 linear layer after an identity "id", with a bias of both signs.</summary>
    private static nn.Module<Tensor, Tensor> SmallLinear()
    {
        var model = TestModels.Reinitialise(nn.Sequential(("id", nn.Identity()), ("fc", nn.Linear(5, 4))), 30);
        TestModels.SetWeights(model, "fc.bias", new[] { 0.3f, -0.2f, 0.1f, 0.05f }, new long[] { 4 });
        return model;
    }

    private static double[] D(Tensor t) => t.to(ScalarType.Float64).data<double>().ToArray();
    private static double Pos(double v) => Math.Max(v, 0);

    /// <summary>Runs <paramref name="model"/> (its first module "id" an identity) and returns G at the input, read by a probe.</summary>
    private static double[] SignalAtInput(nn.Module<Tensor, Tensor> model, Tensor x, Tensor seed, Composite composite)
    {
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Seed(seed),
            new SaliencyOptions { Composite = composite, Probe = SignalProbe.At("id") });
        return D(r.Signals!["id"]);
    }

    [TestMethod]
    [DataRow(1e-20, BiasHandling.Ignore)]
    [DataRow(0.5, BiasHandling.Ignore)]
    [DataRow(0.5, BiasHandling.Include)]
    [DataRow(1e-3, BiasHandling.Include)]
    public void Linear_MatchesDenseMatrixForm(double eps, BiasHandling bias)
    {
        using var model = SmallLinear();
        var fc = (Linear)model.named_modules().Single(m => m.name == "fc").module;
        using var x = TestModels.Image(31, 1, 5);
        using var seed = torch.rand(1, 4, generator: new Generator(32));
        var rule = new WPlusRule { Epsilon = eps, Bias = bias };
        var actual = SignalAtInput(model, x, seed, Composite.ExcitationBackprop.WithRule<Linear>(rule));

        var w = D(fc.weight!);
        var a = new double[4, 5];
        for (int j = 0; j < 4; j++) for (int i = 0; i < 5; i++) a[j, i] = Pos(w[j * 5 + i]);
        var b = bias == BiasHandling.Include ? D(fc.bias!).Select(Pos).ToArray() : null;
        NaiveRuleTests.AssertClose(NaiveWPlus(a, b, D(x), D(seed), eps), actual.Select(v => (float)v).ToArray(), 1e-5);
    }

    [TestMethod]
    public void BiasAndEpsilon_ChangeTheResult_AndTheDefaultIsTheReferenceRule()
    {
        using var model = SmallLinear();
        using var x = TestModels.Image(31, 1, 5);
        using var seed = torch.rand(1, 4, generator: new Generator(32));
        var reference = SignalAtInput(model, x, seed, Composite.ExcitationBackprop);
        var explicitDefault = SignalAtInput(model, x, seed, Composite.ExcitationBackprop.WithRule<Linear>(new WPlusRule()));
        var withBias = SignalAtInput(model, x, seed, Composite.ExcitationBackprop.WithRule<Linear>(new WPlusRule { Bias = BiasHandling.Include }));
        CollectionAssert.AreEqual(reference, explicitDefault, "new WPlusRule() is the reference rule");
        Assert.AreEqual(LayerRule.Excitation, new WPlusRule { Epsilon = WPlusRule.ReferenceEpsilon });
        Assert.IsTrue(withBias.Sum() < reference.Sum() - 1e-3, $"an included positive bias takes its share: {withBias.Sum()} vs {reference.Sum()}");
    }

    [TestMethod]
    [DataRow(1L, 0L, 0.0, BiasHandling.Ignore)]
    [DataRow(2L, 1L, 0.25, BiasHandling.Include)]
    [DataRow(1L, 1L, 1e-20, BiasHandling.Include)]
    public void Conv2d_MatchesDenseMatrixForm(long stride, long padding, double eps, BiasHandling bias)
    {
        if (eps == 0) eps = WPlusRule.ReferenceEpsilon;
        const int C = 2, O = 3, H = 6, W = 5, K = 3;
        using var model = TestModels.Reinitialise(nn.Sequential(("id", nn.Identity()),
            ("conv", nn.Conv2d(C, O, K, stride: stride, padding: padding)), ("flat", nn.Flatten())), 33 + stride);
        var conv = (Conv2d)model.named_modules().Single(m => m.name == "conv").module;
        using var x = TestModels.Image(34, 1, C, H, W);
        long ho = (H + 2 * padding - K) / stride + 1, wo = (W + 2 * padding - K) / stride + 1;
        using var seed = torch.rand(1, O * ho * wo, generator: new Generator(35));
        var actual = SignalAtInput(model, x, seed, Composite.ExcitationBackprop.WithRule("conv", new WPlusRule { Epsilon = eps, Bias = bias }));

        // The convolution as a dense [O·Ho·Wo, C·H·W] matrix: row (o, i, j) holds W⁺[o, c, p, q] at column (c, u, v)
        // for u = i·stride + p − padding, v = j·stride + q − padding inside the image (zero padding adds nothing).
        var w = D(conv.weight!);
        var a = new double[O * ho * wo, C * H * W];
        for (int o = 0; o < O; o++) for (long i = 0; i < ho; i++) for (long j = 0; j < wo; j++)
        for (int c = 0; c < C; c++) for (int p = 0; p < K; p++) for (int q = 0; q < K; q++)
        {
            long u = i * stride + p - padding, v = j * stride + q - padding;
            if (u >= 0 && u < H && v >= 0 && v < W) a[(o * ho + i) * wo + j, (c * H + u) * W + v] += Pos(w[((o * C + c) * K + p) * K + q]);
        }
        var convBias = D(conv.bias!);
        var b = bias == BiasHandling.Include ? Enumerable.Range(0, (int)(O * ho * wo)).Select(r => Pos(convBias[r / (ho * wo)])).ToArray() : null;
        NaiveRuleTests.AssertClose(NaiveWPlus(a, b, D(x), D(seed), eps), actual.Select(v => (float)v).ToArray(), 1e-5);
    }

    [TestMethod]
    public void AvgPool_WithEpsilon_MatchesDenseMatrixForm()
    {
        const int H = 4, W = 4;
        const double eps = 0.05;
        using var model = nn.Sequential(("id", nn.Identity()), ("pool", nn.AvgPool2d(2, stride: 2)), ("flat", nn.Flatten()));
        using var x = TestModels.Image(36, 1, 1, H, W);
        using var seed = torch.rand(1, 4, generator: new Generator(37));
        var actual = SignalAtInput(model, x, seed, Composite.ExcitationBackprop.WithRule<AvgPool2d>(new WPlusRule { Epsilon = eps }));
        var a = new double[4, H * W];
        for (int i = 0; i < 2; i++) for (int j = 0; j < 2; j++) for (int p = 0; p < 2; p++) for (int q = 0; q < 2; q++)
            a[i * 2 + j, (2 * i + p) * W + 2 * j + q] = 0.25;
        NaiveRuleTests.AssertClose(NaiveWPlus(a, null, D(x), D(seed), eps), actual.Select(v => (float)v).ToArray(), 1e-5);
    }

    [TestMethod]
    public void BlockedLinear_WithBiasAndEpsilon_MatchesDenseMatrixForm()
    {
        // The block-by-block evaluation (large layers) reads the same configuration: rows in blocks of 3 of 7.
        using var linear = TestModels.Reinitialise(nn.Linear(6, 7), 38);
        using var x = TestModels.Image(39, 2, 6);
        using var g = torch.rand(2, 7, generator: new Generator(40));
        var blocked = new BlockedLinearRule(linear.weight!, 3, linear.bias, 0.3);
        using var actual = blocked.Backward(x, g, negate: true);
        var w = D(linear.weight!);
        var bias = D(linear.bias!);
        var a = new double[7, 6];
        for (int j = 0; j < 7; j++) for (int i = 0; i < 6; i++) a[j, i] = Pos(-w[j * 6 + i]); // contrastive: max(−W, 0)
        var xs = D(x);
        var gs = D(g);
        var expected = new List<double>();
        for (int n = 0; n < 2; n++)
            expected.AddRange(NaiveWPlus(a, bias.Select(v => Pos(-v)).ToArray(), xs.Skip(6 * n).Take(6).ToArray(), gs.Skip(7 * n).Take(7).ToArray(), 0.3));
        NaiveRuleTests.AssertClose(expected.ToArray(), actual.data<float>().ToArray(), 1e-5);
    }

    [TestMethod]
    public void GradientRule_IsTheOrdinaryGradient_AndPassThroughIgnoresTheLayer()
    {
        using var model = TestModels.Reinitialise(nn.Sequential(("id", nn.Identity()), ("fc", nn.Linear(5, 4)), ("relu", nn.ReLU()), ("out", nn.Identity())), 41);
        var fc = (Linear)model.named_modules().Single(m => m.name == "fc").module;
        using var x = TestModels.Image(42, 1, 5);
        using var seed = torch.rand(1, 4, generator: new Generator(43));

        // fc with the plain gradient, the ReLU passing the signal through whatever its input: G_in = Wᵀg.
        var composite = Composite.ExcitationBackprop.WithRule("fc", LayerRule.Gradient).WithRule<ReLU>(new PassThroughRule());
        var actual = SignalAtInput(model, x, seed, composite);
        var w = D(fc.weight!);
        var g = D(seed);
        var expected = new double[5];
        for (int j = 0; j < 4; j++) for (int i = 0; i < 5; i++) expected[i] += w[j * 5 + i] * g[j];
        using (var pre = fc.call(x)) Assert.IsTrue(pre.lt(0).any().item<bool>(), "some ReLU input is negative, so pass-through differs from the ReLU's gradient");
        NaiveRuleTests.AssertClose(expected, actual.Select(v => (float)v).ToArray(), 1e-6);
    }

    [TestMethod]
    public void UserComposite_WithTheParametrisedRule_MatchesTheNaiveFormAtThatLayer()
    {
        // CnnWithBn's Linear "8" (32 → 12) gets ε = 0.01 and its bias; every other layer keeps EBP's default.
        using var model = TestModels.CnnWithBn(44);
        model.eval();
        using var x = TestModels.Image(45, 1, 3, 8, 8);
        var rule = new WPlusRule { Epsilon = 0.01, Bias = BiasHandling.Include };
        var composite = Composite.ExcitationBackprop.WithRule<Linear>(rule).WithRule("11", LayerRule.Excitation);
        Assert.AreEqual(rule, composite.RuleFor("8", model.named_modules().Single(m => m.name == "8").module));
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(1),
            new SaliencyOptions { SaliencyLayer = "0", Composite = composite, Probe = SignalProbe.At("7", "8") });

        Tensor h = x;
        foreach (var (name, child) in model.named_children())
        {
            h = ((nn.Module<Tensor, Tensor>)child).call(h);
            if (name == "7") break;
        }
        var fc = (Linear)model.named_modules().Single(m => m.name == "8").module;
        var w = D(fc.weight!);
        var a = new double[12, 32];
        for (int j = 0; j < 12; j++) for (int i = 0; i < 32; i++) a[j, i] = Pos(w[j * 32 + i]);
        var expected = NaiveWPlus(a, D(fc.bias!).Select(Pos).ToArray(), D(h), D(r.Signals!["8"]), 0.01);
        NaiveRuleTests.AssertClose(expected, r.Signals["7"].data<float>().ToArray(), 1e-5);
        CollectionAssert.AreEquivalent(new[] { "7", "8" }, r.Signals.Keys.ToArray());
    }

    [TestMethod]
    public void InvalidConstants_AreClearErrors()
    {
        foreach (var eps in new[] { 0.0, -1e-6, double.NaN, double.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new WPlusRule { Epsilon = eps });
            StringAssert.Contains(e.Message, "positive finite");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new WPlusRule { Bias = (BiasHandling)7 });
        foreach (var delta in new[] { -1e-3, 1.5, double.NaN })
            Assert.Throws<ArgumentOutOfRangeException>(() => new ProportionalSplitRule { Stabiliser = delta });
        StringAssert.Contains(new WPlusRule { Epsilon = 1e-6, Bias = BiasHandling.Include }.ToString(), "bias included");
    }
}
