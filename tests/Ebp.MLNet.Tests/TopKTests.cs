using System.Reflection;
using Ebp.Models;
using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Tests;

/// <summary>Issue #5: the top-k predicted classes' maps from one forward pass per batch.</summary>
[TestClass]
public sealed class TopKTests
{
    private const int K = 3;
    private const int MapValues = TestData.Size * TestData.Size;

    private static SaliencyEstimator.Options TopKOptions(string input = "Image", int batchSize = 3, int k = K)
    {
        var o = TestData.Options(input, batchSize);
        o.TopK = k;
        return o;
    }

    private static List<TopKRow> ReadTopK(MLContext ml, IDataView view) =>
        ml.Data.CreateEnumerable<TopKRow>(view, reuseRowObject: false, ignoreMissingColumns: true).ToList();

    /// <summary>Class indices by descending score, ties to the lower index (a stable argsort).</summary>
    private static int[] ArgSortDescending(float[] scores) =>
        Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ThenBy(i => i).ToArray();

    private static SchemaShape ShapeOf(DataViewSchema schema)
    {
        var create = typeof(SchemaShape).GetMethod("Create", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic, [typeof(DataViewSchema)])
                     ?? throw new AssertInconclusiveException("SchemaShape.Create(DataViewSchema) not found in this ML.NET version.");
        return (SchemaShape)create.Invoke(null, [schema])!;
    }

