using Ebp.MLNet.Internal;
using Microsoft.ML.Data;

namespace Ebp.MLNet;

/// <summary>The model input a fitted saliency stage feeds its network for an image.</summary>
public static class SaliencyInputs
{
    /// <summary>
    /// The planar <c>[Channels, ImageHeight, ImageWidth]</c> floats the stage computes from <paramref name="image"/>
    /// before its forward pass: resized to the stage's image size as the stage resizes, grey models fed the BT.601 luma,
    /// then <c>(byte · Scale − Mean[c]) / Std[c]</c>. Running the network on them gives the stage's scores, so measures
    /// that perturb the input (e.g. deletion curves) see what the maps explained.
    /// </summary>
    /// <exception cref="ArgumentException">The image cannot be read (an unsupported pixel format or too few pixels).</exception>
    public static float[] ModelInput(this SaliencyTransformer transformer, MLImage image)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        ArgumentNullException.ThrowIfNull(image);
        var config = transformer.Config;
        if (ImageIntegrity.Problem(image) is { } problem) throw new ArgumentException($"The image {problem}.", nameof(image));
        var planar = new float[config.PixelCount];
        try
        {
            Pixels.FromImage(image, config, planar, display: null);
        }
        catch (InvalidDataException e)
        {
            throw new ArgumentException($"The image cannot be converted to the model's input: {e.Message}", nameof(image), e);
        }
        return planar;
    }
}
