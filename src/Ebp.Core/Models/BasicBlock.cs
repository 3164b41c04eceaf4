using Ebp.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>
/// torchvision's ResNet <c>BasicBlock</c> (expansion 1):
/// <c>conv1</c> (3×3, stride s) → <c>bn1</c> → ReLU → <c>conv2</c> (3×3) → <c>bn2</c>, then
/// <c>relu(add(bn2_out, shortcut))</c>, where the shortcut is the input or <c>downsample(input)</c>.
/// </summary>
/// <remarks>
/// The residual sum is an explicit <see cref="ResidualSum"/> child named <c>add</c> (no parameters, so the
/// <c>state_dict</c> is torchvision's). One <c>relu</c> module is reused for both ReLUs, as in torchvision, so a
/// hook on it fires twice per forward pass.
/// </remarks>
internal sealed class BasicBlock : nn.Module<Tensor, Tensor>
{
    /// <summary>Output channels = <c>planes · Expansion</c>.</summary>
    public const int Expansion = 1;

    // Field names are the state_dict names; order follows torchvision's definition order.
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ReLU relu;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? downsample;
    private readonly ResidualSum add;

    /// <summary>Creates a block.</summary>
    /// <param name="inplanes">Input channels.</param>
    /// <param name="planes">Output channels of both convolutions.</param>
    /// <param name="stride">Stride of <c>conv1</c>.</param>
    /// <param name="downsample">The shortcut projection (<c>"0"</c> 1×1 conv, <c>"1"</c> BatchNorm), or null for the identity.</param>
    /// <param name="name">The TorchSharp module name.</param>
    public BasicBlock(long inplanes, long planes, long stride = 1, Sequential? downsample = null, string name = "BasicBlock")
        : base(name)
    {
        conv1 = nn.Conv2d(inplanes, planes, kernel_size: 3, stride: stride, padding: 1, bias: false);
        bn1 = nn.BatchNorm2d(planes);
        relu = nn.ReLU();
        conv2 = nn.Conv2d(planes, planes, kernel_size: 3, stride: 1, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(planes);
        this.downsample = downsample;
        add = new ResidualSum();
        Stride = stride;
        RegisterComponents();
    }

    /// <summary>Stride of the block (of <c>conv1</c> and of the downsample convolution).</summary>
    public long Stride { get; }

    /// <summary>First 3×3 convolution.</summary>
    public Conv2d Conv1 => conv1;
    /// <summary>BatchNorm after <see cref="Conv1"/>.</summary>
    public BatchNorm2d Bn1 => bn1;
    /// <summary>Second 3×3 convolution.</summary>
    public Conv2d Conv2 => conv2;
    /// <summary>BatchNorm after <see cref="Conv2"/> (the last layer of the residual branch).</summary>
    public BatchNorm2d Bn2 => bn2;
    /// <summary>The shared ReLU module (used after <see cref="Bn1"/> and after the residual sum).</summary>
    public ReLU Relu => relu;
    /// <summary>The shortcut projection, or null when the shortcut is the identity.</summary>
    public Sequential? Downsample => downsample;
    /// <summary>The residual sum <c>bn2_out + shortcut</c>.</summary>
    public ResidualSum Add => add;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = conv1.call(input);
        x = bn1.call(x);
        x = relu.call(x);
        x = conv2.call(x);
        x = bn2.call(x);
        var shortcut = downsample is null ? input : downsample.call(input);
        var y = relu.call(add.call(x, shortcut));
        return y.MoveToOuterDisposeScope();
    }
}
