using Ebp.Models;
using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Tests;

/// <summary>Laziness, batching, the prediction engine and concurrent cursors.</summary>
[TestClass]
public sealed class BehaviourTests
{
    /// <summary>A factory whose models count their forward passes and instances.</summary>
    private sealed class CountingFactory
    {
        private int _calls, _instances;
        public int Calls => Volatile.Read(ref _calls);
        public int Instances => Volatile.Read(ref _instances);

        /// <summary>If set, the first two forward passes wait for each other here: they must run at the same time.</summary>
        public Barrier? Meet { get; init; }
        public bool Met { get; private set; }

        public nn.Module<Tensor, Tensor> Create()
        {
            Interlocked.Increment(ref _instances);
            var model = ModelSpec.Build(TestData.Spec);
            model.register_forward_pre_hook((nn.Module _) =>
            {
                if (Interlocked.Increment(ref _calls) <= 2 && Meet is { } meet && meet.SignalAndWait(TimeSpan.FromSeconds(30)))
                    Met = true;
            });
            return model;
        }
    }

    private static SaliencyEstimator.Options FactoryOptions(CountingFactory factory, string input = "Image", int batchSize = 8)
    {
        var o = TestData.Options(input, batchSize);
        o.ModelSpecJson = null;
        o.ModelFactory = factory.Create;
        return o;
    }

    [TestMethod]
    public void TransformIsLazy()
    {
        var ml = new MLContext(seed: 1);
        var factory = new CountingFactory();
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var pipeline = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(FactoryOptions(factory)));
        using var model = pipeline.Fit(data);
        Assert.AreEqual(0, factory.Calls, "Fit ran the model");
        var view = model.Transform(data);
        _ = view.Schema;
        Assert.AreEqual(0, factory.Calls, "Transform ran the model");

        using (var cursor = view.GetRowCursor(view.Schema))
        {
            Assert.AreEqual(0, factory.Calls, "creating a cursor ran the model");
            Assert.IsTrue(cursor.MoveNext());
            Assert.AreEqual(1, factory.Calls, "the first MoveNext runs one batch of 7 rows");
            while (cursor.MoveNext()) { }
            Assert.AreEqual(1, factory.Calls, "one forward pass for the whole batch");
            Assert.AreEqual(TestData.ImageNames.Length - 1, cursor.Position);
        }

