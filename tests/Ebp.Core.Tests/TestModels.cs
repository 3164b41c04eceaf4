using Ebp.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Core.Tests;

/// <summary>Small models with known weights for the rule and hygiene tests.</summary>
public static class TestModels
{
    public static void SetWeights(nn.Module module, string name, float[] values, long[] shape)
    {
        using var _ = torch.no_grad();
        var p = module.named_parameters().Single(p => p.name == name).parameter;
        p.copy_(torch.tensor(values).reshape(shape));
    }

    /// <summary>
    /// Sets every parameter and BatchNorm statistic from a private generator: tests run in parallel, so the
    /// global generator (torch.manual_seed) would give different weights from run to run.
    /// </summary>
    public static T Reinitialise<T>(T model, long seed) where T : nn.Module
    {
        var g = new Generator((ulong)seed);
        using var _ = torch.no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            if (p.dim() > 1)
            {
                double fanIn = p.numel() / p.shape[0];
                p.copy_(torch.randn(p.shape, generator: g) * Math.Sqrt(2.0 / fanIn));
            }
            else if (name.EndsWith("bias")) p.copy_((torch.rand(p.shape, generator: g) - 0.5) * 0.2);
            else p.copy_(torch.rand(p.shape, generator: g) + 0.5); // BatchNorm scale
        }
        foreach (var (name, b) in model.named_buffers())
        {
            if (name.EndsWith("running_mean")) b.copy_(torch.randn(b.shape, generator: g) * 0.1);
            else if (name.EndsWith("running_var")) b.copy_(torch.rand(b.shape, generator: g) + 0.5);
        }
        return model;
    }

    /// <summary>A bias-free VGG-like CNN on 3×16×16 inputs with 5 classes, seeded.</summary>
    public static nn.Module<Tensor, Tensor> BiasFreeCnn(long seed)
    {
        var model = nn.Sequential(
            ("0", nn.Conv2d(3, 6, 3, padding: 1, bias: false)),
            ("1", nn.ReLU()),
            ("2", nn.MaxPool2d(2)),
            ("3", nn.Conv2d(6, 8, 3, padding: 1, bias: false)),
            ("4", nn.ReLU()),
            ("5", nn.AvgPool2d(2)),
            ("6", nn.AdaptiveAvgPool2d(new long[] { 3, 3 })),
            ("7", nn.Flatten()),
            ("8", nn.Linear(72, 16, hasBias: false)),
            ("9", nn.ReLU()),
            ("10", nn.Linear(16, 5, hasBias: false)));
        return Reinitialise(model, seed);
    }

    /// <summary>A small CNN with biases and BatchNorm (running statistics randomised), 4 classes.</summary>
    public static nn.Module<Tensor, Tensor> CnnWithBn(long seed)
    {
        var bn = nn.BatchNorm2d(6);
        var model = nn.Sequential(
            ("0", nn.Conv2d(3, 6, 3, padding: 1)),
            ("1", bn),
            ("2", nn.ReLU()),
            ("3", nn.MaxPool2d(2)),
            ("4", nn.Conv2d(6, 8, 3, padding: 1)),
            ("5", nn.ReLU()),
            ("6", nn.AdaptiveAvgPool2d(new long[] { 2, 2 })),
            ("7", nn.Flatten()),
            ("8", nn.Linear(32, 12)),
            ("9", nn.ReLU()),
            ("10", nn.Dropout(0.5)),
            ("11", nn.Linear(12, 4)));
        return Reinitialise(model, seed);
    }

    public static Tensor Image(long seed, params long[] shape)
    {
        var g = new Generator((ulong)seed);
        return torch.rand(shape, generator: g);
    }

    /// <summary>Bit-identical: same shape and every element equal.</summary>
    public static bool Same(Tensor a, Tensor b)
        => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    /// <summary>Number of forward hooks currently registered on any module of the model.</summary>
    public static int HookCount(nn.Module model)
    {
        int count = 0;
        foreach (var m in model.modules().Prepend(model))
        {
            for (var t = m.GetType(); t is not null; t = t.BaseType)
            {
                if (!t.IsGenericType || t.GetGenericTypeDefinition() != typeof(nn.HookableModule<,>)) continue;
                foreach (var field in new[] { "pre_hooks", "post_hooks", "module_pre_hooks", "module_post_hooks" })
                {
                    var f = t.GetField(field, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance);
                    if (f?.GetValue(m) is System.Collections.ICollection c) count += c.Count;
                }
                break;
            }
        }
        return count;
    }
}

/// <summary>y = flatten(add(lin1(id(x)), lin2(id(x)))): a residual sum with hand-checkable numbers.</summary>
internal sealed class TwoBranch : nn.Module<Tensor, Tensor>
{
    public readonly Identity id = nn.Identity();
    public readonly Linear lin1 = nn.Linear(2, 1, hasBias: false);
    public readonly Linear lin2 = nn.Linear(2, 1, hasBias: false);
    public readonly ResidualSum add = new();

    public TwoBranch(float[] w1, float[] w2) : base(nameof(TwoBranch))
    {
        RegisterComponents();
        TestModels.SetWeights(this, "lin1.weight", w1, new long[] { 1, 2 });
        TestModels.SetWeights(this, "lin2.weight", w2, new long[] { 1, 2 });
    }

    public override Tensor forward(Tensor x)
    {
        var h = id.call(x);
        return add.call(lin1.call(h), lin2.call(h));
    }
}
