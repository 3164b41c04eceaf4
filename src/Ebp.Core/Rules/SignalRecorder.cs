using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// The autograd side of <see cref="SignalProbe"/>: identity in the forward pass; in the backward pass records the
/// signal arriving at a module's output.
/// </summary>
internal static class SignalRecorder
{
    public static Tensor Attach(RuleScope scope, string name, Tensor output)
        => SignalProbeFunction.apply(output, new ProbeNode(scope, name, scope.Keep(output.detach())));
}

internal sealed record ProbeNode(RuleScope Scope, string Name, Tensor Output);

internal sealed class SignalProbeFunction : torch.autograd.SingleTensorFunction<SignalProbeFunction>
{
    public override string Name => "EbpSignalProbe";

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var node = (ProbeNode)vars[1];
        ctx.save_data("node", node);
        return node.Output.detach();
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        var node = (ProbeNode)ctx.get_data("node");
        return BackwardGuard.Run(node.Scope, node.Name, () =>
        {
            node.Scope.RecordSignal(node.Name, grad_output);
            return new List<Tensor> { grad_output.alias(), null! };
        }, () => new List<Tensor> { torch.zeros_like(node.Output), null! });
    }
}
