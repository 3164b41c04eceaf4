using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>
/// A torchvision-compatible ResNet (v1.5): stem <c>conv1</c> (7×7, stride 2) → <c>bn1</c> → <c>relu</c> →
/// <c>maxpool</c> (3×3, stride 2), stages <c>layer1</c>..<c>layer4</c>, <c>avgpool</c> (1×1), flatten, <c>fc</c>.
/// Module and parameter names (and therefore <c>state_dict</c> keys such as <c>layer2.0.downsample.1.running_var</c>)
/// are exactly torchvision's.
/// </summary>
/// <remarks>
/// Each residual block has an extra parameterless child <c>add</c> (<see cref="Ebp.Modules.ResidualSum"/>).
/// Like torchvision, a new model is in training mode; call <c>eval()</c> before computing saliency
/// (the factories <see cref="ModelSpec"/> and <see cref="ModelZoo"/> already do).
/// </remarks>
public sealed class ResNet : nn.Module<Tensor, Tensor>
{
    // Field names are the state_dict names; declaration order is registration (definition) order.
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ReLU relu;
    private readonly MaxPool2d maxpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly AdaptiveAvgPool2d avgpool;
    private readonly Linear fc;

    /// <summary>The configuration this network was built from.</summary>
    public ResNetConfig Config { get; }

    /// <summary>Stem convolution (7×7, stride 2, padding 3, no bias).</summary>
    public Conv2d Conv1 => conv1;
    /// <summary>Stem BatchNorm.</summary>
    public BatchNorm2d Bn1 => bn1;
    /// <summary>Stem ReLU.</summary>
    public ReLU Relu => relu;
    /// <summary>Stem max pool (3×3, stride 2, padding 1).</summary>
    public MaxPool2d MaxPool => maxpool;
    /// <summary>Stage 1 (planes = Width), blocks named <c>"0"</c>, <c>"1"</c>, ….</summary>
    public Sequential Layer1 => layer1;
    /// <summary>Stage 2 (planes = 2·Width, first block stride 2).</summary>
    public Sequential Layer2 => layer2;
    /// <summary>Stage 3 (planes = 4·Width, first block stride 2).</summary>
    public Sequential Layer3 => layer3;
    /// <summary>Stage 4 (planes = 8·Width, first block stride 2).</summary>
    public Sequential Layer4 => layer4;
    /// <summary>Global average pool to 1×1.</summary>
    public AdaptiveAvgPool2d AvgPool => avgpool;
    /// <summary>Final classifier <c>Linear(8·Width·expansion → NumClasses)</c>.</summary>
    public Linear Fc => fc;

    /// <summary>Builds a ResNet from <paramref name="config"/>.</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="name">The TorchSharp module name.</param>
    /// <exception cref="ArgumentException">The configuration is invalid.</exception>
    public ResNet(ResNetConfig config, string name = "ResNet") : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;

        long w = config.Width;
        conv1 = nn.Conv2d(config.InChannels, w, kernel_size: 7, stride: 2, padding: 3, bias: false);
        bn1 = nn.BatchNorm2d(w);
        relu = nn.ReLU();
        maxpool = nn.MaxPool2d(kernel_size: 3, stride: 2, padding: 1);

        long inplanes = w;
        layer1 = MakeLayer(config.Block, ref inplanes, w, config.Layers[0], stride: 1);
        layer2 = MakeLayer(config.Block, ref inplanes, 2 * w, config.Layers[1], stride: 2);
        layer3 = MakeLayer(config.Block, ref inplanes, 4 * w, config.Layers[2], stride: 2);
        layer4 = MakeLayer(config.Block, ref inplanes, 8 * w, config.Layers[3], stride: 2);

        avgpool = nn.AdaptiveAvgPool2d(1);
        fc = nn.Linear(inplanes, config.NumClasses);

        RegisterComponents();
        TorchvisionInit.Apply(this, linearStd: null);
    }

    private static Sequential MakeLayer(ResNetBlock block, ref long inplanes, long planes, int blocks, long stride)
    {
        long expansion = block == ResNetBlock.Bottleneck ? Bottleneck.Expansion : BasicBlock.Expansion;
        Sequential? downsample = null;
        if (stride != 1 || inplanes != planes * expansion)
        {
            downsample = nn.Sequential(
                ("0", nn.Conv2d(inplanes, planes * expansion, kernel_size: 1, stride: stride, bias: false)),
                ("1", nn.BatchNorm2d(planes * expansion)));
        }

        var layer = nn.Sequential();
        layer.append("0", NewBlock(block, inplanes, planes, stride, downsample));
        inplanes = planes * expansion;
        for (int i = 1; i < blocks; i++)
            layer.append(i.ToString(), NewBlock(block, inplanes, planes, 1, null));
        return layer;
    }

    private static nn.Module<Tensor, Tensor> NewBlock(ResNetBlock block, long inplanes, long planes, long stride, Sequential? downsample) =>
        block == ResNetBlock.Bottleneck
            ? new Bottleneck(inplanes, planes, stride, downsample)
            : new BasicBlock(inplanes, planes, stride, downsample);

    /// <summary>Runs the network on <paramref name="input"/> of shape <c>[B, InChannels, H, W]</c>.</summary>
    /// <returns>Logits of shape <c>[B, NumClasses]</c>.</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = conv1.call(input);
        x = bn1.call(x);
        x = relu.call(x);
        x = maxpool.call(x);
        x = layer1.call(x);
        x = layer2.call(x);
        x = layer3.call(x);
        x = layer4.call(x);
        x = avgpool.call(x);
        x = x.flatten(1);
        x = fc.call(x);
        return x.MoveToOuterDisposeScope();
    }
}
