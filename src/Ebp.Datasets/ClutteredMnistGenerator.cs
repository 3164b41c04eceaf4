namespace Ebp.Datasets;

/// <summary>
/// Generates cluttered-MNIST scenes: 2–3 digits of different classes (by default), resized and placed
/// without overlap on a canvas, plus crops of digits of other classes as clutter, plus noise.
/// <para>
/// Train/test separation is explicit: build with <see cref="ForTraining"/> from the train split or with
/// <see cref="ForTest"/> from the t10k split; each checks <see cref="MnistSet.Split"/> and every scene
/// takes its digits and clutter from that one set only.
/// </para>
/// <para>
/// Determinism: scene <c>i</c> of seed <c>s</c> depends only on (source, options, s, i): its random
/// stream is a <see cref="Xoshiro256StarStar"/> seeded with <see cref="SplitMix64.Derive"/>(s, i), so
/// shards generated separately reproduce the whole run. All image arithmetic (bilinear resize,
/// blending, noise) is done in integers on a fixed-point scale of 65280 (= 255*256) and each pixel is
/// converted to float by one correctly rounded division at the end, so the bytes of a scene are the
/// same on every machine and .NET version.
/// </para>
/// </summary>
public sealed class ClutteredMnistGenerator
{
    /// <summary>Fixed-point value of intensity 1.0: 255*256 (source bytes are multiplied by 256 exactly).</summary>
    internal const int One = 255 * 256;

    private const int CropInkThreshold = 128;
    private const int MaxCropAttempts = 8;

    private readonly MnistSet _source;
    private readonly int[][] _byClass;
    private readonly int[] _availableClasses;
    private readonly int _noiseHalfWidth;

    private ClutteredMnistGenerator(MnistSet source, ClutteredMnistOptions options)
    {
        options.Validate();
        if (options.FragmentSizeMax > Math.Min(source.Rows, source.Cols))
            throw new ArgumentException(
                $"FragmentSizeMax ({options.FragmentSizeMax}) exceeds the source image size {source.Rows}x{source.Cols}.");

        _source = source;
        Options = options;
        var lists = new List<int>[MnistSet.ClassCount];
        for (int c = 0; c < lists.Length; c++) lists[c] = [];
        for (int i = 0; i < source.Count; i++) lists[source.Labels[i]].Add(i);
        _byClass = lists.Select(l => l.ToArray()).ToArray();
        _availableClasses = Enumerable.Range(0, MnistSet.ClassCount).Where(c => _byClass[c].Length > 0).ToArray();
        if (_availableClasses.Length < options.DigitsMax)
        {
            throw new ArgumentException(
                $"The source set has digits of only {_availableClasses.Length} classes; DigitsMax = {options.DigitsMax} needs that many.");
        }

        // Sum of 4 uniform integers in [-h, h] has standard deviation ~ 2h/sqrt(3): h = std*sqrt(3)/2 (in fixed point).
        _noiseHalfWidth = (int)Math.Round(options.NoiseStd * Math.Sqrt(3.0) / 2.0 * One, MidpointRounding.AwayFromZero);
    }

    /// <summary>A generator of training scenes; <paramref name="trainSet"/> must be the MNIST train split.</summary>
    /// <exception cref="ArgumentException">The set is not from the train split, or the options are invalid.</exception>
    public static ClutteredMnistGenerator ForTraining(MnistSet trainSet, ClutteredMnistOptions? options = null) =>
        Create(trainSet, MnistSplit.Train, options);

    /// <summary>A generator of test scenes; <paramref name="testSet"/> must be the MNIST t10k split.</summary>
    /// <exception cref="ArgumentException">The set is not from the test split, or the options are invalid.</exception>
    public static ClutteredMnistGenerator ForTest(MnistSet testSet, ClutteredMnistOptions? options = null) =>
        Create(testSet, MnistSplit.Test, options);

