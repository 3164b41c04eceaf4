namespace Ebp.Weights;

/// <summary>A weight-file format recognised by <see cref="WeightLoader.DetectFormat"/> (from the file's bytes, not its extension).</summary>
public enum WeightFileFormat
{
    /// <summary>safetensors: 8-byte little-endian header length, then a JSON header starting with <c>{</c>.</summary>
    Safetensors,

    /// <summary>PyTorch <c>torch.save</c> zip archive (<c>.pt</c>/<c>.pth</c>, starts with <c>PK\x03\x04</c>).</summary>
    PyTorchZip,

    /// <summary>Legacy (pre-1.6) PyTorch pickle file (starts with pickle protocol byte <c>0x80</c> and the torch magic number); not supported.</summary>
    PyTorchLegacy,

    /// <summary>TorchSharp's own <c>module.save</c> format (anything else).</summary>
    TorchSharp,
}
