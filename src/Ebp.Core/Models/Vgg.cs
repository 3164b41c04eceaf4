using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Models;

/// <summary>
/// A torchvision-compatible VGG network: <c>features</c> → <c>avgpool</c> → flatten → <c>classifier</c>.
/// Module and parameter names (and therefore <c>state_dict</c> keys such as <c>features.0.weight</c> or
/// <c>classifier.6.bias</c>) are exactly torchvision's, so PyTorch weights load without renaming.
/// </summary>
/// <remarks>
/// Like torchvision, a new model is in training mode; call <c>eval()</c> before computing saliency
/// (the factories <see cref="ModelSpec"/> and <see cref="ModelZoo"/> already do). Weights are initialised as
/// torchvision does (Kaiming-normal convolutions, unit BatchNorm, N(0, 0.01) linear layers, zero biases).
/// </remarks>
public sealed class Vgg : nn.Module<Tensor, Tensor>
{
    // Field names are the state_dict names; declaration order is registration (definition) order.
    private readonly Sequential features;
    private readonly AdaptiveAvgPool2d avgpool;
    private readonly Sequential classifier;

    /// <summary>The configuration this network was built from.</summary>
    public VggConfig Config { get; }

    /// <summary>The convolutional part, children named <c>"0"</c>, <c>"1"</c>, ….</summary>
    public Sequential Features => features;

    /// <summary>The adaptive average pool to <c>(PoolHeight, PoolWidth)</c>.</summary>
    public AdaptiveAvgPool2d AvgPool => avgpool;

    /// <summary>The seven-module classifier (Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear).</summary>
    public Sequential Classifier => classifier;

    /// <summary>Builds a VGG network from <paramref name="config"/>.</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="name">The TorchSharp module name.</param>
    /// <exception cref="ArgumentException">The configuration is invalid.</exception>
    public Vgg(VggConfig config, string name = "VGG") : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;

        features = nn.Sequential();
        long channels = config.InChannels;
        int index = 0;
        foreach (var item in config.Cfg)
        {
            if (item is string)
            {
                features.append((index++).ToString(), nn.MaxPool2d(kernel_size: 2, stride: 2));
                continue;
            }
            long v = Convert.ToInt64(item);
            features.append((index++).ToString(), nn.Conv2d(channels, v, kernel_size: 3, padding: 1));
            if (config.BatchNorm)
                features.append((index++).ToString(), nn.BatchNorm2d(v));
            features.append((index++).ToString(), nn.ReLU());
            channels = v;
        }

        avgpool = nn.AdaptiveAvgPool2d((config.PoolHeight, config.PoolWidth));

        classifier = nn.Sequential(
            ("0", nn.Linear(channels * config.PoolHeight * config.PoolWidth, config.Hidden)),
            ("1", nn.ReLU()),
            ("2", nn.Dropout(config.Dropout)),
            ("3", nn.Linear(config.Hidden, config.Hidden)),
            ("4", nn.ReLU()),
            ("5", nn.Dropout(config.Dropout)),
            ("6", nn.Linear(config.Hidden, config.NumClasses)));

        RegisterComponents();
        TorchvisionInit.Apply(this, linearStd: 0.01);
    }

    /// <summary>Runs the network on <paramref name="input"/> of shape <c>[B, InChannels, H, W]</c>.</summary>
    /// <returns>Logits of shape <c>[B, NumClasses]</c>.</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = features.call(input);
        x = avgpool.call(x);
        x = x.flatten(1);
        x = classifier.call(x);
        return x.MoveToOuterDisposeScope();
    }
}
