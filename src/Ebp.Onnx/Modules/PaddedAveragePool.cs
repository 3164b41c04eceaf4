using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Modules;

/// <summary>
/// ONNX 2-D <c>AveragePool</c> with asymmetric pads that are not counted (older PyTorch exports of
/// <c>ceil_mode</c>): the window sum over the zero-padded input divided by the number of real inputs in it.
/// Not an <c>AvgPool2d</c>, so Excitation Backprop passes its ordinary gradient.
/// </summary>
internal sealed class PaddedAveragePool : nn.Module<Tensor, Tensor>
{
    private readonly long[] _kernel, _stride, _torchPads;

    public PaddedAveragePool(string name, long[] kernel, long[] stride, long[] onnxPads) : base(name)
    {
        _kernel = kernel;
        _stride = stride;
        _torchPads = [onnxPads[1], onnxPads[3], onnxPads[0], onnxPads[2]];
    }

    public override Tensor forward(Tensor input)
    {
        using var padded = nn.functional.pad(input, _torchPads);
        using var ones = torch.ones(1, 1, input.shape[2], input.shape[3], dtype: input.dtype, device: input.device);
        using var mask = nn.functional.pad(ones, _torchPads);
        using var sum = nn.functional.avg_pool2d(padded, _kernel, _stride);
        using var count = nn.functional.avg_pool2d(mask, _kernel, _stride);
        return sum.div(count);
    }
}
