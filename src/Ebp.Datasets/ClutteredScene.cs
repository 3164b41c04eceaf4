namespace Ebp.Datasets;

/// <summary>
/// Settings of <see cref="ClutteredMnistGenerator"/>. The defaults give 80x80 scenes with 2–3 digits of
/// different classes, each resized to 20–36 px (from 28), not overlapping, 4–8 clutter fragments and
/// light noise.
/// </summary>
public sealed record ClutteredMnistOptions
{
    /// <summary>Width and height of the square canvas in pixels.</summary>
    public int CanvasSize { get; init; } = 80;

    /// <summary>Fewest digits in a scene (all of different classes).</summary>
    public int DigitsMin { get; init; } = 2;

    /// <summary>Most digits in a scene (at most 10: the classes must differ).</summary>
    public int DigitsMax { get; init; } = 3;

    /// <summary>Smallest side, in pixels, a 28x28 digit image is resized to (bilinear).</summary>
    public int ScaleMin { get; init; } = 20;

    /// <summary>Largest side, in pixels, a 28x28 digit image is resized to (bilinear).</summary>
    public int ScaleMax { get; init; } = 36;

    /// <summary>When true, digit boxes keep at least <see cref="Margin"/> empty pixels between each other.</summary>
    public bool NoOverlap { get; init; } = true;

    /// <summary>
    /// Minimum gap in pixels between two digit boxes (with <see cref="NoOverlap"/>) and between a digit box
    /// and a clutter fragment (always).
    /// </summary>
    public int Margin { get; init; } = 2;

    /// <summary>Fewest clutter fragments pasted (fewer may land if no free place is found).</summary>
    public int ClutterFragmentsMin { get; init; } = 4;

    /// <summary>Most clutter fragments pasted.</summary>
    public int ClutterFragmentsMax { get; init; } = 8;

    /// <summary>Smallest side of a square clutter crop, taken at the source's 28x28 scale.</summary>
    public int FragmentSizeMin { get; init; } = 8;

    /// <summary>Largest side of a square clutter crop.</summary>
    public int FragmentSizeMax { get; init; } = 12;

    /// <summary>
    /// Standard deviation of the additive noise, in [0,1] intensity units (0 disables it). The noise is
    /// a sum of 4 independent uniform integers (Irwin–Hall, close to Gaussian, bounded by
    /// <see cref="ClutteredMnistGenerator.NoiseBound"/>); the result is clamped to [0,1].
    /// </summary>
    public double NoiseStd { get; init; } = 0.05;

    /// <summary>Random positions tried for one digit or one fragment before giving up on it.</summary>
    public int MaxPlacementAttempts { get; init; } = 100;

    /// <summary>Whole layouts (digit count, classes, sizes, positions) tried before a scene is declared impossible.</summary>
    public int MaxLayoutAttempts { get; init; } = 50;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent setting.</summary>
    public void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException($"Invalid {nameof(ClutteredMnistOptions)}: {message}");
        }

        Check(CanvasSize >= 8 && CanvasSize <= 4096, $"CanvasSize must be in 8..4096, got {CanvasSize}.");
        Check(DigitsMin >= 1 && DigitsMin <= DigitsMax, $"need 1 <= DigitsMin <= DigitsMax, got {DigitsMin}..{DigitsMax}.");
        Check(DigitsMax <= MnistSet.ClassCount, $"DigitsMax must be at most {MnistSet.ClassCount} (classes differ), got {DigitsMax}.");
        Check(ScaleMin >= 4 && ScaleMin <= ScaleMax, $"need 4 <= ScaleMin <= ScaleMax, got {ScaleMin}..{ScaleMax}.");
        Check(ScaleMax <= CanvasSize, $"ScaleMax ({ScaleMax}) must not exceed CanvasSize ({CanvasSize}).");
        Check(Margin >= 0, $"Margin must be >= 0, got {Margin}.");
        Check(ClutterFragmentsMin >= 0 && ClutterFragmentsMin <= ClutterFragmentsMax,
            $"need 0 <= ClutterFragmentsMin <= ClutterFragmentsMax, got {ClutterFragmentsMin}..{ClutterFragmentsMax}.");
        Check(FragmentSizeMin >= 1 && FragmentSizeMin <= FragmentSizeMax,
            $"need 1 <= FragmentSizeMin <= FragmentSizeMax, got {FragmentSizeMin}..{FragmentSizeMax}.");
        Check(FragmentSizeMax <= CanvasSize, $"FragmentSizeMax ({FragmentSizeMax}) must not exceed CanvasSize ({CanvasSize}).");
        Check(double.IsFinite(NoiseStd) && NoiseStd >= 0 && NoiseStd <= 1, $"NoiseStd must be in [0,1], got {NoiseStd}.");
        Check(MaxPlacementAttempts >= 1, $"MaxPlacementAttempts must be >= 1, got {MaxPlacementAttempts}.");
        Check(MaxLayoutAttempts >= 1, $"MaxLayoutAttempts must be >= 1, got {MaxLayoutAttempts}.");
    }
}

