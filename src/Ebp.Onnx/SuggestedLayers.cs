namespace Ebp.Onnx;

/// <summary>
/// Layer names as TorchRay's benchmark chooses them: the saliency layer is the output of the pooling
/// (or stage) before the last convolution stage (VGG16: <c>features.23</c>; ResNet: <c>layer3</c>), the
/// contrast layer is the input of the last classifier layer (VGG16: <c>classifier.4</c>; ResNet: <c>avgpool</c>),
/// the classifier layer is the last Gemm/MatMul/Conv.
/// </summary>
/// <param name="SaliencyLayer">Module whose output receives the map; <c>""</c> means the model input.</param>
/// <param name="ContrastLayer">Module at whose output contrastive EBP subtracts the contrast; null if the classifier reads the input.</param>
/// <param name="ClassifierLayer">The last Linear or convolution module.</param>
public sealed record SuggestedLayers(string SaliencyLayer, string? ContrastLayer, string? ClassifierLayer);
