using Ebp.Datasets;
using SkiaSharp;

namespace Ebp.Audit.Tests;

/// <summary>Large images are decoded downscaled, with bounded memory (issue 15, defect 7).</summary>
[TestClass]
public sealed class LargeImageTests
{
    [TestMethod]
    public void DownscaledDecode_AveragesAreas()
    {
        // 3000×20: left third black, middle grey 90, right third white; to a longer side of 300 → 300×2, each pixel the mean of 10×10.
        var dir = TestSet.NewFolder("area");
        var path = Path.Combine(dir, "bands.png");
        using (var bitmap = new SKBitmap(new SKImageInfo(3000, 20, SKColorType.Rgba8888, SKAlphaType.Unpremul)))
        {
            for (int y = 0; y < 20; y++)
                for (int x = 0; x < 3000; x++)
                {
                    byte v = x < 1000 ? (byte)0 : x < 2000 ? (byte)90 : (byte)255;
                    bitmap.SetPixel(x, y, new SKColor(v, v, v));
                }
            using var image = SKImage.FromBitmap(bitmap);
            using var png = image.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(path, png.ToArray());
        }
        var d = ImageFile.TryDecode(path, out var error, maxSide: 300)!;
        Assert.IsNotNull(d, error);
        Assert.AreEqual((300, 2, 3000, 20), (d.Width, d.Height, d.OriginalWidth, d.OriginalHeight));
        Assert.AreEqual(3000 * 20 / 100 * 4, d.Rgba.Length);
        Assert.AreEqual(0, d.Rgba[4 * 50]);
        Assert.AreEqual(90, d.Rgba[4 * 150]);
        Assert.AreEqual(255, d.Rgba[4 * (300 + 250) + 1]);
        Assert.AreEqual(255, d.Rgba[4 * 250 + 3], "alpha");

        // Truncated: rejected, not half-decoded.
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.IsNull(ImageFile.TryDecode(path, out error, maxSide: 300));
        StringAssert.Contains(error, "truncated");
    }

    [TestMethod]
    public void LargeScene_IsAuditedDownscaled_LikeTheSmallOne()
    {
        // Scene 0 enlarged 16× (1280×1280, nearest neighbour) with its boxes scaled: decoded at 1024, the audit predicts the
        // same class as on the 80×80 scene and puts the peak at the same place (in file pixels).
        const int f = 16;
        var dir = TestSet.NewFolder("large");
        var scene = TestSet.Scenes[0];
        var small = Path.Combine(dir, "small");
        var large = Path.Combine(dir, "large");
        Directory.CreateDirectory(small);
        Directory.CreateDirectory(large);
        File.Copy(Path.Combine(TestSet.Images, "scene_00.png"), Path.Combine(small, "s.png"));
        VocAnnotation.FromScene(scene, "s.png").Save(Path.Combine(small, "s.xml"));
        var big = new float[scene.Width * f * scene.Height * f];
        for (int y = 0; y < scene.Height * f; y++)
            for (int x = 0; x < scene.Width * f; x++)
                big[y * scene.Width * f + x] = scene.Pixels[(y / f) * scene.Width + x / f];
        File.WriteAllBytes(Path.Combine(large, "s.png"), TestSet.RenderRgbPng(big, scene.Width * f, scene.Height * f));
        var xml = File.ReadAllText(Path.Combine(small, "s.xml"));
        xml = System.Text.RegularExpressions.Regex.Replace(xml, "<(width|height|xmin|ymin|xmax|ymax)>(\\d+)</",
            m => $"<{m.Groups[1].Value}>{int.Parse(m.Groups[2].Value) * f}</");
        File.WriteAllText(Path.Combine(large, "s.xml"), xml);

        Outputs.Rows(Run(small)); // warm
        var rowsSmall = Outputs.Rows(Run(small));
        var outLarge = Run(large);
        var rowsLarge = Outputs.Rows(outLarge);
        Assert.HasCount(rowsSmall.Count, rowsLarge);
        // The downscaled decode resamples (1280 → 1024 → 80 is not the identity), so a peak right at the tolerance may flip.
        // EBP only: the gradient at the input is a pixel-level map that resampling moves about.
        var flips = new List<int>();
        for (int i = 0; i < rowsSmall.Count; i++)
        {
            var a = rowsSmall[i];
            var b = rowsLarge[i];
            Assert.AreEqual(Outputs.Int(a["predicted"]), Outputs.Int(b["predicted"]));
            Assert.AreEqual(Outputs.Int(a["class"]), Outputs.Int(b["class"]));
            if (Outputs.Str(a["pointing"]) != Outputs.Str(b["pointing"])) flips.Add(i);
            // Peaks are in file pixels (the argmax itself can jump between two near-equal digits under resampling).
            Assert.IsTrue(Outputs.Int(b["peak_x"]) is >= 0 and < 80 * f && Outputs.Int(b["peak_y"]) is >= 0 and < 80 * f, $"row {i}: peak in file pixels");
            if (Outputs.Double(a["energy_in_boxes"]) is { } e) Assert.AreEqual(e, Outputs.Double(b["energy_in_boxes"])!.Value, 0.05, $"row {i}: energy");
        }
        Assert.IsLessThanOrEqualTo(1, flips.Count, $"pointing differs in rows {string.Join(", ", flips)} of {rowsSmall.Count}");
        var warnings = Outputs.Summary(outLarge)["warnings"]!.AsArray().Select(w => Outputs.Str(w!["warning"])!).ToList();
        Assert.IsTrue(warnings.Any(w => w.Contains("decoded downscaled to a longer side of 1024 px")), string.Join("; ", warnings));
        Assert.IsFalse(warnings.Any(w => w.Contains("annotation size")), "the boxes match the file");
        using var overlay = SKBitmap.Decode(Path.Combine(outLarge, Outputs.Str(rowsLarge[0]["overlay"])!));
        Assert.AreEqual(1024, overlay.Width);
    }

    private static string Run(string input)
    {
        var output = TestSet.NewFolder("large-out");
        var r = new AuditJob(TestSet.Options(output) with { ManifestPath = null, InputFolder = input, Methods = [AuditMethod.Ebp] }).Run();
        Assert.AreEqual(1, r.Processed);
        return output;
    }
}
