using Ebp.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>
/// torchvision's ResNet <c>Bottleneck</c> block (v1.5, expansion 4):
/// <c>conv1</c> (1×1) → <c>bn1</c> → ReLU → <c>conv2</c> (3×3, stride s) → <c>bn2</c> → ReLU →
/// <c>conv3</c> (1×1, to 4·planes) → <c>bn3</c>, then <c>relu(add(bn3_out, shortcut))</c>.
/// </summary>
/// <remarks>
/// The residual sum is an explicit <see cref="ResidualSum"/> child named <c>add</c> (no parameters). One
/// <c>relu</c> module is reused for all three ReLUs, as in torchvision, so a hook on it fires three times per
/// forward pass.
/// </remarks>
internal sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    /// <summary>Output channels = <c>planes · Expansion</c>.</summary>
    public const int Expansion = 4;

    // Field names are the state_dict names; order follows torchvision's definition order.
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly ReLU relu;
    private readonly Sequential? downsample;
    private readonly ResidualSum add;

    /// <summary>Creates a block.</summary>
    /// <param name="inplanes">Input channels.</param>
    /// <param name="planes">Inner width; the block outputs <c>planes · 4</c> channels.</param>
    /// <param name="stride">Stride of <c>conv2</c> (the 3×3 convolution).</param>
    /// <param name="downsample">The shortcut projection (<c>"0"</c> 1×1 conv, <c>"1"</c> BatchNorm), or null for the identity.</param>
    /// <param name="name">The TorchSharp module name.</param>
    public Bottleneck(long inplanes, long planes, long stride = 1, Sequential? downsample = null, string name = "Bottleneck")
        : base(name)
    {
        conv1 = nn.Conv2d(inplanes, planes, kernel_size: 1, bias: false);
        bn1 = nn.BatchNorm2d(planes);
        conv2 = nn.Conv2d(planes, planes, kernel_size: 3, stride: stride, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(planes);
        conv3 = nn.Conv2d(planes, planes * Expansion, kernel_size: 1, bias: false);
        bn3 = nn.BatchNorm2d(planes * Expansion);
        relu = nn.ReLU();
        this.downsample = downsample;
        add = new ResidualSum();
        Stride = stride;
        RegisterComponents();
    }

    /// <summary>Stride of the block (of <c>conv2</c> and of the downsample convolution).</summary>
    public long Stride { get; }

    /// <summary>1×1 reduction convolution.</summary>
    public Conv2d Conv1 => conv1;
    /// <summary>BatchNorm after <see cref="Conv1"/>.</summary>
    public BatchNorm2d Bn1 => bn1;
    /// <summary>3×3 convolution (carries the stride).</summary>
    public Conv2d Conv2 => conv2;
    /// <summary>BatchNorm after <see cref="Conv2"/>.</summary>
    public BatchNorm2d Bn2 => bn2;
    /// <summary>1×1 expansion convolution.</summary>
    public Conv2d Conv3 => conv3;
    /// <summary>BatchNorm after <see cref="Conv3"/> (the last layer of the residual branch).</summary>
    public BatchNorm2d Bn3 => bn3;
    /// <summary>The shared ReLU module (used after <see cref="Bn1"/>, <see cref="Bn2"/> and the residual sum).</summary>
    public ReLU Relu => relu;
    /// <summary>The shortcut projection, or null when the shortcut is the identity.</summary>
    public Sequential? Downsample => downsample;
    /// <summary>The residual sum <c>bn3_out + shortcut</c>.</summary>
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
        x = relu.call(x);
        x = conv3.call(x);
        x = bn3.call(x);
        var shortcut = downsample is null ? input : downsample.call(input);
        var y = relu.call(add.call(x, shortcut));
        return y.MoveToOuterDisposeScope();
    }
}
