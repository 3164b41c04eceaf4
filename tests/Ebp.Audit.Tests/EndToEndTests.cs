using System.Text.Json.Nodes;
using Ebp.Datasets;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Audit.Tests;

[TestClass]
public sealed class EndToEndTests
{
    /// <summary>
    /// The standard run on the manifest: every row is checked against an independent computation (the model and
    /// SaliencyExplainer called directly on the PNG, masks from the VOC XML via VocAnnotation), and the flags and summary
    /// numbers are recomputed from the rows.
    /// </summary>
    [TestMethod]
    public void ManifestRun_RowsFlagsAndSummaryMatchAnIndependentComputation()
    {
        var folder = TestSet.Reference;
        var rows = Outputs.Rows(folder);
        var summary = Outputs.Summary(folder);
        string[] methods = ["ebp", "cebp", "gradient"];

        // results.csv has the same rows in the same order.
        var csv = File.ReadAllLines(Path.Combine(folder, "results.csv"));
        Assert.AreEqual(string.Join(',', ReportWriter.Columns), csv[0]);
        Assert.HasCount(rows.Count, csv.Skip(1).ToArray());
        for (int i = 0; i < rows.Count; i++)
        {
            var f = csv[i + 1].Split(',');
            Assert.AreEqual(Outputs.Str(rows[i]["image"]), f[0]);
            Assert.AreEqual(Outputs.Str(rows[i]["method"]), f[1]);
            Assert.AreEqual(Outputs.Int(rows[i]["class"]).ToString(), f[2]);
            Assert.AreEqual(string.Join(';', rows[i]["flags"]!.AsArray().Select(x => x!.GetValue<string>())), f[14]);
        }

        using var model = TestSet.CreateModel();
        var explainer = new SaliencyExplainer(model);
        var expectedKeys = new List<(string, string, int)>();
        var flagCounts = Flags.All.ToDictionary(f => f, _ => 0);
        var pointing = methods.ToDictionary(m => m, _ => new SortedDictionary<int, (int Hits, int Total)>());
        int labelled = 0, correct = 0;
        for (int i = 0; i < TestSet.Count; i++)
        {
            var key = TestSet.Key(i);
            var scene = TestSet.Scenes[i];
            var ann = TestSet.AnnotatedInManifest(i) ? VocAnnotation.Load(Path.Combine(TestSet.Images, $"scene_{i:00}.xml")) : null;
            var x = LoadImage(Path.Combine(TestSet.Images, $"scene_{i:00}.png"));
            int predicted;
            float[] scores;
            using (torch.no_grad())
            {
                using var logits = model.call(x);
                predicted = (int)logits.argmax(1).item<long>();
                scores = logits.data<float>().ToArray();
            }
            int annotatedClasses = ann is null ? 0 : ann.Objects.Select(o => o.Name).Distinct().Count();
            var classes = new SortedSet<int> { predicted };
            if (TestSet.LabelOf(i) is { } label)
            {
                classes.Add(label);
                labelled++;
                if (label == predicted) correct++;
            }
            if (ann is not null) foreach (var o in ann.Objects) classes.Add(int.Parse(o.Name));
            var allBoxes = ann is null ? null : ann.Objects.Select(o => o.Box.ToPixelBox()).ToList();

            foreach (var method in methods)
            {
                foreach (var c in classes)
                {
                    expectedKeys.Add((key, method, c));
                    var row = rows.Single(r => Outputs.Str(r["image"]) == key && Outputs.Str(r["method"]) == method && Outputs.Int(r["class"]) == c);
                    Assert.AreEqual(predicted, Outputs.Int(row["predicted"]), $"{key}: predicted");
                    Assert.AreEqual(TestSet.LabelOf(i), Outputs.Int(row["label"]), $"{key}: label");

                    // The map, computed directly.
                    var options = new SaliencyOptions
                    {
                        Method = method switch { "ebp" => SaliencyMethod.ExcitationBackprop, "cebp" => SaliencyMethod.ContrastiveExcitationBackprop, _ => SaliencyMethod.Gradient },
                        SaliencyLayer = method == "gradient" ? "" : TestSet.SaliencyLayer, // the gradient at the input, as TorchRay
                        ContrastLayer = method == "cebp" ? TestSet.ContrastLayer : null,
                        Resize = MapSize.Input,
                    };
                    float[] map;
                    using (var scope = torch.NewDisposeScope())
                    using (var result = explainer.Explain(x, SaliencyTarget.Class(c), options))
                        map = result.Map.contiguous().data<float>().ToArray();
                    double mass = map.Where(v => v > 0).Sum(v => (double)v);
                    if (mass <= 0)
                    {
                        Assert.IsNull(row["peak_x"], $"{key} {method} {c}: empty map has no peak");
                    }
                    else
                    {
                        var (px, py) = Datasets.PointingGame.ArgMax(map, TestSet.Size, TestSet.Size);
                        int rx = Outputs.Int(row["peak_x"])!.Value, ry = Outputs.Int(row["peak_y"])!.Value;
                        if (rx != px || ry != py) // a near-tie may resolve differently in float noise
                            Assert.AreEqual(map[py * TestSet.Size + px], map[ry * TestSet.Size + rx], 1e-5 * Math.Abs(map[py * TestSet.Size + px]), $"{key} {method} {c}: peak");
                    }
                    var classMask = ann?.ClassMask(c.ToString());
                    bool classAnnotated = classMask is not null && classMask.Any(b => b);
                    if (classAnnotated && mass > 0)
                    {
                        double inside = 0;
                        for (int k = 0; k < map.Length; k++) if (classMask![k] && map[k] > 0) inside += map[k];
                        Assert.AreEqual(inside / mass, Outputs.Double(row["energy_in_boxes"])!.Value, 2e-4, $"{key} {method} {c}: energy");
                    }
                    else
                    {
                        Assert.IsNull(row["energy_in_boxes"], $"{key} {method} {c}: energy without boxes");
                    }

                    // Flags and pointing from the row's numbers and the XML.
                    var expectedFlags = new List<string>();
                    int? peakX = Outputs.Int(row["peak_x"]), peakY = Outputs.Int(row["peak_y"]);
                    double tolerance = Datasets.PointingGame.ScaledTolerance(TestSet.Size);
                    if (allBoxes is { Count: > 0 } && peakX is { } qx && !allBoxes.Any(b => Near(b, qx, peakY!.Value, tolerance)))
                        expectedFlags.Add(Flags.PeakOutsideObjects);
                    if (Outputs.Double(row["energy_in_boxes"]) is { } e && e < 0.5) expectedFlags.Add(Flags.LowEnergy);
                    if (Outputs.Int(row["label"]) is { } l && l != Outputs.Int(row["predicted"])) expectedFlags.Add(Flags.LabelMismatch);
                    if (annotatedClasses > 0 && c == predicted && !classAnnotated) expectedFlags.Add(Flags.FalsePositive);
                    int rank = 1 + Enumerable.Range(0, scores.Length).Count(k => scores[k] > scores[c] || (scores[k] == scores[c] && k < c));
                    if (classAnnotated && rank > annotatedClasses) expectedFlags.Add(Flags.MissedLabel);
                    if (peakX is null) expectedFlags.Add(Flags.EmptyMap);
                    CollectionAssert.AreEqual(expectedFlags, row["flags"]!.AsArray().Select(n => n!.GetValue<string>()).ToList(), $"{key} {method} {c}: flags");
                    foreach (var f in expectedFlags) flagCounts[f]++;

                    if (classAnnotated)
                    {
                        bool hit = peakX is { } hx && Datasets.PointingGame.IsHit(classMask!, TestSet.Size, TestSet.Size, hx, peakY!.Value, Datasets.PointingGame.ScaledTolerance(TestSet.Size));
                        Assert.AreEqual(hit ? "hit" : "miss", Outputs.Str(row["pointing"]), $"{key} {method} {c}: pointing");
                        var (h, t) = pointing[method].GetValueOrDefault(c);
                        pointing[method][c] = (h + (hit ? 1 : 0), t + 1);
                    }
                    else
                    {
                        Assert.IsNull(row["pointing"]);
                    }

                    var overlay = Outputs.Str(row["overlay"])!;
                    Assert.AreEqual($"overlays/images/scene_{i:00}.png/{method}_c{c}.png", overlay);
                    using var bitmap = SKBitmap.Decode(Path.Combine(folder, overlay));
                    Assert.IsNotNull(bitmap, overlay);
                    Assert.AreEqual(TestSet.Size, bitmap.Width);
                }
            }
            x.Dispose();
        }

        // Exactly the expected rows, in the documented order (image, method order, class).
        var actualKeys = rows.Select(r => (Outputs.Str(r["image"])!, Outputs.Str(r["method"])!, Outputs.Int(r["class"])!.Value)).ToList();
        var ordered = expectedKeys.OrderBy(k => k.Item1, StringComparer.Ordinal).ThenBy(k => Array.IndexOf(methods, k.Item2)).ThenBy(k => k.Item3).ToList();
        CollectionAssert.AreEqual(ordered, actualKeys);

        // Summary numbers recomputed from the rows.
        Assert.AreEqual("complete", Outputs.Str(summary["status"]));
        var counts = summary["counts"]!;
        Assert.AreEqual(TestSet.Count, Outputs.Int(counts["inputs"]));
        Assert.AreEqual(TestSet.Count, Outputs.Int(counts["processed"]));
        Assert.AreEqual(0, Outputs.Int(counts["skipped"]));
        Assert.AreEqual(rows.Count, Outputs.Int(counts["rows"]));
        Assert.AreEqual(TestSet.Count - 1, Outputs.Int(counts["annotated_images"]));
        Assert.AreEqual(labelled, Outputs.Int(counts["labelled_images"]));
        Assert.AreEqual(correct, Outputs.Int(counts["label_correct"]));
        Assert.AreEqual(rows.Count(r => r["flags"]!.AsArray().Count > 0), Outputs.Int(counts["flagged_rows"]));
        foreach (var f in Flags.All) Assert.AreEqual(flagCounts[f], Outputs.Int(summary["flags"]![f]), f);
        Assert.IsGreaterThan(0, flagCounts[Flags.LabelMismatch], "the wrong labels must be flagged");
        foreach (var m in methods)
        {
            var p = summary["pointing"]![m]!;
            var perClass = p["per_class"]!.AsArray();
            Assert.HasCount(pointing[m].Count, perClass);
            foreach (var e in perClass)
            {
                var (h, t) = pointing[m][Outputs.Int(e!["class"])!.Value];
                Assert.AreEqual(h, Outputs.Int(e["hits"]));
                Assert.AreEqual(t, Outputs.Int(e["total"]));
                Assert.AreEqual(Math.Round((double)h / t, 4), Outputs.Double(e["accuracy"])!.Value, 1e-9);
            }
            Assert.AreEqual(pointing[m].Values.Sum(v => v.Hits), Outputs.Int(p["hits"]));
            Assert.AreEqual(pointing[m].Values.Sum(v => v.Total), Outputs.Int(p["total"]));
        }
        StringAssert.Contains(File.ReadAllText(Path.Combine(folder, "summary.md")), "## Pointing game");
    }

