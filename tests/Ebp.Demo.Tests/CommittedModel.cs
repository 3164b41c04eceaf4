using Ebp.Datasets;
using Ebp.Evaluation;

namespace Ebp.Demo.Tests;

/// <summary>The committed model and test scenes built from the committed t10k subset, loaded once.</summary>
internal static class CommittedModel
{
    public static string CardPath => Path.Combine(AppContext.BaseDirectory, "TestData", "models", "cluttered-mnist-vgg.json");
    public static string SubsetDir => Path.Combine(AppContext.BaseDirectory, "TestData", "mnist-t10k-subset");

    private static readonly Lazy<LoadedModel> LazyModel = new(() => LoadedModel.Load(CardPath));
    private static readonly Lazy<MnistSet> LazySubset = new(() => IdxReader.ReadSet(
        Path.Combine(SubsetDir, "t10k-images-idx3-ubyte.gz"), Path.Combine(SubsetDir, "t10k-labels-idx1-ubyte"), MnistSplit.Test));

    /// <summary>The committed model, loaded strictly. Shared: callers must not dispose or modify it.</summary>
    public static LoadedModel Model => LazyModel.Value;

    /// <summary>The first 200 t10k digits.</summary>
    public static MnistSet Subset => LazySubset.Value;

    /// <summary>Scenes 0..count-1 of the evaluation seed, from the subset.</summary>
    public static IReadOnlyList<ClutteredScene> Scenes(int count) =>
        ClutteredMnistGenerator.ForTest(Subset).Generate(count, SceneData.TestSceneSeed);

    /// <summary>Serialises the tests that run the shared model (the explainer serialises calls anyway).</summary>
    public static readonly object Gate = new();
}
