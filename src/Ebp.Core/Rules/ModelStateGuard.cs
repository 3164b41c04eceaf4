using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// Puts a model in eval mode with frozen parameters for as long as it lives, and on <see cref="Dispose"/> gives
/// every module its own training flag and every parameter its own <c>requires_grad</c> back.
/// </summary>
internal sealed class ModelStateGuard : IDisposable
{
    private readonly List<(nn.Module Module, bool Training, int Depth)> _training = new();
    private readonly List<(Parameter Parameter, bool RequiresGrad)> _frozen = new();
    private bool _disposed;

    public ModelStateGuard(nn.Module model, IReadOnlyList<(string Name, nn.Module Module)> modules)
    {
        _training.Add((model, model.training, 0));
        foreach (var (name, module) in modules)
            _training.Add((module, module.training, name.Count(c => c == '.') + 1));
        foreach (var (_, p) in model.named_parameters())
        {
            _frozen.Add((p, p.requires_grad));
            p.requires_grad_(false);
        }
        model.eval();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (p, requiresGrad) in _frozen) p.requires_grad_(requiresGrad);
        // train(bool) recurses into children: restore from the root down so that each module ends with its own flag.
        foreach (var (module, training, _) in _training.OrderBy(t => t.Depth)) module.train(training);
    }
}
