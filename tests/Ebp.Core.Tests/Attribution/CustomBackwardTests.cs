using Ebp.Composites;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// Issue 14, item 14: TorchSharp 0.107 aborts the process (SIGABRT, exit code 134) when a user's autograd function
/// throws in its backward, with or without Ebp. Ebp therefore refuses such a function on the path before any
/// backward pass runs, naming the layer, unless the layer is opted in. The aborting runs happen in a child process
/// (<see cref="CustomBackwardChild"/>).
/// </summary>
[TestClass]
public sealed class CustomBackwardTests
{
    /// <summary>128 + SIGABRT: how .NET reports a child that aborted, on Linux.</summary>
    private const int SigAbrtExitCode = 134;

    private static ChildProcess.Outcome Child(string method, bool optIn, bool throwInBackward)
        => ChildProcess.Run(new[] { "custom-backward", method, optIn.ToString(), throwInBackward.ToString() });

    [TestMethod]
    [DataRow("ebp")]
    [DataRow("gradient")]
    public void ThrowingCustomBackwardInThePath_IsAClearError_AndTheProcessLives(string method)
    {
        var outcome = Child(method, optIn: false, throwInBackward: true);
        Assert.AreEqual(0, outcome.ExitCode, $"the child died:\n{outcome.StdOut}\n{outcome.StdErr}");
        var error = outcome.Lines[0].Split('\t');
        Assert.AreEqual("error", error[0], outcome.StdOut);
        Assert.AreEqual(nameof(CustomAutogradFunctionException), error[1]);
        Assert.AreEqual("act", error[2]);
        StringAssert.Contains(error[3], typeof(DoubleFunction).FullName!);
        StringAssert.Contains(error[3], "PlainGradientLayers");
        Assert.AreEqual("untouched\tTrue", outcome.Lines[1]);
    }

    [TestMethod]
    [DataRow("ebp", true)]
    [DataRow("gradient", true)]
    [DataRow("torch", false)]
    public void ThrowingCustomBackward_WhenRun_AbortsTheProcess(string method, bool optIn)
    {
        // The documented limitation: once the user's backward runs and throws, nothing survives it, not even plain TorchSharp.
        var outcome = Child(method, optIn, throwInBackward: true);
        if (OperatingSystem.IsLinux()) Assert.AreEqual(SigAbrtExitCode, outcome.ExitCode, $"{outcome.StdOut}\n{outcome.StdErr}");
        else Assert.AreNotEqual(0, outcome.ExitCode, $"{outcome.StdOut}\n{outcome.StdErr}");
        StringAssert.Contains(outcome.StdErr, DoubleFunction.BackwardMessage);
        Assert.IsFalse(outcome.StdOut.Contains("map\t"), outcome.StdOut);
    }

    [TestMethod]
    public void WorkingCustomBackward_OptedIn_GivesTheMapOfTheSameOperationWithoutIt()
    {
        using var model = CustomBackwardChild.Model(142);
        using var x = TestModels.Image(143, 1, 3, 6, 6);
        var explainer = new SaliencyExplainer(model);
        Assert.IsFalse(DoubleFunction.ThrowInBackward);
        var ex = Assert.Throws<CustomAutogradFunctionException>(() => explainer.Explain(x, SaliencyTarget.Class(1)));
        Assert.AreEqual("act", ex.LayerName);
        Assert.AreEqual(nameof(CustomDouble), ex.LayerType);
        Assert.AreEqual(0, TestModels.HookCount(model));

        using var optedIn = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { PlainGradientLayers = new[] { "act" } });
        using var all = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { PlainGradientForUnsupportedLayers = true });
        // The same model (same generator, same parameter order) with act as a plain ×2 under autograd's own backward.
        using var reference = TestModels.Reinitialise(nn.Sequential(("conv", nn.Conv2d(3, 4, 3, padding: 1)), ("act", new ScaleBy2()),
            ("relu", nn.ReLU()), ("pool", nn.AdaptiveAvgPool2d(2)), ("flat", nn.Flatten()), ("fc", nn.Linear(16, 3))), 142);
        using var expected = new SaliencyExplainer(reference).Explain(x, SaliencyTarget.Class(1));
        Assert.IsTrue(TestModels.Same(expected.Map, optedIn.Map));
        Assert.IsTrue(TestModels.Same(expected.Map, all.Map));

        // Below the saliency layer the function never runs backwards: no error.
        using var above = explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { SaliencyLayer = "act" });
        Assert.IsTrue(above.Map.isfinite().all().item<bool>());
        using var session = explainer.OpenSession();
        Assert.Throws<CustomAutogradFunctionException>(() => session.Explain(x, SaliencyTarget.Class(1)));
    }

    private sealed class ScaleBy2 : nn.Module<Tensor, Tensor>
    {
        public ScaleBy2() : base(nameof(ScaleBy2)) { }
        public override Tensor forward(Tensor x) => x.mul(2);
    }
}
