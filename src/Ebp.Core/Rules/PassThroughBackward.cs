using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>The autograd side of <see cref="PassThroughRule"/>: <c>G_in = G</c>.</summary>
internal static class PassThroughBackward
{
    public static Tensor Attach(RuleScope scope, string name, Tensor input, Tensor output)
        => PassThroughFunction.apply(input, new PassThroughNode(scope, name, scope.Keep(output.detach()), input.shape));
}

internal sealed record PassThroughNode(RuleScope Scope, string Name, Tensor Output, long[] InputShape);

internal sealed class PassThroughFunction : torch.autograd.SingleTensorFunction<PassThroughFunction>
{
    public override string Name => "EbpPassThrough";

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var node = (PassThroughNode)vars[1];
        ctx.save_data("node", node);
        return node.Output.detach();
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        var node = (PassThroughNode)ctx.get_data("node");
        return BackwardGuard.Run(node.Scope, node.Name,
            () => new List<Tensor> { grad_output.reshape(node.InputShape), null! },
            () => new List<Tensor> { torch.zeros(node.InputShape, grad_output.dtype, grad_output.device), null! });
    }
}
