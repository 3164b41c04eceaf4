using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// What a caller may expect back after any Ebp call, failed or not: every module's training flag, every parameter's
/// <c>requires_grad</c> and value, every buffer, the eval-mode output of a probe input, and no hooks.
/// </summary>
internal sealed class ModelSnapshot : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _model;
    private readonly Tensor _probe;
    private readonly List<bool> _training;
    private readonly List<bool> _requiresGrad;
    private readonly List<Tensor> _state;
    private readonly Tensor _output;

    public ModelSnapshot(nn.Module<Tensor, Tensor> model, Tensor probe)
    {
        _model = model;
        _probe = probe;
        _training = Modules().Select(m => m.training).ToList();
        _requiresGrad = model.parameters().Select(p => p.requires_grad).ToList();
        _state = model.state_dict().Values.Select(t => t.detach().clone()).ToList();
        _output = EvalOutput();
    }

    private IEnumerable<nn.Module> Modules() => _model.modules().Prepend(_model);

    /// <summary>The model's output in eval mode, computed with its own flags put back afterwards.</summary>
    private Tensor EvalOutput()
    {
        var flags = Modules().Select(m => (m, m.training)).ToList();
        _model.eval();
        try
        {
            using var _ = torch.no_grad();
            return _model.call(_probe).detach().clone();
        }
        finally
        {
            // train(bool) recurses: parents (more descendants) first, so that each module ends with its own flag.
            foreach (var (m, t) in flags.OrderByDescending(f => f.m.modules().Count())) m.train(t);
        }
    }

    public void AssertUnchanged(string when)
    {
        Assert.AreEqual(0, TestModels.HookCount(_model), $"{when}: hooks left on the model");
        CollectionAssert.AreEqual(_training, Modules().Select(m => m.training).ToList(), $"{when}: training flags");
        CollectionAssert.AreEqual(_requiresGrad, _model.parameters().Select(p => p.requires_grad).ToList(), $"{when}: requires_grad");
        var state = _model.state_dict().Values.ToList();
        Assert.AreEqual(_state.Count, state.Count);
        for (int i = 0; i < state.Count; i++)
            Assert.IsTrue(TestModels.Same(state[i], _state[i]), $"{when}: parameter or buffer {i} changed");
        using var output = EvalOutput();
        Assert.IsTrue(TestModels.Same(output, _output), $"{when}: the plain forward pass gives another output");
    }

    public void Dispose()
    {
        foreach (var t in _state) t.Dispose();
        _output.Dispose();
    }
}
