using Ebp.Visualization;
using TorchSharp;

namespace Ebp.MLNet.Tests;

/// <summary>The one overlay blend (figures, the ML.NET stage's overlay column, the audit tool's overlay PNGs), by hand.</summary>
[TestClass]
public sealed class OverlayBlendTests
{
    [TestMethod]
    public void EachPixelIsKeepTimesTheImagePlusAlphaTimesJet()
    {
        // Map [2, 1]: normalised [1, 0.5]; jet(1) = (128, 0, 0), jet(0.5) = (128, 255, 128) (rounded 255·clamp(1.5 − |4t − k|)).
        byte[] rgb = [100, 150, 200, 0, 0, 0];
        var blended = Heatmap.Blend(rgb, 3, [2f, 1f], 0.5f);
        CollectionAssert.AreEqual(new byte[] { 114, 75, 100, 255, 64, 128, 64, 255 }, blended);

        // The ML.NET stage's overlay is this blend.
        var image = SaliencyImages.Blend(rgb, [2f, 1f], 2, 1, 0.5f);
        CollectionAssert.AreEqual(blended, image.Pixels.ToArray());
    }

    [TestMethod]
    public void TransparentPixelsAreShownOverWhite_AndTheWeightCanFollowTheSaliency()
    {
        byte[] rgba = [10, 20, 30, 0, 10, 20, 30, 255];
        var b = Heatmap.Blend(rgba, 4, [0f, 0f], 0.25f);
        // An all-zero map is jet(0) = (0, 0, 128): 0.75·255 = 191.25, 0.75·255 + 0.25·128 = 223.25.
        CollectionAssert.AreEqual(new byte[] { 191, 191, 223, 255, 8, 15, 54, 255 }, b); // 54.5 rounds to even

        // Weighted by saliency: a = alpha·(0.35 + 0.65·s); s = 0 gives a = 0.35·alpha.
        var w = Heatmap.Blend([200, 200, 200], 3, [0f], 1f, weightBySaliency: true);
        CollectionAssert.AreEqual(new byte[] { 130, 130, 175, 255 }, w);
    }

    [TestMethod]
    public void TheOneBilinearResizeIsPyTorchsAlignCornersFalse()
    {
        CollectionAssert.AreEqual(new[] { 0f, 0.25f, 0.75f, 1f }, Heatmap.ResizeBilinear([0f, 1f], 2, 1, 4, 1));

        // Against libtorch's interpolate (the engine's MapSize resize), up and down.
        var g = new Random(3);
        var src = Enumerable.Range(0, 7 * 5).Select(_ => (float)g.NextDouble()).ToArray();
        using var t = torch.tensor(src, new long[] { 1, 1, 5, 7 });
        foreach (var (w, h) in new[] { (16, 9), (3, 2) })
        {
            using var expected = MapPostProcessing.Resize(t, new long[] { h, w }, ResizeMode.Bilinear);
            var e = expected.contiguous().data<float>().ToArray();
            var a = Heatmap.ResizeBilinear(src, 7, 5, w, h);
            Assert.HasCount(e.Length, a);
            for (int i = 0; i < a.Length; i++) Assert.AreEqual(e[i], a[i], 1e-5f, $"{w}x{h} [{i}]");
        }
    }

    [TestMethod]
    public void MismatchedSizesAndBadOpacityAreRefused()
    {
        Assert.ThrowsExactly<ArgumentException>(() => Heatmap.Blend(new byte[5], 3, [1f, 2f], 0.5f));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Heatmap.Blend(new byte[6], 2, [1f, 2f, 3f], 0.5f));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Heatmap.Blend(new byte[3], 3, [1f], float.NaN));
    }
}