        // A cursor without stage columns never runs the model.
        using (var cursor = view.GetRowCursor(new[] { view.Schema["Path"] }))
        {
            var path = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Path"]);
            int n = 0;
            ReadOnlyMemory<char> value = default;
            while (cursor.MoveNext()) { path(ref value); n++; }
            Assert.AreEqual(TestData.ImageNames.Length, n);
        }
        Assert.AreEqual(1, factory.Calls);
        Assert.AreEqual(1, factory.Instances);
    }

    [TestMethod]
    public void ResultsDoNotDependOnBatchSize()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        List<SaliencyRow> Run(int batch)
        {
            using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Image", batch))).Fit(data);
            return TestData.Read(ml, model.Transform(data));
        }
        var one = Run(1);
        Assert.HasCount(TestData.ImageNames.Length, one);
        Assert.IsTrue(one.Select(r => r.PredictedLabel).Distinct().Count() > 1, "the test model should predict several classes");
        foreach (int batch in new[] { 3, 8 })
        {
            var other = Run(batch);
            for (int i = 0; i < one.Count; i++)
            {
                Assert.AreEqual(one[i].Path, other[i].Path);
                TestData.AssertClose(one[i].Saliency, other[i].Saliency, 1e-5, $"batch {batch}, row {i}, map");
                TestData.AssertClose(one[i].Scores, other[i].Scores, 1e-5, $"batch {batch}, row {i}, scores");
                Assert.AreEqual(one[i].PredictedLabel, other[i].PredictedLabel);
            }
        }
    }

    [TestMethod]
    public void PredictionEngineEqualsBatchedOutput()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(TestData.Options("Image", 4))).Fit(data);
        Assert.IsTrue(((ITransformer)model).IsRowToRowMapper);
        var batched = TestData.Read(ml, model.Transform(data));
        using var engine = ml.Model.CreatePredictionEngine<ImageRow, SaliencyRow>(model);
        // Out of order and repeated: each prediction must use its own row.
        foreach (int i in new[] { 3, 0, 6, 0, 2 })
        {
            var p = engine.Predict(new ImageRow { Path = TestData.ImageNames[i] });
            Assert.AreEqual(batched[i].PredictedLabel, p.PredictedLabel, $"row {i}");
            TestData.AssertClose(batched[i].Saliency, p.Saliency, 1e-5, $"row {i} map");
            TestData.AssertClose(batched[i].Scores, p.Scores, 1e-5, $"row {i} scores");
        }
    }

    [TestMethod]
    public void PredictionEngineOnPixelVectors()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var pixels = ml.Data.CreateEnumerable<PixelRow>(TestData.PixelPipeline(ml).Fit(data).Transform(data), false).ToList();
        var pixelData = ml.Data.LoadFromEnumerable(pixels);
        using var stage = ml.Transforms.ComputeSaliency(TestData.Options("Pixels", 8)).Fit(pixelData);
        var batched = TestData.Read(ml, stage.Transform(pixelData));
        using var engine = ml.Model.CreatePredictionEngine<PixelRow, SaliencyRow>(stage);
        for (int i = pixels.Count - 1; i >= 0; i--)
        {
            var p = engine.Predict(pixels[i]);
            TestData.AssertClose(batched[i].Saliency, p.Saliency, 1e-5, $"row {i}");
        }
    }

    [TestMethod]
    public void ConcurrentCursorsUseTheirOwnModels()
    {
        var ml = new MLContext(seed: 1);
        // The first forward pass of each cursor waits for the other's: this only completes if the two passes run at
        // the same time, i.e. on two model instances (calls on one instance are serialised by the engine).
        using var meet = new Barrier(2);
        var factory = new CountingFactory { Meet = meet };
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        using var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(FactoryOptions(factory, batchSize: 2))).Fit(data);
        var view = model.Transform(data);

        var results = new List<float[]>[2];
        var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            var maps = new List<float[]>();
            using var cursor = view.GetRowCursor(view.Schema);
            var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["Saliency"]);
            VBuffer<float> buffer = default;
            while (cursor.MoveNext())
            {
                getter(ref buffer);
                maps.Add(buffer.DenseValues().ToArray());
            }
            results[t] = maps;
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.IsTrue(factory.Met, "the two cursors' first passes did not run concurrently");
        Assert.AreEqual(2, factory.Instances, "two concurrent passes need exactly two model instances");
        var sequential = TestData.Read(ml, view);
        foreach (var maps in results)
            for (int i = 0; i < sequential.Count; i++)
                TestData.AssertClose(sequential[i].Saliency, maps[i], 1e-5, $"row {i}");
    }

    [TestMethod]
    public void PoolGivesDistinctInstancesWithTheSameWeights()
    {
        var ml = new MLContext(seed: 1);
        var options = TestData.Options("Pixels");
        options.ModelSpecJson = null;
        options.ModelFactory = () => ModelSpec.Build(TestData.Spec); // random init: extra instances must copy the weights
        using var transformer = ml.Transforms.ComputeSaliency(options).Fit(ml.Data.LoadFromEnumerable(new[] { new PixelRow() }));
        using (var a = transformer.Pool.Rent())
        using (var b = transformer.Pool.Rent())
        {
            Assert.AreNotSame(a.Model, b.Model);
            var wa = a.Model.state_dict();
            var wb = b.Model.state_dict();
            foreach (var (name, t) in wa)
                Assert.IsTrue(t.eq(wb[name]).all().item<bool>(), name);
        }
        using (var c = transformer.Pool.Rent())
            Assert.AreEqual(2, transformer.Pool.InstanceCount, "returned instances are reused");
    }

    [TestMethod]
    public void PreviewAndDispose()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        var options = TestData.Options();
        options.OverlayColumnName = "Overlay";
        var model = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(options)).Fit(data);
        var view = model.Transform(data);
        var preview = view.Preview(3);
        Assert.HasCount(3, preview.RowView);
        var overlay = (MLImage)preview.ColumnView.Single(c => c.Column.Name == "Overlay").Values[0];
        Assert.AreEqual(32, overlay.Width);

        var file = Path.Combine(TestData.TempDir, "preview-overlay.png");
        SaliencyImages.SavePng(overlay, file);
        using (var reread = MLImage.CreateFromFile(file))
            Assert.AreEqual(32, reread.Height);

        // Dispose frees the model instances but keeps the weights (ML.NET's PredictionEngine disposes the transformer
        // it was made from, which the caller still holds): the view still computes the same maps afterwards.
        var before = TestData.Read(ml, view);
        model.Dispose();
        var after = TestData.Read(ml, view);
        Assert.HasCount(before.Count, after);
        for (int i = 0; i < before.Count; i++) TestData.AssertClose(before[i].Saliency, after[i].Saliency, 0, $"row {i}");
    }
}
