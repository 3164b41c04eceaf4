namespace Ebp.MLNet;

/// <summary>Which class the backward pass of each row starts from.</summary>
public enum SaliencyTargetKind
{
    /// <summary>The model's top-1 prediction for the row (the default).</summary>
    Predicted,

    /// <summary>One fixed class for every row: <see cref="SaliencyEstimator.Options.TargetClass"/>.</summary>
    FixedClass,

    /// <summary>
    /// The class in the column <see cref="SaliencyEstimator.Options.LabelColumnName"/>: a key column (1-based, 0 = missing)
    /// or an integer column (0-based, negative = missing).
    /// </summary>
    LabelColumn,
}

/// <summary>The order of the three colour planes the model expects.</summary>
public enum ChannelOrder
{
    /// <summary>Red, green, blue (torchvision models; ML.NET's <c>ExtractPixels</c> default).</summary>
    Rgb,

    /// <summary>Blue, green, red (Caffe-converted models).</summary>
    Bgr,
}

/// <summary>The resolution of the saliency column.</summary>
public enum MapResolution
{
    /// <summary>Resized to the model input (<c>ImageHeight × ImageWidth</c>). The default.</summary>
    Input,

    /// <summary>
    /// The saliency layer's own resolution (e.g. 28×28 for VGG16's <c>features.16</c> on 224×224). <c>Fit</c> runs the
    /// model once on a constant image to learn the size.
    /// </summary>
    Native,
}

/// <summary>What happens to a row whose image cannot be read, contains NaN/∞, or has a missing or invalid label.</summary>
public enum InvalidRowHandling
{
    /// <summary>
    /// Throw an <see cref="InvalidOperationException"/> naming the row and the cause (with the original exception as
    /// <see cref="Exception.InnerException"/>) from the cursor's <c>MoveNext</c> or the prediction. The default.
    /// </summary>
    Throw,

    /// <summary>
    /// Keep the row but give it empty outputs: an all-zero saliency map and scores (never NaN or ∞), predicted label
    /// (and top-k classes) −1, an overlay of <c>null</c>, and the reason in the error column
    /// (<see cref="SaliencyEstimator.Options.ErrorColumnName"/>, <c>""</c> for computed rows). The other rows of the batch
    /// are computed as usual. (An ML.NET transform cannot drop rows; filter on <c>PredictedLabel &gt;= 0</c> or an empty
    /// error afterwards if needed.)
    /// </summary>
    Skip,
}

/// <summary>The type of the predicted-label column.</summary>
public enum PredictedLabelFormat
{
    /// <summary><see cref="Key"/> when class names are known (option or model card), else <see cref="Index"/>. The default.</summary>
    Auto,

    /// <summary><see cref="int"/>: the 0-based model class index, −1 for a skipped row.</summary>
    Index,

    /// <summary>
    /// An ML.NET key (<c>UInt32</c>, class + 1; 0 = missing for a skipped row) whose <c>KeyValues</c> are the class names
    /// (or "0", "1", … without names), so <c>MapKeyToValue</c> gives the class name.
    /// </summary>
    Key,
}
