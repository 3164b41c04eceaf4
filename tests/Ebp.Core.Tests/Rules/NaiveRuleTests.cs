using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Rules;

/// <summary>
/// Each rule against the formula written out with plain loops in double precision:
/// G_in = x ⊙ layerᵀ(G ⊘ (layer(x; W⁺) + 1e-20)).
/// </summary>
[TestClass]
public sealed class NaiveRuleTests
{
    [TestMethod]
    public void Linear_HandComputed()
    {
        // x = [1, 2], W = [[1, -1], [2, 0.5]], bias ignored. Seed [0, 1]:
        // W⁺ = [[1, 0], [2, 0.5]], Z = [1, 3], S = [0, 1/3], W⁺ᵀS = [2/3, 1/6], G_in = x ⊙ that = [2/3, 1/3].
        using var model = nn.Sequential(("id", nn.Identity()), ("fc", nn.Linear(2, 2)));
        TestModels.SetWeights(model, "fc.weight", new[] { 1f, -1f, 2f, 0.5f }, new long[] { 2, 2 });
        TestModels.SetWeights(model, "fc.bias", new[] { 5f, -3f }, new long[] { 2 });
        using var x = torch.tensor(new[] { 1f, 2f }).reshape(1, 2);
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { CollectSignals = true });
        var g = r.Signals!["id"].data<float>().ToArray();
        Assert.AreEqual(2.0 / 3, g[0], 1e-6);
        Assert.AreEqual(1.0 / 3, g[1], 1e-6);
        Assert.AreEqual(1.0, r.Map.item<float>(), 1e-6, "map = channel sum at the input");
    }

    [TestMethod]
    public void ResidualSum_SplitsInProportion_HandComputed()
    {
        // x = [1, 2]; a = lin1(x) = [1, 1]·x = 3; b = lin2(x) = [1, 0.5]·x = 2; y = 5.
        // G_a = 3/5, G_b = 2/5. lin1: Z = 3, S = 0.2, W⁺ᵀS = [0.2, 0.2], x ⊙ = [0.2, 0.4].
        // lin2: W⁺ = [1, 0.5], Z = 2, S = 0.2, W⁺ᵀS = [0.2, 0.1], x ⊙ = [0.2, 0.2]. At x: [0.4, 0.6].
        using var model = new TwoBranch(new[] { 1f, 1f }, new[] { 1f, 0.5f });
        using var x = torch.tensor(new[] { 1f, 2f }).reshape(1, 2);
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { CollectSignals = true });
        Assert.AreEqual(0.6, r.Signals!["lin1"].item<float>(), 1e-6);
        Assert.AreEqual(0.4, r.Signals["lin2"].item<float>(), 1e-6);
        var gx = r.Signals["id"].data<float>().ToArray();
        Assert.AreEqual(0.4, gx[0], 1e-6);
        Assert.AreEqual(0.6, gx[1], 1e-6);
    }

    [TestMethod]
    public void ResidualSum_ExactZeroSum_GivesFiniteEvenSplit()
    {
        // a = x0 + x1, b = −(x0 + x1): y = 0 exactly. The reference gives 0/0 = NaN; Ebp splits G evenly.
        using var model = new TwoBranch(new[] { 1f, 1f }, new[] { -1f, -1f });
        using var x = torch.tensor(new[] { 1f, 2f }).reshape(1, 2);
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0), new SaliencyOptions { CollectSignals = true });
        Assert.AreEqual(0.5, r.Signals!["lin1"].item<float>(), 1e-7);
        Assert.AreEqual(0.5, r.Signals["lin2"].item<float>(), 1e-7);
        Assert.IsTrue(r.Map.isfinite().all().item<bool>());
        // lin2 has W⁺ = 0, so Z = 0 and its half of the signal stops there (x ⊙ 0); lin1 passes its half on.
        Assert.AreEqual(0.5, r.Map.item<float>(), 1e-6);
    }

    [TestMethod]
    [DataRow(1L, 1L, 0L, 1L)]
    [DataRow(2L, 2L, 1L, 1L)]
    [DataRow(3L, 2L, 2L, 2L)]
    public void Conv2d_MatchesNaiveFormula(long seed, long stride, long padding, long dilation)
    {
        const int C = 2, O = 3, H = 7, W = 6, K = 3;
        using var conv = nn.Conv2d(C, O, K, stride: stride, padding: padding, dilation: dilation);
        using var model = TestModels.Reinitialise(nn.Sequential(("conv", conv), ("flat", nn.Flatten())), seed);
        using var x = TestModels.Image(seed, 1, C, H, W);
        using var y = model.call(x);
        using var seedSignal = torch.rand(y.shape, generator: new Generator((ulong)seed + 10));
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Seed(seedSignal));

        double[,,] xin = To3(x[0], C, H, W);
        var w = conv.weight.data<float>().ToArray();
        long Ho = (H + 2 * padding - dilation * (K - 1) - 1) / stride + 1, Wo = (W + 2 * padding - dilation * (K - 1) - 1) / stride + 1;
        var g = seedSignal.data<float>().ToArray();
        var gin = new double[C, H, W];
        for (int o = 0; o < O; o++)
        for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++)
        {
            double z = 0;
            for (int c = 0; c < C; c++) for (int a = 0; a < K; a++) for (int b = 0; b < K; b++)
            {
                long u = i * stride + a * dilation - padding, v = j * stride + b * dilation - padding;
                if (u >= 0 && u < H && v >= 0 && v < W) z += Math.Max(w[((o * C + c) * K + a) * K + b], 0) * xin[c, u, v];
            }
            double s = g[(o * Ho + i) * Wo + j] / (z + 1e-20);
            for (int c = 0; c < C; c++) for (int a = 0; a < K; a++) for (int b = 0; b < K; b++)
            {
                long u = i * stride + a * dilation - padding, v = j * stride + b * dilation - padding;
                if (u >= 0 && u < H && v >= 0 && v < W) gin[c, u, v] += Math.Max(w[((o * C + c) * K + a) * K + b], 0) * s;
            }
        }
        var expected = new double[H * W];
        for (int c = 0; c < C; c++) for (int u = 0; u < H; u++) for (int v = 0; v < W; v++)
            expected[u * W + v] += xin[c, u, v] * gin[c, u, v];
        AssertClose(expected, r.Map.data<float>().ToArray(), 1e-5);
    }

    [TestMethod]
    public void AvgPool_WithCountedPadding_MatchesNaiveFormula()
    {
        const int H = 5, W = 5;
        using var pool = nn.AvgPool2d(3, stride: 2, padding: 1); // divisor 9 even at the border
        using var model = nn.Sequential(("pool", pool), ("flat", nn.Flatten()));
        using var x = TestModels.Image(4, 1, 1, H, W);
        using var y = model.call(x);
        using var seedSignal = torch.rand(y.shape, generator: new Generator(5));
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Seed(seedSignal));
        var xin = x.data<float>().ToArray();
        var g = seedSignal.data<float>().ToArray();
        var gin = new double[H * W];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++)
        {
            double z = 0;
            for (int a = 0; a < 3; a++) for (int b = 0; b < 3; b++)
            {
                int u = 2 * i + a - 1, v = 2 * j + b - 1;
                if (u >= 0 && u < H && v >= 0 && v < W) z += xin[u * W + v] / 9.0;
            }
            double s = g[i * 3 + j] / (z + 1e-20);
            for (int a = 0; a < 3; a++) for (int b = 0; b < 3; b++)
            {
                int u = 2 * i + a - 1, v = 2 * j + b - 1;
                if (u >= 0 && u < H && v >= 0 && v < W) gin[u * W + v] += s / 9.0;
            }
        }
        var expected = gin.Select((t, k) => t * xin[k]).ToArray();
        AssertClose(expected, r.Map.data<float>().ToArray(), 1e-5);
    }

    [TestMethod]
    public void AdaptiveAvgPool1d_OverlappingWindows_MatchesNaiveFormula()
    {
        const int L = 7, M = 3; // windows [0,3), [2,5), [4,7): overlapping
        using var model = nn.Sequential(("pool", nn.AdaptiveAvgPool1d(M)), ("flat", nn.Flatten()));
        using var x = TestModels.Image(6, 1, 1, L);
        using var seedSignal = torch.tensor(new[] { 0.2f, 0.5f, 0.3f }).reshape(1, 3);
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Seed(seedSignal));
        var xin = x.data<float>().ToArray();
        var g = seedSignal.data<float>().ToArray();
        var gin = new double[L];
        for (int i = 0; i < M; i++)
        {
            int start = i * L / M, end = (int)Math.Ceiling((i + 1) * L / (double)M);
            double z = 0;
            for (int u = start; u < end; u++) z += xin[u] / (end - start);
            for (int u = start; u < end; u++) gin[u] += g[i] / (z + 1e-20) / (end - start);
        }
        AssertClose(gin.Select((t, k) => t * xin[k]).ToArray(), r.Map.data<float>().ToArray(), 1e-5);
        Assert.AreEqual(1.0, r.Map.sum().item<float>(), 1e-5, "seed sums to 1, pooling conserves it");
    }

    [TestMethod]
    public void BatchNorm_PassesSignalThrough()
    {
        using var model = TestModels.CnnWithBn(7);
        using var x = TestModels.Image(8, 1, 3, 8, 8);
        using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(2),
            new SaliencyOptions { SaliencyLayer = "0", CollectSignals = true });
        // The signal at the BN input (= conv "0" output, the map before the channel sum) equals the signal at BN's output.
        using var atBnOutput = r.Signals!["1"].sum(1, keepdim: true);
        AssertClose(atBnOutput.data<float>().ToArray().Select(v => (double)v).ToArray(), r.Map.data<float>().ToArray(), 1e-6);
    }

    private static double[,,] To3(Tensor t, int c, int h, int w)
    {
        var data = t.data<float>().ToArray();
        var r = new double[c, h, w];
        for (int i = 0; i < c; i++) for (int j = 0; j < h; j++) for (int k = 0; k < w; k++) r[i, j, k] = data[(i * h + j) * w + k];
        return r;
    }

    internal static void AssertClose(double[] expected, float[] actual, double rtolOfMax)
    {
        Assert.AreEqual(expected.Length, actual.Length, "length");
        double scale = expected.Max(Math.Abs), diff = 0;
        for (int i = 0; i < expected.Length; i++) diff = Math.Max(diff, Math.Abs(expected[i] - actual[i]));
        Assert.IsTrue(scale > 0, "expected map is all zero: the test would prove nothing");
        Assert.IsTrue(diff / scale <= rtolOfMax, $"max|a-e|/max|e| = {diff / scale:E3} > {rtolOfMax:E1}");
    }
}
