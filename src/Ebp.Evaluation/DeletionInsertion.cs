using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Evaluation;

/// <summary>
/// Whether a saliency map reflects what the model uses: the deletion and insertion curves of RISE (Petsiuk et al.,
/// BMVC 2018). Pixels are taken in saliency order (all channels of a pixel together) in k steps; after each step the
/// class score of the perturbed image is recorded, and the area under each curve (trapezoid over the fractions 0 … 1)
/// summarises it.
/// </summary>
/// <remarks>
/// The 2(k + 1) perturbed images are built as masks of the pixel ranks and scored in batches of at most
/// <see cref="DeletionInsertionOptions.MaxBatch"/> (one forward pass for k = 16 by default), without gradients. The
/// model, its mode, the input and the map are left as they were; every tensor made here is disposed before returning.
/// </remarks>
public static class DeletionInsertion
{
    /// <summary>The curves of <paramref name="map"/> for class <paramref name="classIndex"/> of <paramref name="input"/>.</summary>
    /// <param name="model">A classifier in eval mode whose output is <c>[B, classes]</c> (logits for the softmax and sigmoid scores).</param>
    /// <param name="input">One image as the model takes it, <c>[1, C, H, W]</c> (normalised as the model expects).</param>
    /// <param name="map">The saliency map, <c>[h, w]</c>, <c>[1, h, w]</c> or <c>[1, 1, h, w]</c>, any size: it is resized
    /// bilinearly (half-pixel centres, <see cref="MapPostProcessing.Resize"/>) to H × W.</param>
    /// <param name="classIndex">The class (0-based).</param>
    /// <param name="options">Steps, baselines, score; default <see cref="DeletionInsertionOptions"/>.</param>
    /// <exception cref="ArgumentException">A badly shaped input or map, a map or input with NaN or ∞, a class outside the
    /// model's outputs, or options out of range.</exception>
    /// <exception cref="InvalidOperationException">The model is in training mode, or it gave a non-finite score.</exception>
    public static DeletionInsertionResult Measure(nn.Module<Tensor, Tensor> model, Tensor input, Tensor map, int classIndex,
                                                  DeletionInsertionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(map);
        var o = options ?? new DeletionInsertionOptions();
        o.Validate();
        if (model.training)
            throw new InvalidOperationException("The model is in training mode: dropout and batch statistics would make the curves random. Call model.eval() first.");
        if (input.dim() != 4 || input.shape[0] != 1)
            throw new ArgumentException($"The input must be one image [1, C, H, W]; got [{string.Join(", ", input.shape)}]. Take one image with input[i..(i+1)] or add the batch dimension with unsqueeze(0).", nameof(input));
        if (!input.is_floating_point())
            throw new ArgumentException($"The input must be a floating-point tensor (as the model takes it); got {input.dtype}.", nameof(input));
        ArgumentOutOfRangeException.ThrowIfNegative(classIndex);
        int h = checked((int)input.shape[2]), w = checked((int)input.shape[3]);
        int pixels = checked(h * w);
        if (o.Steps > pixels)
            throw new ArgumentOutOfRangeException(nameof(options), o.Steps, $"Steps ({o.Steps}) must be at most the number of pixels of the {w}×{h} input ({pixels}).");

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        // detach(): new handles, so that nothing disposed here is the caller's tensor even when a conversion is a no-op.
        var x = input.detach();
        if (!x.isfinite().all().item<bool>())
            throw new ArgumentException($"The input has {(x.numel() - x.isfinite().sum().item<long>())} values that are NaN or ∞; the model's scores of it would be meaningless.", nameof(input));
        var saliency = ResizedMap(map.detach(), h, w);
        var order = PixelOrder(saliency);

        var rank = new long[pixels];
        for (int r = 0; r < pixels; r++) rank[order[r]] = r;
        var ranks = torch.tensor(rank, new long[] { 1, 1, h, w }, device: x.device);
        var counts = new long[o.Steps + 1];
        var fractions = new double[o.Steps + 1];
        for (int i = 0; i <= o.Steps; i++)
        {
            counts[i] = (long)i * pixels / o.Steps;
            fractions[i] = (double)counts[i] / pixels;
        }
        var deletionBase = Baseline(x, o.DeletionBaseline, o.BlurSigma);
        var insertionBase = Baseline(x, o.InsertionBaseline, o.BlurSigma);

        // Row j < k + 1: deletion after step j; row k + 1 + j: insertion after step j.
        int rows = 2 * (o.Steps + 1);
        var scores = new double[rows];
        for (int start = 0; start < rows; start += o.MaxBatch)
        {
            using var batchScope = torch.NewDisposeScope();
            int end = Math.Min(rows, start + o.MaxBatch);
            var parts = new List<Tensor>(end - start);
            for (int j = start; j < end; j++)
            {
                bool deletion = j <= o.Steps;
                long count = counts[deletion ? j : j - o.Steps - 1];
                var changed = ranks < count;                      // [1, 1, H, W], broadcast over the channels
                parts.Add(deletion ? torch.where(changed, deletionBase, x) : torch.where(changed, x, insertionBase));
            }
            var output = model.call(torch.cat(parts, 0));
            if (output.dim() != 2 || output.shape[0] != end - start)
                throw new ArgumentException($"The model must output [B, classes]; for a batch of {end - start} it gave [{string.Join(", ", output.shape)}].", nameof(model));
            if (classIndex >= output.shape[1])
                throw new ArgumentOutOfRangeException(nameof(classIndex), classIndex, $"The model has {output.shape[1]} classes (0..{output.shape[1] - 1}).");
            var score = (o.Score switch
            {
                FaithfulnessScore.Softmax => torch.softmax(output.to(ScalarType.Float64), 1),
                FaithfulnessScore.Sigmoid => torch.sigmoid(output.to(ScalarType.Float64)),
                _ => output.to(ScalarType.Float64),
            })[.., classIndex].cpu();
            score.data<double>().CopyTo(scores.AsSpan(start, end - start));
        }
        foreach (var s in scores)
            if (!double.IsFinite(s))
                throw new InvalidOperationException($"The model gave a non-finite {o.Score} score ({s}) for class {classIndex} of a perturbed image.");

        return new DeletionInsertionResult(
            classIndex,
            new FaithfulnessCurve(fractions, scores[..(o.Steps + 1)]),
            new FaithfulnessCurve(fractions.ToArray(), scores[(o.Steps + 1)..]));
    }

