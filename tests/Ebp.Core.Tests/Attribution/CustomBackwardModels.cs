using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>A user's own autograd function: doubles its input; its backward fails when asked to.</summary>
internal sealed class DoubleFunction : torch.autograd.SingleTensorFunction<DoubleFunction>
{
    public const string BackwardMessage = "the user's backward failed";

    /// <summary>Read by the backward pass; set before the call.</summary>
    public static volatile bool ThrowInBackward;

    public override string Name => "UserDouble";

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).mul(2);

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        if (ThrowInBackward) throw new InvalidOperationException(BackwardMessage);
        return new List<Tensor> { grad_output.mul(2) };
    }
}

/// <summary>A parameterless module whose forward runs <see cref="DoubleFunction"/>.</summary>
internal sealed class CustomDouble : nn.Module<Tensor, Tensor>
{
    public CustomDouble() : base(nameof(CustomDouble)) { }
    public override Tensor forward(Tensor x) => DoubleFunction.apply(x);
}

/// <summary>
/// The child process of <see cref="CustomBackwardTests"/>: <c>custom-backward METHOD OPT-IN THROW</c> explains a small CNN
/// whose layer "act" runs the user's <see cref="DoubleFunction"/> (METHOD: ebp, gradient or torch for a plain
/// <c>backward()</c> without Ebp; OPT-IN: the layer in PlainGradientLayers; THROW: its backward throws) and prints
/// one tab-separated line: "map" and the map's sum, or "error", the exception type, its layer name and message;
/// then a line "untouched" and whether the model kept its outputs, flags and no hooks.
/// </summary>
internal static class CustomBackwardChild
{
    public static nn.Module<Tensor, Tensor> Model(long seed) => TestModels.Reinitialise(nn.Sequential(
        ("conv", nn.Conv2d(3, 4, 3, padding: 1)),
        ("act", new CustomDouble()),
        ("relu", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(2)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(16, 3))), seed);

    public static int Run(string[] args)
    {
        string method = args[0];
        bool optIn = bool.Parse(args[1]);
        DoubleFunction.ThrowInBackward = bool.Parse(args[2]);
        using var model = Model(140);
        model.eval();
        using var x = TestModels.Image(141, 1, 3, 6, 6);
        using var before = model.call(x).detach().clone();
        try
        {
            if (method == "torch")
            {
                var leaf = x.detach().clone().requires_grad_(true);
                model.call(leaf)[0, 0].backward();
                Console.WriteLine($"map\t{leaf.grad!.sum().item<float>()}");
            }
            else
            {
                var options = new SaliencyOptions
                {
                    Method = method == "gradient" ? SaliencyMethod.Gradient : SaliencyMethod.ExcitationBackprop,
                    PlainGradientLayers = optIn ? new[] { "act" } : Array.Empty<string>(),
                };
                using var r = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0), options);
                Console.WriteLine($"map\t{r.Map.sum().item<float>()}");
            }
        }
        catch (Exception e)
        {
            string layer = e.GetType().GetProperty("LayerName")?.GetValue(e) as string ?? "";
            Console.WriteLine($"error\t{e.GetType().Name}\t{layer}\t{e.Message.Split('\n')[0]}");
        }
        DoubleFunction.ThrowInBackward = false;
        using var after = model.call(x);
        bool untouched = TestModels.HookCount(model) == 0 && !model.training && model.parameters().All(p => p.requires_grad)
                         && TestModels.Same(after, before);
        Console.WriteLine($"untouched\t{untouched}");
        return 0;
    }
}