    [TestMethod]
    public void TopKMapsEqualSeparateFixedClassRuns()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TopKOptions())).Fit(data);
        var view = model.Transform(data);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, K, TestData.Size, TestData.Size), view.Schema["Saliency"].Type);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Int32, K), view.Schema["TopKClasses"].Type);
        Assert.AreEqual(K, model.LastTransformer.TopK);
        Assert.AreEqual("TopKClasses", model.LastTransformer.TopKClassesColumnName);
        var rows = ReadTopK(ml, view);
        Assert.HasCount(TestData.ImageNames.Length, rows);

        // One single-class run per class (Target = FixedClass): each row's rank-r map must equal the run of its r-th class.
        var single = new List<SaliencyRow>[TestData.Classes];
        for (int c = 0; c < TestData.Classes; c++)
        {
            var o = TestData.Options("Image", 3);
            o.Target = SaliencyTargetKind.FixedClass;
            o.TargetClass = c;
            using var fixedModel = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
            single[c] = TestData.Read(ml, fixedModel.Transform(data));
        }

        var ranksSeen = new HashSet<int>();
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            Assert.HasCount(K * MapValues, row.Saliency, $"row {i}");
            CollectionAssert.AreEqual(ArgSortDescending(row.Scores).Take(K).ToArray(), row.TopKClasses, $"row {i}: TopKClasses is not the argsort of Scores");
            Assert.AreEqual(row.TopKClasses[0], row.PredictedLabel, $"row {i}");
            Assert.AreEqual(K, row.TopKClasses.Distinct().Count(), $"row {i}");
            Assert.AreEqual("", row.SaliencyError);
            for (int r = 0; r < K; r++)
            {
                int cls = row.TopKClasses[r];
                ranksSeen.Add(cls);
                var map = row.Saliency.Skip(r * MapValues).Take(MapValues).ToArray();
                TestData.AssertClose(single[cls][i].Saliency, map, 1e-5, $"row {i} rank {r} (class {cls})");
                TestData.AssertClose(single[cls][i].Scores, row.Scores, 1e-5, $"row {i} scores");
            }
        }
        Assert.IsTrue(ranksSeen.Count > K, "the test images should rank several different classes");
    }

    [TestMethod]
    public void TopKEqualsTheEngineOnPixelVectors()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var pixels = ml.Data.CreateEnumerable<PixelRow>(TestData.PixelPipeline(ml).Fit(data).Transform(data), false).ToList();
        var pixelData = ml.Data.LoadFromEnumerable(pixels);
        using var stage = ml.Transforms.ComputeSaliency(TopKOptions("Pixels", batchSize: 8)).Fit(pixelData);
        var rows = ReadTopK(ml, stage.Transform(pixelData));

        using var scope = torch.NewDisposeScope();
        using var module = TestData.CreateModel();
        var x = torch.tensor(pixels.SelectMany(p => p.Pixels).ToArray(), new long[] { pixels.Count, 3, TestData.Size, TestData.Size });
        var results = new SaliencyExplainer(module).ExplainEach(x, SaliencyTarget.TopK(K), new SaliencyOptions { SaliencyLayer = TestData.Layer, Resize = MapSize.Input });
        for (int r = 0; r < K; r++)
        {
            var maps = results[r].Map.reshape(pixels.Count, MapValues).data<float>().ToArray();
            for (int i = 0; i < rows.Count; i++)
                TestData.AssertClose(maps.Skip(i * MapValues).Take(MapValues).ToArray(), rows[i].Saliency.Skip(r * MapValues).Take(MapValues).ToArray(), 1e-5, $"row {i} rank {r}");
        }
        foreach (var r in results) r.Dispose();
    }

    [TestMethod]
    public void OneForwardPassPerBatchAndLazy()
    {
        var ml = new MLContext(seed: 1);
        int forwards = 0;
        var o = TopKOptions(batchSize: 3);
        o.ModelSpecJson = null;
        o.ModelFactory = () =>
        {
            var m = TestData.CreateModel();
            m.register_forward_pre_hook((nn.Module _) => { Interlocked.Increment(ref forwards); });
            return m;
        };
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
        var view = model.Transform(data);
        Assert.AreEqual(0, forwards, "Fit/Transform ran the model");
        using (var cursor = view.GetRowCursor(view.Schema))
        {
            Assert.AreEqual(0, forwards, "creating a cursor ran the model");
            Assert.IsTrue(cursor.MoveNext());
            Assert.AreEqual(1, forwards, "one forward pass for the first batch of 3 rows and its 3 classes");
            var classes = cursor.GetGetter<VBuffer<int>>(view.Schema["TopKClasses"]);
            VBuffer<int> value = default;
            int n = 0;
            do
            {
                classes(ref value);
                Assert.AreEqual(K, value.Length);
                n++;
            } while (cursor.MoveNext());
            Assert.AreEqual(TestData.ImageNames.Length, n);
        }
        Assert.AreEqual(3, forwards, "7 rows in batches of 3: three forward passes");

        // A cursor without stage columns never runs it.
        using (var cursor = view.GetRowCursor(new[] { view.Schema["Path"] }))
            while (cursor.MoveNext()) { }
        Assert.AreEqual(3, forwards);
    }

    [TestMethod]
    public void BatchSizePredictionEngineAndSkip()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        List<TopKRow> Run(int batch)
        {
            using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TopKOptions(batchSize: batch))).Fit(data);
            return ReadTopK(ml, model.Transform(data));
        }
        var one = Run(1);
        var eight = Run(8);
        for (int i = 0; i < one.Count; i++)
        {
            CollectionAssert.AreEqual(one[i].TopKClasses, eight[i].TopKClasses, $"row {i}");
            TestData.AssertClose(one[i].Saliency, eight[i].Saliency, 1e-5, $"row {i}");
        }

        var o = TopKOptions(batchSize: 4);
        o.InvalidRows = InvalidRowHandling.Skip;
        o.OverlayColumnName = "Overlay";
        o.TopKClassesColumnName = "Top";
        var bad = ml.Data.LoadFromEnumerable(TestData.Rows("0.png", "missing.png", "2.png"));
        using var skipping = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(bad);
        var view = skipping.Transform(bad);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Int32, K), view.Schema["Top"].Type);
        using (var cursor = view.GetRowCursor(view.Schema))
        {
            var top = cursor.GetGetter<VBuffer<int>>(view.Schema["Top"]);
            var map = cursor.GetGetter<VBuffer<float>>(view.Schema["Saliency"]);
            var overlay = cursor.GetGetter<MLImage>(view.Schema["Overlay"]);
            var error = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["SaliencyError"]);
            VBuffer<int> classes = default;
            VBuffer<float> values = default;
            ReadOnlyMemory<char> text = default;
            for (int i = 0; i < 3; i++)
            {
                Assert.IsTrue(cursor.MoveNext());
                top(ref classes);
                map(ref values);
                error(ref text);
                MLImage image = null!;
                overlay(ref image);
                if (i == 1)
                {
                    Assert.IsTrue(classes.DenseValues().All(c => c == -1), "skipped row: classes −1");
                    Assert.IsTrue(values.DenseValues().All(v => v == 0f), "skipped row: zero maps");
                    Assert.IsNull(image);
                    Assert.Contains("missing.png", text.ToString());
                }
                else
                {
                    CollectionAssert.AreEqual(one[i].TopKClasses, classes.DenseValues().ToArray(), $"row {i}");
                    TestData.AssertClose(one[i].Saliency, values.DenseValues().ToArray(), 1e-5, $"row {i}");
                    Assert.AreEqual(TestData.Size, image.Width);
                    Assert.AreEqual("", text.ToString());
                }
            }
        }
        TestData.AssertNoNaNOrInfinity(view);

        // PredictionEngine: a batch of one.
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TopKOptions())).Fit(data);
        using var engine = ml.Model.CreatePredictionEngine<ImageRow, TopKRow>(model);
        foreach (int i in new[] { 4, 0, 4 })
        {
            var p = engine.Predict(new ImageRow { Path = TestData.ImageNames[i] });
            CollectionAssert.AreEqual(one[i].TopKClasses, p.TopKClasses, $"row {i}");
            TestData.AssertClose(one[i].Saliency, p.Saliency, 1e-5, $"engine row {i}");
        }
    }

    [TestMethod]
    public void OptionChecks()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var pixels = ml.Data.LoadFromEnumerable(new[] { new PixelRow() });

        // TopK > 1 needs Target = Predicted: a schema-time error from Fit and from the estimator's GetOutputSchema.
        foreach (var target in new[] { SaliencyTargetKind.FixedClass, SaliencyTargetKind.LabelColumn })
        {
            var o = TopKOptions("Pixels");
            o.Target = target;
            if (target == SaliencyTargetKind.LabelColumn) o.LabelColumnName = "Label";
            var estimator = ml.Transforms.ComputeSaliency(o); // the options alone are consistent
            var fit = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.Fit(pixels));
            Assert.Contains("TopK = 3 maps the top-3 predicted classes and needs Target = SaliencyTargetKind.Predicted", fit.Message);
            Assert.Contains($"Target is {target}", fit.Message);
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(ShapeOf(pixels.Schema)));
        }

        // More classes than the model has.
        var tooMany = ml.Transforms.ComputeSaliency(TopKOptions("Pixels", k: TestData.Classes + 1));
        Assert.Contains("more than the model's 5 classes", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tooMany.Fit(pixels)).Message);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tooMany.GetOutputSchema(ShapeOf(pixels.Schema)));

        var zero = TopKOptions("Pixels", k: 0);
        Assert.Contains("TopK", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(zero)).Message);
        var dup = TopKOptions("Pixels");
        dup.TopKClassesColumnName = "Scores";
        Assert.Contains("used twice", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(dup)).Message);

        // Schema propagation shows the column; null omits it; all k = classes is allowed.
        var shape = ml.Transforms.ComputeSaliency(TopKOptions("Pixels")).GetOutputSchema(ShapeOf(pixels.Schema));
        var topShape = shape.Single(c => c.Name == "TopKClasses");
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, topShape.Kind);
        Assert.AreEqual(NumberDataViewType.Int32, topShape.ItemType);
        var omit = TopKOptions("Pixels", k: TestData.Classes);
        omit.TopKClassesColumnName = null;
        using var all = ml.Transforms.ComputeSaliency(omit).Fit(pixels);
        var schema = all.GetOutputSchema(pixels.Schema);
        Assert.IsNull(schema.GetColumnOrNull("TopKClasses"));
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, TestData.Classes, TestData.Size, TestData.Size), schema["Saliency"].Type);
    }

    [TestMethod]
    public void SaveAndLoadKeepTopK()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var o = TopKOptions();
        o.TopKClassesColumnName = "Ranked";
        o.ErrorColumnName = "Problem";
        var path = Path.Combine(TestData.TempDir, Guid.NewGuid().ToString("N")[..8] + "-topk.zip");
        List<TopKRow> expected;
        int[][] expectedClasses;
        using (var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data))
        {
            var view = model.Transform(data);
            expected = ReadTopK(ml, view);
            expectedClasses = ReadClasses(view, "Ranked");
            SaliencyModel.Save(ml, model, data.Schema, path);
        }
        using var loaded = (TransformerChain<ITransformer>)SaliencyModel.Load(ml, path, out _);
        var stage = (SaliencyTransformer)loaded.Last();
        Assert.AreEqual(K, stage.TopK);
        Assert.AreEqual("Ranked", stage.TopKClassesColumnName);
        Assert.AreEqual("Problem", stage.ErrorColumnName);
        var loadedView = loaded.Transform(data);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, K, TestData.Size, TestData.Size), loadedView.Schema["Saliency"].Type);
        var rows = ReadTopK(ml, loadedView);
        var classes = ReadClasses(loadedView, "Ranked");
        for (int i = 0; i < rows.Count; i++)
        {
            TestData.AssertClose(expected[i].Saliency, rows[i].Saliency, 1e-6, $"row {i}");
            CollectionAssert.AreEqual(expectedClasses[i], classes[i], $"row {i}");
        }
    }

    private static int[][] ReadClasses(IDataView view, string column)
    {
        var result = new List<int[]>();
        using var cursor = view.GetRowCursor(new[] { view.Schema[column] });
        var getter = cursor.GetGetter<VBuffer<int>>(view.Schema[column]);
        VBuffer<int> value = default;
        while (cursor.MoveNext())
        {
            getter(ref value);
            result.Add(value.DenseValues().ToArray());
        }
        return result.ToArray();
    }
}
