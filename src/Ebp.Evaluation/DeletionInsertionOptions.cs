namespace Ebp.Evaluation;

/// <summary>What a pixel shows while it is deleted (deletion curve) or not yet inserted (insertion curve).</summary>
public enum PerturbationBaseline
{
    /// <summary>The value 0 of the input tensor (for a normalised input: the dataset mean). RISE's deletion baseline.</summary>
    Zero,

    /// <summary>The image blurred with a Gaussian (<see cref="DeletionInsertionOptions.BlurSigma"/>). RISE's insertion baseline.</summary>
    Blur,

    /// <summary>The image's own mean value, per channel.</summary>
    Mean,
}

/// <summary>The class score recorded along the curves.</summary>
public enum FaithfulnessScore
{
    /// <summary>The softmax probability of the class over the model's outputs (RISE). In [0, 1].</summary>
    Softmax,

    /// <summary>The sigmoid of the class's output: the probability of a multi-label model. In [0, 1].</summary>
    Sigmoid,

    /// <summary>The class's raw output. Unbounded, so its areas are not comparable across models.</summary>
    Logit,
}

/// <summary>Settings of <see cref="DeletionInsertion.Measure(TorchSharp.torch.nn.Module{TorchSharp.torch.Tensor, TorchSharp.torch.Tensor}, TorchSharp.torch.Tensor, TorchSharp.torch.Tensor, int, DeletionInsertionOptions?)"/>.</summary>
public sealed record DeletionInsertionOptions
{
    /// <summary>RISE's blur: σ = 5 px on a 224-px image, here as a fraction of the image's larger side.</summary>
    public const double RiseBlurSigma = 5.0 / 224;

    /// <summary>
    /// Steps k of each curve: after step i, the first ⌊i·N/k⌋ of the N pixels in saliency order are deleted (or
    /// inserted), so a curve has k + 1 points at fractions 0 … 1. Default 16; at least 1 and at most N.
    /// </summary>
    public int Steps { get; init; } = 16;

    /// <summary>What deleted pixels show. Default <see cref="PerturbationBaseline.Zero"/>, as RISE.</summary>
    public PerturbationBaseline DeletionBaseline { get; init; } = PerturbationBaseline.Zero;

    /// <summary>What pixels show before they are inserted. Default <see cref="PerturbationBaseline.Blur"/>, as RISE.</summary>
    public PerturbationBaseline InsertionBaseline { get; init; } = PerturbationBaseline.Blur;

    /// <summary>The score recorded. Default <see cref="FaithfulnessScore.Softmax"/>, as RISE.</summary>
    public FaithfulnessScore Score { get; init; } = FaithfulnessScore.Softmax;

    /// <summary>
    /// σ of <see cref="PerturbationBaseline.Blur"/> as a fraction of the image's larger side (see
    /// <see cref="MapPostProcessing.Smooth"/>). Default <see cref="RiseBlurSigma"/>.
    /// </summary>
    public double BlurSigma { get; init; } = RiseBlurSigma;

    /// <summary>
    /// Perturbed images per forward pass. Both curves together need 2(k + 1) images; the default 64 runs k = 16 in one
    /// batch. Lower it to bound memory for large inputs; the scores do not depend on it beyond rounding.
    /// </summary>
    public int MaxBatch { get; init; } = 64;

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The first setting out of range, with what to give instead.</exception>
    public void Validate()
    {
        if (Steps < 1)
            throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "Steps must be at least 1 (the curves have Steps + 1 points; RISE-style curves use 16 or more).");
        if (MaxBatch < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxBatch), MaxBatch, "MaxBatch must be at least 1 (perturbed images per forward pass).");
        if (!double.IsFinite(BlurSigma) || BlurSigma < 0 || BlurSigma > MapPostProcessing.MaxSigmaFraction)
            throw new ArgumentOutOfRangeException(nameof(BlurSigma), BlurSigma,
                $"BlurSigma must be a finite fraction of the image's larger side in [0, {MapPostProcessing.MaxSigmaFraction}] (RISE: {RiseBlurSigma:G4}).");
        if (!Enum.IsDefined(DeletionBaseline)) throw new ArgumentOutOfRangeException(nameof(DeletionBaseline), DeletionBaseline, "Unknown baseline.");
        if (!Enum.IsDefined(InsertionBaseline)) throw new ArgumentOutOfRangeException(nameof(InsertionBaseline), InsertionBaseline, "Unknown baseline.");
        if (!Enum.IsDefined(Score)) throw new ArgumentOutOfRangeException(nameof(Score), Score, "Unknown score.");
    }
}
