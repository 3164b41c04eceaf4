using System.Reflection;
using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Ebp.MLNet.Tests;

/// <summary>Schema validation in Fit, estimator schema propagation and the transformer, before any row is read.</summary>
[TestClass]
public sealed class SchemaTests
{
    private sealed class TextRow
    {
        public string Pixels { get; set; } = "";
    }

    private sealed class ShortVectorRow
    {
        [VectorType(100)]
        public float[] Pixels { get; set; } = [];
    }

    private sealed class VariableVectorRow
    {
        public float[] Pixels { get; set; } = [];
    }

    private sealed class LabelledPixelRow
    {
        [VectorType(3, TestData.Size, TestData.Size)]
        public float[] Pixels { get; set; } = [];
        public float FloatLabel { get; set; }
        public int IntLabel { get; set; }
    }

    /// <summary>A data view whose rows cannot be read: the schema checks must not need them.</summary>
    private static IDataView Unreadable<T>(MLContext ml) where T : class, new() =>
        ml.Data.LoadFromEnumerable(ThrowOnRead<T>());

    private static IEnumerable<T> ThrowOnRead<T>()
    {
        throw new AssertFailedException("A row was read.");
#pragma warning disable CS0162 // makes this an iterator, so the throw happens on enumeration
        yield break;
#pragma warning restore CS0162
    }

    /// <summary>ML.NET's own SchemaShape of a schema (SchemaShape.Create is internal; tests may use reflection).</summary>
    private static SchemaShape ShapeOf(DataViewSchema schema)
    {
        var create = typeof(SchemaShape).GetMethod("Create", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic, [typeof(DataViewSchema)])
                     ?? throw new AssertInconclusiveException("SchemaShape.Create(DataViewSchema) not found in this ML.NET version.");
        return (SchemaShape)create.Invoke(null, [schema])!;
    }

