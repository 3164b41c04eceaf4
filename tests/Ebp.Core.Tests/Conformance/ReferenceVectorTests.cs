using Ebp.Conformance;

namespace Ebp.Core.Tests.Conformance;

/// <summary>The public reference vectors (TorchRay, PyTorch 1.13.1), copied byte-identical into TestData/reference.</summary>
[TestClass]
public sealed class ReferenceVectorTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "TestData", "reference");

    public static IEnumerable<object[]> Cases()
        => ConformanceCase.Load(Path.Combine(Folder, "cases.json")).Select(c => new object[] { c.Name });

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void ReferenceCase_PassesItsCriterion(string name)
    {
        var c = ConformanceCase.Load(Path.Combine(Folder, "cases.json")).Single(k => k.Name == name);
        var outcome = CaseRunner.Run(c, Folder);
        try
        {
            Assert.IsTrue(outcome.HasExpected, $"{name}: {outcome.Error}");
            Assert.IsTrue(outcome.Passed, $"{name}: {outcome.Error}");
            Assert.IsTrue(outcome.RelativeError <= c.RtolOfMax);
        }
        finally { outcome.Map?.Dispose(); }
    }

    [TestMethod]
    public void AllSeventeenPublicCasesArePresent()
        => Assert.AreEqual(17, ConformanceCase.Load(Path.Combine(Folder, "cases.json")).Count);

    [TestMethod]
    public void PlainEbpMaps_ConserveTheSignal()
    {
        // README 4.1: a one-hot plain-EBP map sums to ≈ 1 before any resize (within 4 % for every case).
        foreach (var c in ConformanceCase.Load(Path.Combine(Folder, "cases.json"))
                     .Where(c => c.Method == "excitation_backprop" && c.Resize is null && !c.File.Contains("target_gradient")))
        {
            var outcome = CaseRunner.Run(c, Folder);
            using var map = outcome.Map ?? throw new AssertFailedException($"{c.Name}: {outcome.Error}");
            var batch = map.shape[0];
            for (long b = 0; b < batch; b++)
                Assert.AreEqual(1.0, map[b].sum().item<float>(), 0.04, $"{c.Name}[{b}]");
        }
    }
}
