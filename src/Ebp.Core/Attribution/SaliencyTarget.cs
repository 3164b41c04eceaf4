using TorchSharp;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// What the backward pass starts from: the initial signal at the model output, <c>[B, classes]</c>.
/// </summary>
public abstract class SaliencyTarget
{
    private protected SaliencyTarget() { }

    /// <summary>One class for every sample of the batch (one-hot signal).</summary>
    public static SaliencyTarget Class(int classIndex) => new ClassTarget(new[] { classIndex }, broadcast: true, pointing: false);

    /// <summary>One class per sample (one-hot signal); the array's length must equal the batch size.</summary>
    public static SaliencyTarget Classes(params int[] perSample) => new ClassTarget(perSample, broadcast: false, pointing: false);

    /// <summary>
    /// The pointing-game signal of TorchRay: <c>exp(score[target])</c> at the target, normalised by its sum.
    /// As the sum runs over that one entry, the signal is 1 at the target, like a one-hot signal; it is
    /// computed without forming exp(score), so large scores cannot overflow.
    /// </summary>
    public static SaliencyTarget Pointing(params int[] perSample)
        => new ClassTarget(perSample, broadcast: perSample.Length == 1, pointing: true);

    /// <summary>The model's top-1 prediction for each sample.</summary>
    public static SaliencyTarget Predicted { get; } = new RankedTarget(0);

    /// <summary>The class with the (<paramref name="rank"/>+1)-th highest score of each sample (0 = top-1).</summary>
    public static SaliencyTarget Ranked(int rank)
        => rank < 0 ? throw new ArgumentOutOfRangeException(nameof(rank), rank, "Rank must be ≥ 0.") : new RankedTarget(rank);

    /// <summary>The top-<paramref name="k"/> predicted classes, as targets for <see cref="SaliencyExplainer.ExplainEach"/>.</summary>
    public static IReadOnlyList<SaliencyTarget> TopK(int k)
        => k <= 0 ? throw new ArgumentOutOfRangeException(nameof(k), k, "k must be ≥ 1.") : Enumerable.Range(0, k).Select(Ranked).ToArray();

    /// <summary>An explicit signal with the model output's shape (e.g. non-negative weights over several classes).</summary>
    public static SaliencyTarget Seed(Tensor seed) => new SeedTarget(seed);

    /// <summary>Builds the signal for a model output. Throws when it does not fit.</summary>
    internal abstract Tensor Build(Tensor output);

    internal static void CheckOutput(Tensor output)
    {
        if (output.dim() != 2)
            throw new InvalidOperationException(
                $"The model output has shape [{string.Join(", ", output.shape)}]; a class target needs [batch, classes]. " +
                "Pass SaliencyTarget.Seed with a tensor of the output's shape instead.");
    }

    private sealed class ClassTarget : SaliencyTarget
    {
        private readonly int[] _classes;
        private readonly bool _broadcast;

        public ClassTarget(int[] classes, bool broadcast, bool pointing)
        {
            if (classes is null || classes.Length == 0)
                throw new ArgumentException("At least one target class is needed.", nameof(classes));
            _classes = (int[])classes.Clone();
            _broadcast = broadcast;
            _ = pointing; // normalised exp(score) at one entry is exactly 1: see Pointing()
        }

        internal override Tensor Build(Tensor output)
        {
            CheckOutput(output);
            long batch = output.shape[0], classes = output.shape[1];
            if (!_broadcast && _classes.Length != batch)
                throw new ArgumentException(
                    $"{_classes.Length} target classes were given for a batch of {batch}; give one per sample, or use SaliencyTarget.Class for all.");
            foreach (var c in _classes)
                if (c < 0 || c >= classes)
                    throw new ArgumentOutOfRangeException("target", c, $"Target class {c} is out of range: the model has {classes} classes (0..{classes - 1}).");
            // Built on the host from an array: no temporary Scalars (see Rules.Scalars).
            var values = new float[batch * classes];
            for (long b = 0; b < batch; b++)
                values[b * classes + (_broadcast ? _classes[0] : _classes[b])] = 1f;
            return torch.tensor(values, new[] { batch, classes }, dtype: output.dtype, device: output.device);
        }
    }

    private sealed class RankedTarget : SaliencyTarget
    {
        private readonly int _rank;
        public RankedTarget(int rank) => _rank = rank;

        internal override Tensor Build(Tensor output)
        {
            CheckOutput(output);
            if (_rank >= output.shape[1])
                throw new ArgumentOutOfRangeException("target", _rank, $"Rank {_rank} is out of range: the model has {output.shape[1]} classes.");
            using var scope = torch.NewDisposeScope();
            var order = Ranking.Descending(output);
            var index = order.narrow(1, _rank, 1);
            return torch.zeros_like(output).scatter_(1, index, torch.ones_like(index, dtype: output.dtype)).MoveToOuterDisposeScope();
        }
    }

    private sealed class SeedTarget : SaliencyTarget
    {
        private readonly Tensor _seed;
        public SeedTarget(Tensor seed) => _seed = seed ?? throw new ArgumentNullException(nameof(seed));

        internal override Tensor Build(Tensor output)
        {
            if (_seed.IsInvalid)
                throw new ObjectDisposedException("seed",
                    "The tensor given to SaliencyTarget.Seed has been disposed; keep it alive until the call returns.");
            if (!_seed.shape.SequenceEqual(output.shape))
                throw new ArgumentException(
                    $"The seed has shape [{string.Join(", ", _seed.shape)}] but the model output has [{string.Join(", ", output.shape)}]; they must match.");
            var seed = _seed.detach().to(output.dtype, output.device);
            if (!seed.isfinite().all().item<bool>())
                throw new ArgumentException("The seed contains NaN or infinity.");
            return seed;
        }
    }
}