    private static void AssertError(Action action, string message)
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(action);
        Assert.StartsWith(message, e.Message, $"actual message: {e.Message}");
    }

    /// <summary>The same error from Fit and from the estimator's schema propagation.</summary>
    private static void AssertFitAndShape(MLContext ml, SaliencyEstimator.Options options, IDataView bad, string message, bool shapeToo = true)
    {
        var estimator = ml.Transforms.ComputeSaliency(options);
        AssertError(() => estimator.Fit(bad), message);
        if (shapeToo) AssertError(() => estimator.GetOutputSchema(ShapeOf(bad.Schema)), message);
    }

    private static SaliencyTransformer FitOnPixels(MLContext ml, SaliencyEstimator.Options? options = null)
    {
        var good = ml.Data.LoadFromEnumerable(ThrowOnRead<PixelRow>());
        return ml.Transforms.ComputeSaliency(options ?? TestData.Options("Pixels")).Fit(good);
    }

    [TestMethod]
    public void MissingInputColumn()
    {
        var ml = new MLContext(seed: 1);
        var bad = Unreadable<TextRow>(ml);
        AssertFitAndShape(ml, TestData.Options("Image"), bad, "Could not find input column 'Image'");
        using var transformer = FitOnPixels(ml);
        var other = Unreadable<ImageRow>(ml);
        AssertError(() => transformer.GetOutputSchema(other.Schema), "Could not find input column 'Pixels'");
        AssertError(() => transformer.Transform(other), "Could not find input column 'Pixels'");
        AssertError(() => transformer.GetRowToRowMapper(other.Schema), "Could not find input column 'Pixels'");
    }

    [TestMethod]
    public void WrongInputType()
    {
        var ml = new MLContext(seed: 1);
        var bad = Unreadable<TextRow>(ml);
        AssertFitAndShape(ml, TestData.Options("Pixels"), bad,
            "Schema mismatch for input column 'Pixels': expected Image or Vector<Single, 3, 32, 32> (planar pixels, size 3072), got String");
        using var transformer = FitOnPixels(ml);
        AssertError(() => transformer.GetOutputSchema(bad.Schema), "Schema mismatch for input column 'Pixels': expected Image or Vector<Single, 3, 32, 32>");
    }

    [TestMethod]
    public void VectorSizeMismatch()
    {
        var ml = new MLContext(seed: 1);
        // The size is only known to the full schema (SchemaShape has no sizes): Fit and the transformer catch it.
        AssertFitAndShape(ml, TestData.Options("Pixels"), Unreadable<ShortVectorRow>(ml),
            "Schema mismatch for input column 'Pixels': expected Image or Vector<Single, 3, 32, 32> (planar pixels, size 3072), got Vector<Single, 100>",
            shapeToo: false);
        AssertFitAndShape(ml, TestData.Options("Pixels"), Unreadable<VariableVectorRow>(ml),
            "Schema mismatch for input column 'Pixels': expected Image or Vector<Single, 3, 32, 32> (planar pixels, size 3072), got Vector<Single>",
            shapeToo: false);
        using var transformer = FitOnPixels(ml);
        AssertError(() => transformer.Transform(Unreadable<ShortVectorRow>(ml)), "Schema mismatch for input column 'Pixels'");
    }

    [TestMethod]
    public void UnknownLayer()
    {
        var ml = new MLContext(seed: 1);
        var data = Unreadable<PixelRow>(ml);
        var options = TestData.Options("Pixels");
        options.SaliencyLayer = "features.99";
        AssertFitAndShape(ml, options, data, "Unknown saliency layer 'features.99': the model has no module of that name.");

        options = TestData.Options("Pixels");
        options.Method = SaliencyMethod.ContrastiveExcitationBackprop;
        options.ContrastLayer = "classifer.4"; // typo
        AssertFitAndShape(ml, options, data, "Unknown contrast layer 'classifer.4'");
    }

    [TestMethod]
    public void LabelColumnErrors()
    {
        var ml = new MLContext(seed: 1);
        var data = Unreadable<LabelledPixelRow>(ml);
        var options = TestData.Options("Pixels");
        options.Target = SaliencyTargetKind.LabelColumn;
        options.LabelColumnName = "Missing";
        AssertFitAndShape(ml, options, data, "Could not find label column 'Missing'");
        options.LabelColumnName = "FloatLabel";
        AssertFitAndShape(ml, options, data, "Schema mismatch for label column 'FloatLabel': expected Key or an integer type (Int32, Int64, UInt32, …), got Single");
        options.LabelColumnName = "IntLabel";
        using var ok = ml.Transforms.ComputeSaliency(options).Fit(data);
        Assert.AreEqual(TestData.Classes, ok.NumClasses);
    }

    [TestMethod]
    public void InconsistentOptionsAreArgumentExceptions()
    {
        var ml = new MLContext(seed: 1);
        var o = TestData.Options("Pixels");
        o.Architecture = "vgg16";
        Assert.Contains("exactly one model source", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o)).Message);
        o = TestData.Options("Pixels");
        o.Method = SaliencyMethod.ContrastiveExcitationBackprop;
        Assert.Contains("ContrastLayer", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o)).Message);
        o = TestData.Options("Pixels");
        o.Std = [1f, 0f, 1f];
        Assert.Contains("Std", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o)).Message);
        o = TestData.Options("Pixels");
        o.ScoresColumnName = "Saliency";
        Assert.Contains("used twice", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o)).Message);
        o = TestData.Options("Pixels");
        o.Target = SaliencyTargetKind.FixedClass;
        o.TargetClass = TestData.Classes;
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.ComputeSaliency(o).Fit(Unreadable<PixelRow>(ml)));
        Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(architecture: null));
        o = TestData.Options("Pixels");
        o.Device = "cuda";
        if (!TorchSharp.torch.cuda.is_available())
            Assert.Contains("TorchSharp-cuda", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o).Fit(Unreadable<PixelRow>(ml))).Message);
    }

    [TestMethod]
    public void OutputSchemaTypes()
    {
        var ml = new MLContext(seed: 1);
        var options = TestData.Options("Pixels");
        options.OverlayColumnName = "Overlay";
        var estimator = ml.Transforms.ComputeSaliency(options);
        var data = Unreadable<PixelRow>(ml);
        var shape = estimator.GetOutputSchema(ShapeOf(data.Schema));
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, shape.Single(c => c.Name == "Saliency").Kind);
        Assert.AreEqual(NumberDataViewType.Int32, shape.Single(c => c.Name == "PredictedLabel").ItemType);
        Assert.AreEqual(TextDataViewType.Instance, shape.Single(c => c.Name == "SaliencyError").ItemType);
        Assert.IsFalse(shape.Any(c => c.Name == "TopKClasses"), "no top-k column for TopK = 1");

        using var transformer = estimator.Fit(data);
        var schema = transformer.GetOutputSchema(data.Schema);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 32, 32), schema["Saliency"].Type);
        Assert.AreEqual(NumberDataViewType.Int32, schema["PredictedLabel"].Type);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, TestData.Classes), schema["Scores"].Type);
        Assert.AreEqual(new Microsoft.ML.Transforms.Image.ImageDataViewType(32, 32), schema["Overlay"].Type);
        Assert.AreEqual(TextDataViewType.Instance, schema["SaliencyError"].Type);
        Assert.IsNull(schema.GetColumnOrNull("TopKClasses"));

        // An estimator chain runs the estimator's schema propagation before fitting: it sees the same shape.
        var chain = new EstimatorChain<ITransformer>().Append(estimator);
        Assert.IsNotNull(chain.GetOutputSchema(ShapeOf(data.Schema)).Single(c => c.Name == "Scores"));
    }
}
