using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>torchvision's default weight initialisation for VGG and ResNet.</summary>
internal static class TorchvisionInit
{
    /// <summary>
    /// Convolutions: Kaiming-normal (fan-out, ReLU), zero bias; BatchNorm: weight 1, bias 0;
    /// Linear: N(0, <paramref name="linearStd"/>) and zero bias, or left at the TorchSharp default when null.
    /// </summary>
    public static void Apply(nn.Module root, double? linearStd)
    {
        using var noGrad = torch.no_grad();
        foreach (var (_, module) in root.named_modules())
        {
            switch (module)
            {
                case Conv1d c: InitConv(c.weight, c.bias); break;
                case Conv2d c: InitConv(c.weight, c.bias); break;
                case Conv3d c: InitConv(c.weight, c.bias); break;
                case BatchNorm1d b: InitNorm(b.weight, b.bias); break;
                case BatchNorm2d b: InitNorm(b.weight, b.bias); break;
                case BatchNorm3d b: InitNorm(b.weight, b.bias); break;
                case Linear l when linearStd is double std:
                    nn.init.normal_(l.weight!, 0, std);
                    if (l.bias is not null) nn.init.zeros_(l.bias);
                    break;
            }
        }
    }

    private static void InitConv(Tensor? weight, Tensor? bias)
    {
        if (weight is not null)
            nn.init.kaiming_normal_(weight, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
        if (bias is not null) nn.init.zeros_(bias);
    }

    private static void InitNorm(Tensor? weight, Tensor? bias)
    {
        if (weight is not null) nn.init.ones_(weight);
        if (bias is not null) nn.init.zeros_(bias);
    }
}