/// <summary>One digit placed in a <see cref="ClutteredScene"/>.</summary>
/// <param name="ClassId">The digit's class 0..9.</param>
/// <param name="Box">
/// Tight box of the digit's resized ink (every pixel with ink &gt; 0) in canvas coordinates; X,Y inclusive,
/// Right/Bottom exclusive (see <see cref="BoundingBox"/>).
/// </param>
/// <param name="InkMask">
/// Width*Height flags over the whole canvas, row-major: true where this digit's resized ink is &gt; 0.5
/// (before noise). Only pixels inside <paramref name="Box"/> can be true. Treat as read-only.
/// </param>
/// <param name="SourceIndex">Index of the digit image in the source <see cref="MnistSet"/>.</param>
/// <param name="Size">Side in pixels the 28x28 source image was resized to.</param>
public sealed record SceneDigit(int ClassId, BoundingBox Box, bool[] InkMask, int SourceIndex, int Size)
{
    /// <summary>Number of true pixels of <see cref="InkMask"/>.</summary>
    public int InkPixelCount => InkMask.Count(static b => b);
}

/// <summary>A clutter fragment: a crop of a digit of a class absent from the scene.</summary>
/// <param name="ClassId">Class of the digit it was cut from (never a class of the scene's digits).</param>
/// <param name="SourceIndex">Index of that digit in the source <see cref="MnistSet"/>.</param>
/// <param name="SourceCrop">The crop in the 28x28 source image.</param>
/// <param name="CanvasBox">Where it was pasted (max-blended) on the canvas; never within Margin of a digit box.</param>
public sealed record ClutterFragment(int ClassId, int SourceIndex, BoundingBox SourceCrop, BoundingBox CanvasBox);

/// <summary>
/// One generated cluttered-MNIST scene: a single-channel image with values in [0,1], the digits in it
/// (all of different classes) with boxes and ink masks, the clutter, and the multi-hot label vector.
/// </summary>
public sealed class ClutteredScene
{
    internal ClutteredScene(
        MnistSplit sourceSplit, ulong seed, long index, int size, float[] pixels,
        IReadOnlyList<SceneDigit> digits, IReadOnlyList<ClutterFragment> clutter)
    {
        SourceSplit = sourceSplit;
        Seed = seed;
        Index = index;
        Width = size;
        Height = size;
        Pixels = pixels;
        Digits = digits;
        Clutter = clutter;
        MultiHot = new float[MnistSet.ClassCount];
        foreach (SceneDigit d in digits) MultiHot[d.ClassId] = 1f;
    }

    /// <summary>The MNIST split every digit and fragment was taken from.</summary>
    public MnistSplit SourceSplit { get; }

    /// <summary>The seed the scene was generated with.</summary>
    public ulong Seed { get; }

    /// <summary>The scene's index: (Seed, Index) alone determine the scene for a given source and options.</summary>
    public long Index { get; }

    /// <summary>Canvas width in pixels.</summary>
    public int Width { get; }

    /// <summary>Canvas height in pixels.</summary>
    public int Height { get; }

    /// <summary>Height*Width intensities in [0,1], row-major, one channel. Treat as read-only.</summary>
    public float[] Pixels { get; }

    /// <summary>The digits, all of distinct classes, in placement order.</summary>
    public IReadOnlyList<SceneDigit> Digits { get; }

    /// <summary>The clutter fragments that were pasted.</summary>
    public IReadOnlyList<ClutterFragment> Clutter { get; }

    /// <summary>10 entries, 1 for each class present among <see cref="Digits"/>, else 0. Treat as read-only.</summary>
    public float[] MultiHot { get; }

    /// <summary>The pixel at column <paramref name="x"/>, row <paramref name="y"/>.</summary>
    public float PixelAt(int x, int y) => Pixels[y * Width + x];

    /// <summary>True when a digit of class <paramref name="classId"/> is in the scene.</summary>
    public bool ContainsClass(int classId) => Digits.Any(d => d.ClassId == classId);

    /// <summary>The digit of class <paramref name="classId"/>, or null.</summary>
    public SceneDigit? DigitOfClass(int classId) => Digits.FirstOrDefault(d => d.ClassId == classId);
}
