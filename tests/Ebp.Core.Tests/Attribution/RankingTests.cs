using Ebp.Composites;
using Ebp.Models;
using TorchSharp;

namespace Ebp.Core.Tests.Attribution;

/// <summary>The one ranking (top-k everywhere) and the one layer-name check.</summary>
[TestClass]
public sealed class RankingTests
{
    [TestMethod]
    public void ScoresRankHighestFirstTiesToTheLowerIndexNaNLast()
    {
        CollectionAssert.AreEqual(new[] { 2, 0, 3, 1 }, Ranking.Descending([1f, -1f, 5f, 1f]));
        CollectionAssert.AreEqual(new[] { 1, 2, 0, 3 }, Ranking.Descending([float.NaN, 2f, 2f, float.NaN]));
        Assert.AreEqual(0, Ranking.Descending(ReadOnlySpan<float>.Empty).Length);
    }

    [TestMethod]
    public void TheTensorRankingAgreesWithTheArrayRanking()
    {
        float[] row0 = [0.5f, 3f, 3f, -2f, 0.5f], row1 = [1f, 1f, 1f, 1f, 9f];
        using var scores = torch.tensor(row0.Concat(row1).ToArray(), new long[] { 2, 5 });
        using var order = Ranking.Descending(scores);
        Assert.AreEqual(torch.ScalarType.Int64, order.dtype);
        CollectionAssert.AreEqual(Ranking.Descending(row0).Select(i => (long)i).ToArray(), order[0].data<long>().ToArray());
        CollectionAssert.AreEqual(new long[] { 4, 0, 1, 2, 3 }, order[1].data<long>().ToArray());
        Assert.ThrowsExactly<ArgumentException>(() => Ranking.Descending(torch.zeros(3)));
    }

    [TestMethod]
    public void AnUnknownLayerNamesCloseMatchesAndTheModelsOwnNames()
    {
        using var model = ModelSpec.Build("""{"kind":"vgg","cfg":[4,"M"],"in_channels":3,"hidden":8,"num_classes":3,"pool_size":1}""");
        var modules = ModelInspection.NamedModules(model);
        Assert.IsNull(ModelInspection.UnknownLayerMessage(modules, null, "saliency layer"));
        Assert.IsNull(ModelInspection.UnknownLayerMessage(modules, modules[0].Name, "saliency layer"));
        var message = ModelInspection.UnknownLayerMessage(modules, "feature", "contrast layer")!;
        StringAssert.StartsWith(message, "Unknown contrast layer 'feature': the model has no module of that name. Did you mean 'features'");
        StringAssert.Contains(message, $"such as '{modules[0].Name}'");
        var none = ModelInspection.UnknownLayerMessage(modules, "zzz", "saliency layer")!;
        Assert.IsFalse(none.Contains("Did you mean"), none);
        StringAssert.Contains(ModelInspection.UnknownLayerMessage(modules, "", "contrast layer")!, "Unknown contrast layer ''");
    }
}
