using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// A seeded test model (<see cref="TestModels.CnnWithBn"/>) with an input, a snapshot of its state and the map of one
/// sequential call for class 1: what the threading tests compare every call and the model's end state with.
/// </summary>
internal sealed class ExplainedModel : IDisposable
{
    public ExplainedModel(long seed, SaliencyOptions options, bool training = false)
    {
        Model = TestModels.CnnWithBn(seed);
        Model.train(training);
        X = TestModels.Image(seed + 1, 1, 3, 12, 12);
        Snapshot = new ModelSnapshot(Model, X);
        Explainer = new SaliencyExplainer(Model);
        Expected = Explainer.Explain(X, SaliencyTarget.Class(1), options);
    }

    public nn.Module<Tensor, Tensor> Model { get; }
    public Tensor X { get; }
    public ModelSnapshot Snapshot { get; }
    public SaliencyExplainer Explainer { get; }
    public SaliencyResult Expected { get; }

    public void Dispose()
    {
        Expected.Dispose();
        Snapshot.Dispose();
        X.Dispose();
        Model.Dispose();
    }
}