    /// <summary>As <see cref="Measure(nn.Module{Tensor, Tensor}, Tensor, Tensor, int, DeletionInsertionOptions?)"/> with a row-major <paramref name="mapWidth"/> × <paramref name="mapHeight"/> map.</summary>
    public static DeletionInsertionResult Measure(nn.Module<Tensor, Tensor> model, Tensor input, ReadOnlySpan<float> map, int mapWidth, int mapHeight,
                                                  int classIndex, DeletionInsertionOptions? options = null)
    {
        if (mapWidth < 1 || mapHeight < 1 || (long)mapWidth * mapHeight != map.Length)
            throw new ArgumentException($"A {mapWidth}×{mapHeight} map needs {(long)Math.Max(mapWidth, 0) * Math.Max(mapHeight, 0)} values; got {map.Length}.", nameof(map));
        using var t = torch.tensor(map.ToArray(), new long[] { mapHeight, mapWidth });
        return Measure(model, input, t, classIndex, options);
    }

    /// <summary>
    /// The order in which pixels are deleted or inserted: by descending saliency, equal values by ascending index
    /// (row-major), so that the order is the same on every run and platform.
    /// </summary>
    /// <exception cref="ArgumentException">A value is NaN or ∞.</exception>
    public static int[] PixelOrder(ReadOnlySpan<float> saliency)
    {
        var values = saliency.ToArray();
        int bad = values.Count(v => !float.IsFinite(v));
        if (bad > 0)
            throw new ArgumentException($"The saliency map has {bad} values that are NaN or ∞, which have no place in a pixel order; fix the map (e.g. nan_to_num) before measuring.", nameof(saliency));
        var order = new int[values.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        Array.Sort(order, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        return order;
    }

    private static float[] ResizedMap(Tensor map, int h, int w)
    {
        var shape = map.shape;
        bool ok = shape.Length is >= 2 and <= 4 && shape.SkipLast(2).All(d => d == 1) && shape[^1] > 0 && shape[^2] > 0;
        if (!ok)
            throw new ArgumentException($"The saliency map must be one 2-D map [h, w], [1, h, w] or [1, 1, h, w]; got [{string.Join(", ", shape)}].", nameof(map));
        var m = map.to(ScalarType.Float32).cpu().reshape(1, 1, shape[^2], shape[^1]);
        long bad = m.numel() - m.isfinite().sum().item<long>();
        if (bad > 0)
            throw new ArgumentException($"The saliency map has {bad} values that are NaN or ∞; fix the map (e.g. nan_to_num) before measuring.", nameof(map));
        return MapPostProcessing.Resize(m, new long[] { h, w }, ResizeMode.Bilinear).contiguous().data<float>().ToArray();
    }

    private static Tensor Baseline(Tensor x, PerturbationBaseline baseline, double blurSigma) => baseline switch
    {
        PerturbationBaseline.Zero => torch.zeros_like(x),
        PerturbationBaseline.Mean => x.mean(new long[] { 2, 3 }, keepdim: true).expand_as(x),
        _ => MapPostProcessing.Smooth(x, blurSigma),
    };
}
