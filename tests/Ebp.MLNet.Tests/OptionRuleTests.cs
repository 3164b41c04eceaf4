using Microsoft.ML;

namespace Ebp.MLNet.Tests;

/// <summary>The stage applies the engine's own option rules (SaliencyOptions.CheckRules) when it is created.</summary>
[TestClass]
public sealed class OptionRuleTests
{
    [TestMethod]
    public void ASmoothingTheEngineRefusesIsRefusedWhenTheStageIsCreated()
    {
        var ml = new MLContext(seed: 1);
        var o = TestData.Options();
        o.SmoothingSigma = MapPostProcessing.MaxSigmaFraction * 2; // non-negative, but beyond the engine's range
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o));
        Assert.Contains("SmoothingSigma must be a finite fraction of the map's larger side", e.Message);
        Assert.AreEqual("options", e.ParamName);
    }

    [TestMethod]
    public void ContrastRulesAreTheEngines()
    {
        var ml = new MLContext(seed: 1);
        var o = TestData.Options();
        o.Method = SaliencyMethod.ContrastiveExcitationBackprop;
        Assert.Contains("needs ContrastLayer", Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o)).Message);
        o.Method = SaliencyMethod.ExcitationBackprop;
        o.ClassifierLayer = "classifier.6";
        Assert.Contains("apply only to SaliencyMethod.ContrastiveExcitationBackprop",
            Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.ComputeSaliency(o)).Message);
    }
}