    private static ClutteredMnistGenerator Create(MnistSet set, MnistSplit expected, ClutteredMnistOptions? options)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (set.Split != expected)
        {
            throw new ArgumentException(
                $"A {(expected == MnistSplit.Train ? "training" : "test")} generator needs the MNIST {expected} split, "
                + $"but this set is from the {set.Split} split.", nameof(set));
        }

        return new ClutteredMnistGenerator(set, options ?? new ClutteredMnistOptions());
    }

    /// <summary>The settings in use.</summary>
    public ClutteredMnistOptions Options { get; }

    /// <summary>The split all scenes are drawn from.</summary>
    public MnistSplit Split => _source.Split;

    /// <summary>Largest absolute value the noise can add to a pixel, in [0,1] units (0 without noise).</summary>
    public double NoiseBound => 4.0 * _noiseHalfWidth / One;

    /// <summary>Scenes <paramref name="firstIndex"/> .. firstIndex+count-1 of <paramref name="seed"/>.</summary>
    public IReadOnlyList<ClutteredScene> Generate(int count, ulong seed, long firstIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var scenes = new ClutteredScene[count];
        for (int i = 0; i < count; i++) scenes[i] = GenerateOne(seed, firstIndex + i);
        return scenes;
    }

    /// <summary>Scene <paramref name="index"/> of <paramref name="seed"/>; depends on nothing else (thread-safe).</summary>
    /// <exception cref="InvalidOperationException">No layout fitting the options was found (canvas too crowded).</exception>
    public ClutteredScene GenerateOne(ulong seed, long index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        var rng = new Xoshiro256StarStar(SplitMix64.Derive(seed, (ulong)index));
        ClutteredMnistOptions o = Options;
        int size = o.CanvasSize;

        List<Placed>? layout = null;
        for (int attempt = 0; attempt < o.MaxLayoutAttempts && layout is null; attempt++) layout = TryLayout(rng);
        if (layout is null)
        {
            throw new InvalidOperationException(
                $"No layout of {o.DigitsMin}..{o.DigitsMax} digits of {o.ScaleMin}..{o.ScaleMax} px with margin {o.Margin} fits a "
                + $"{size}x{size} canvas after {o.MaxLayoutAttempts} attempts (scene {index} of seed {seed}); use a larger canvas or smaller digits.");
        }

        var canvas = new int[size * size];
        var digits = new List<SceneDigit>(layout.Count);
        foreach (Placed p in layout)
        {
            var mask = new bool[size * size];
            for (int py = 0; py < p.PatchSize; py++)
            {
                int cy = p.OffsetY + py;
                if ((uint)cy >= (uint)size) continue;
                for (int px = 0; px < p.PatchSize; px++)
                {
                    int cx = p.OffsetX + px;
                    if ((uint)cx >= (uint)size) continue;
                    int v = p.Patch[py * p.PatchSize + px];
                    if (v == 0) continue;
                    int at = cy * size + cx;
                    if (v > canvas[at]) canvas[at] = v;
                    if (2 * v > One) mask[at] = true;
                }
            }

            digits.Add(new SceneDigit(p.ClassId, p.Box, mask, p.SourceIndex, p.PatchSize));
        }

        List<ClutterFragment> clutter = PasteClutter(rng, canvas, layout);
        AddNoise(rng, canvas);

        var pixels = new float[canvas.Length];
        for (int i = 0; i < canvas.Length; i++) pixels[i] = canvas[i] / (float)One;
        return new ClutteredScene(_source.Split, seed, index, size, pixels, digits, clutter);
    }

    private List<Placed>? TryLayout(Xoshiro256StarStar rng)
    {
        ClutteredMnistOptions o = Options;
        int size = o.CanvasSize;
        int k = rng.NextInt(o.DigitsMin, o.DigitsMax);

        // k distinct classes: partial Fisher–Yates over the classes the source has.
        int[] classes = (int[])_availableClasses.Clone();
        for (int j = 0; j < k; j++)
        {
            int r = j + rng.NextInt(classes.Length - j);
            (classes[j], classes[r]) = (classes[r], classes[j]);
        }

        var placed = new List<Placed>(k);
        for (int j = 0; j < k; j++)
        {
            int cls = classes[j];
            int[] pool = _byClass[cls];
            int sourceIndex = pool[rng.NextInt(pool.Length)];
            int side = rng.NextInt(o.ScaleMin, o.ScaleMax);
            int[] patch = ResizeBilinear(_source[sourceIndex], side, side);
            BoundingBox ink = InkBox(patch, side);
            if (ink.IsEmpty || ink.Width > size || ink.Height > size) return null;

            bool ok = false;
            BoundingBox box = default;
            for (int attempt = 0; attempt < o.MaxPlacementAttempts && !ok; attempt++)
            {
                box = new BoundingBox(rng.NextInt(0, size - ink.Width), rng.NextInt(0, size - ink.Height), ink.Width, ink.Height);
                ok = !o.NoOverlap || placed.TrueForAll(q => !q.Box.Inflate(o.Margin).Intersects(box));
            }

            if (!ok) return null;
            placed.Add(new Placed(cls, sourceIndex, side, patch, box.X - ink.X, box.Y - ink.Y, box));
        }

        return placed;
    }

    private List<ClutterFragment> PasteClutter(Xoshiro256StarStar rng, int[] canvas, List<Placed> layout)
    {
        ClutteredMnistOptions o = Options;
        int size = o.CanvasSize;
        var result = new List<ClutterFragment>();
        int n = rng.NextInt(o.ClutterFragmentsMin, o.ClutterFragmentsMax);
        int[] others = _availableClasses.Where(c => !layout.Exists(p => p.ClassId == c)).ToArray();
        if (n == 0 || others.Length == 0) return result;

        BoundingBox[] keepOut = layout.Select(p => p.Box.Inflate(o.Margin)).ToArray();
        int rows = _source.Rows, cols = _source.Cols;
        for (int f = 0; f < n; f++)
        {
            int cls = others[rng.NextInt(others.Length)];
            int[] pool = _byClass[cls];
            int sourceIndex = pool[rng.NextInt(pool.Length)];
            MnistDigit digit = _source[sourceIndex];
            int side = rng.NextInt(o.FragmentSizeMin, o.FragmentSizeMax);

            // A crop with some real stroke in it (bounded number of tries; the last one is kept).
            BoundingBox crop = default;
            for (int t = 0; t < MaxCropAttempts; t++)
            {
                crop = new BoundingBox(rng.NextInt(0, cols - side), rng.NextInt(0, rows - side), side, side);
                if (MaxIn(digit, crop) >= CropInkThreshold) break;
            }

            BoundingBox target = default;
            bool ok = false;
            for (int attempt = 0; attempt < o.MaxPlacementAttempts && !ok; attempt++)
            {
                target = new BoundingBox(rng.NextInt(0, size - side), rng.NextInt(0, size - side), side, side);
                ok = Array.TrueForAll(keepOut, b => !b.Intersects(target));
            }

            if (!ok) continue;
            ReadOnlySpan<byte> src = digit.Pixels.Span;
            for (int y = 0; y < side; y++)
            {
                for (int x = 0; x < side; x++)
                {
                    int v = src[(crop.Y + y) * cols + crop.X + x] * 256;
                    int at = (target.Y + y) * size + target.X + x;
                    if (v > canvas[at]) canvas[at] = v;
                }
            }

            result.Add(new ClutterFragment(cls, sourceIndex, crop, target));
        }

        return result;
    }

    private void AddNoise(Xoshiro256StarStar rng, int[] canvas)
    {
        int h = _noiseHalfWidth;
        if (h == 0) return;
        int span = 2 * h + 1;
        for (int i = 0; i < canvas.Length; i++)
        {
            int noise = rng.NextInt(span) + rng.NextInt(span) + rng.NextInt(span) + rng.NextInt(span) - 4 * h;
            canvas[i] = Math.Clamp(canvas[i] + noise, 0, One);
        }
    }

    private static int MaxIn(MnistDigit digit, BoundingBox crop)
    {
        ReadOnlySpan<byte> src = digit.Pixels.Span;
        int max = 0;
        for (int y = crop.Y; y < crop.Bottom; y++)
        {
            for (int x = crop.X; x < crop.Right; x++) max = Math.Max(max, src[y * digit.Cols + x]);
        }

        return max;
    }

    /// <summary>Tight box of the nonzero pixels of a square patch, in patch coordinates (empty if none).</summary>
    private static BoundingBox InkBox(int[] patch, int side)
    {
        int minX = side, minY = side, maxX = -1, maxY = -1;
        for (int y = 0; y < side; y++)
        {
            for (int x = 0; x < side; x++)
            {
                if (patch[y * side + x] == 0) continue;
                if (x < minX) minX = x;
                if (x > maxX) maxX = x;
                if (y < minY) minY = y;
                if (y > maxY) maxY = y;
            }
        }

        return maxX < 0 ? default : BoundingBox.FromEdges(minX, minY, maxX + 1, maxY + 1);
    }

    /// <summary>
    /// Bilinear resize (half-pixel centres, edge clamping; the convention of PyTorch's
    /// <c>interpolate(mode="bilinear", align_corners=False)</c>) computed exactly in integers. Output
    /// values are on the fixed-point scale 0..<see cref="One"/>, rounded half up.
    /// </summary>
    internal static int[] ResizeBilinear(MnistDigit digit, int outWidth, int outHeight)
    {
        ReadOnlySpan<byte> src = digit.Pixels.Span;
        int inW = digit.Cols, inH = digit.Rows;
        var x0 = new int[outWidth];
        var x1 = new int[outWidth];
        var wx = new long[outWidth];
        long denX = 2L * outWidth;
        for (int x = 0; x < outWidth; x++) Sample(x, inW, outWidth, out x0[x], out x1[x], out wx[x]);
        long denY = 2L * outHeight;
        long den = denX * denY;

        var result = new int[outWidth * outHeight];
        for (int y = 0; y < outHeight; y++)
        {
            Sample(y, inH, outHeight, out int y0, out int y1, out long wy);
            int row0 = y0 * inW, row1 = y1 * inW;
            for (int x = 0; x < outWidth; x++)
            {
                long top = (denX - wx[x]) * src[row0 + x0[x]] + wx[x] * src[row0 + x1[x]];
                long bottom = (denX - wx[x]) * src[row1 + x0[x]] + wx[x] * src[row1 + x1[x]];
                long sum = (denY - wy) * top + wy * bottom; // value*255-scale * den
                result[y * outWidth + x] = (int)((sum * 256 + den / 2) / den);
            }
        }

        return result;
    }

    /// <summary>
    /// Source position of output index <paramref name="o"/>: s = ((2o+1)*inSize - outSize) / (2*outSize), i.e.
    /// (o+0.5)*in/out - 0.5. Returns the two neighbours and the weight of the second, in units of 1/(2*outSize).
    /// </summary>
    private static void Sample(int o, int inSize, int outSize, out int i0, out int i1, out long w1)
    {
        long num = (2L * o + 1) * inSize - outSize;
        long den = 2L * outSize;
        if (num <= 0)
        {
            i0 = i1 = 0;
            w1 = 0;
            return;
        }

        i0 = (int)(num / den);
        w1 = num % den;
        if (i0 >= inSize - 1)
        {
            i0 = i1 = inSize - 1;
            w1 = 0;
            return;
        }

        i1 = i0 + 1;
    }

    private sealed record Placed(int ClassId, int SourceIndex, int PatchSize, int[] Patch, int OffsetX, int OffsetY, BoundingBox Box);
}
