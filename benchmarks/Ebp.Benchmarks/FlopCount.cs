using Ebp.Composites;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Benchmarks;

/// <summary>
/// Multiply-accumulates of the convolutions and linear layers of one forward pass, and the share that
/// runs above a given layer. EBP's cost bound follows from it: every conv/linear above the saliency layer
/// runs once more forward (Z = W⁺x) and once transposed, so EBP ≈ (1 + 2·above/total) × forward.
/// </summary>
internal static class FlopCount
{
    public static (double Total, double Above) MacsAbove(nn.Module<Tensor, Tensor> model, Tensor input, string layer)
    {
        double total = 0, above = 0;
        bool reached = layer.Length == 0;
        var removers = new List<Action>();
        foreach (var (name, module) in ModelInspection.NamedModules(model))
        {
            if (module is not nn.Module<Tensor, Tensor> m) continue;
            var n = name;
            var r = m.register_forward_hook((mod, x, y) =>
            {
                double macs = mod switch
                {
                    Convolution c => (double)y.numel() * (c.in_channels / c.groups) * c.kernel_size.Aggregate(1L, (a, b) => a * b),
                    Linear l => (double)y.numel() * l.in_features,
                    _ => 0,
                };
                total += macs;
                if (reached) above += macs;
                if (n == layer) reached = true;
                return y;
            });
            removers.Add(r.remove);
        }
        using (torch.no_grad()) using (var scope = torch.NewDisposeScope()) model.call(input);
        removers.ForEach(r => r());
        return (total, above);
    }
}