    /// <summary>Folder input: VOC XML next to each image, no labels, top-2 classes, one method.</summary>
    [TestMethod]
    public void FolderRun_ExplainsTopKAndAnnotatedClasses()
    {
        var output = TestSet.NewFolder("folder");
        var result = new AuditJob(new AuditOptions
        {
            InputFolder = TestSet.Images,
            OutputFolder = output,
            Model = TestSet.Card,
            TopK = 2,
            BatchSize = 5,
            ComputeBatch = 4,
            Threads = 1,
        }).Run();
        Assert.AreEqual(AuditStatus.Complete, result.Status);
        var rows = Outputs.Rows(output);
        Assert.IsTrue(rows.All(r => Outputs.Str(r["method"]) == "ebp" && r["label"] is null));
        foreach (var group in rows.GroupBy(r => Outputs.Str(r["image"])!))
        {
            int i = int.Parse(group.Key["scene_".Length..^".png".Length]);
            var expected = new SortedSet<int>(TestSet.Scenes[i].Digits.Select(d => d.ClassId));
            foreach (var r in group.Where(r => Outputs.Int(r["rank"]) <= 2)) expected.Add(Outputs.Int(r["class"])!.Value);
            CollectionAssert.AreEqual(expected.ToList(), group.Select(r => Outputs.Int(r["class"])!.Value).ToList(), group.Key);
            Assert.AreEqual(2, group.Count(r => Outputs.Int(r["rank"]) <= 2), $"{group.Key}: the top-2 classes are explained");
        }
        Assert.AreEqual(TestSet.Count, rows.Select(r => Outputs.Str(r["image"])).Distinct().Count());
        Assert.AreEqual(TestSet.Count, Outputs.Int(Outputs.Summary(output)["counts"]!["annotated_images"]));
    }

    /// <summary>Whether the pixel lies within <paramref name="tolerance"/> (Euclidean) of the box.</summary>
    private static bool Near(BoundingBox b, int x, int y, double tolerance)
    {
        int dx = Math.Max(0, Math.Max(b.X - x, x - (b.Right - 1)));
        int dy = Math.Max(0, Math.Max(b.Y - y, y - (b.Bottom - 1)));
        return dx * dx + dy * dy <= tolerance * tolerance;
    }

    /// <summary>The PNG as a [1, 3, H, W] tensor in [0, 1] (the audit's default preprocessing).</summary>
    internal static Tensor LoadImage(string path)
    {
        using var bitmap = SKBitmap.Decode(path);
        int w = bitmap.Width, h = bitmap.Height;
        var data = new float[3 * w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = bitmap.GetPixel(x, y);
                data[y * w + x] = c.Red / 255f;
                data[w * h + y * w + x] = c.Green / 255f;
                data[2 * w * h + y * w + x] = c.Blue / 255f;
            }
        return torch.tensor(data, new long[] { 1, 3, h, w });
    }
}
