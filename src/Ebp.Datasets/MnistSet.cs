namespace Ebp.Datasets;

/// <summary>Which official MNIST split a set of digits came from.</summary>
public enum MnistSplit
{
    /// <summary>The 60,000-image training split (train-*-ubyte files).</summary>
    Train,

    /// <summary>The 10,000-image test split (t10k-*-ubyte files).</summary>
    Test,
}

/// <summary>One digit of an <see cref="MnistSet"/>: a view of its pixels (row-major, 0..255) and its label.</summary>
/// <param name="Index">Position of the digit in its set.</param>
/// <param name="Pixels">Rows*Cols bytes, row-major, 0 = background, 255 = full ink. A view into the set, not a copy.</param>
/// <param name="Rows">Image height.</param>
/// <param name="Cols">Image width.</param>
/// <param name="Label">Digit class 0..9.</param>
public readonly record struct MnistDigit(int Index, ReadOnlyMemory<byte> Pixels, int Rows, int Cols, int Label)
{
    /// <summary>The pixel at row <paramref name="y"/>, column <paramref name="x"/>.</summary>
    public byte this[int y, int x] => Pixels.Span[y * Cols + x];
}

/// <summary>
/// A set of MNIST-style images with labels, held in memory: <see cref="Count"/> images of
/// <see cref="Rows"/> x <see cref="Cols"/> bytes each (row-major, image after image) and one label
/// (0..9) per image. <see cref="Split"/> records which official split the data came from, so code that
/// must keep train and test apart (e.g. <see cref="ClutteredMnistGenerator"/>) can check it.
/// </summary>
public sealed class MnistSet
{
    /// <summary>Number of classes of MNIST (digits 0..9).</summary>
    public const int ClassCount = 10;

    private readonly byte[] _pixels;
    private readonly byte[] _labels;

    /// <summary>Builds a set from raw arrays (not copied: do not change them afterwards).</summary>
    /// <exception cref="ArgumentException">Sizes disagree or a label is outside 0..9.</exception>
    public MnistSet(MnistSplit split, int rows, int cols, byte[] pixels, byte[] labels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if (!Enum.IsDefined(split)) throw new ArgumentOutOfRangeException(nameof(split));
        if (rows <= 0 || cols <= 0) throw new ArgumentException($"Image size must be positive, got {rows}x{cols}.");
        if ((long)labels.Length * rows * cols != pixels.Length)
            throw new ArgumentException(
                $"{labels.Length} labels need {(long)labels.Length * rows * cols} pixel bytes for {rows}x{cols} images, got {pixels.Length}.");
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= ClassCount)
                throw new ArgumentException($"Label {labels[i]} at index {i} is not a digit 0..9.", nameof(labels));
        }

        Split = split;
        Rows = rows;
        Cols = cols;
        _pixels = pixels;
        _labels = labels;
    }

    /// <summary>The official split the images came from.</summary>
    public MnistSplit Split { get; }

    /// <summary>Number of images.</summary>
    public int Count => _labels.Length;

    /// <summary>Image height in pixels (28 for MNIST).</summary>
    public int Rows { get; }

    /// <summary>Image width in pixels (28 for MNIST).</summary>
    public int Cols { get; }

    /// <summary>All pixels, Count*Rows*Cols bytes, image after image, row-major. Treat as read-only.</summary>
    public byte[] Pixels => _pixels;

    /// <summary>All labels, one byte 0..9 per image. Treat as read-only.</summary>
    public byte[] Labels => _labels;

    /// <summary>The image and label at <paramref name="index"/>.</summary>
    public MnistDigit this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count)
                throw new ArgumentOutOfRangeException(nameof(index), index, $"The set has {Count} images.");
            int size = Rows * Cols;
            return new MnistDigit(index, new ReadOnlyMemory<byte>(_pixels, index * size, size), Rows, Cols, _labels[index]);
        }
    }

    /// <summary>A new set with the first <paramref name="count"/> images (copied), same split.</summary>
    public MnistSet Take(int count)
    {
        if (count < 0 || count > Count) throw new ArgumentOutOfRangeException(nameof(count), count, $"The set has {Count} images.");
        int size = Rows * Cols;
        return new MnistSet(Split, Rows, Cols, _pixels.AsSpan(0, count * size).ToArray(), _labels.AsSpan(0, count).ToArray());
    }

    /// <summary>How many images each class 0..9 has.</summary>
    public int[] ClassCounts()
    {
        var counts = new int[ClassCount];
        foreach (byte label in _labels) counts[label]++;
        return counts;
    }
}
