using Ebp.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Internal;

/// <summary>
/// An ONNX model held as its file bytes: the <c>.onnx</c> file and the external data files it reads, by path relative
/// to the model's folder. Kept in memory from Fit on, so that the stage can build more instances and
/// <see cref="SaliencyModel"/> can save the model even if the original file changes or goes away.
/// </summary>
internal sealed record OnnxFiles(string ModelFileName, IReadOnlyDictionary<string, byte[]> Files)
{
    /// <summary>The relative names of the external data files (all files but the model).</summary>
    public IEnumerable<string> ExternalNames => Files.Keys.Where(k => k != ModelFileName);
}

/// <summary>Reads an ONNX model for the saliency stage and rebuilds its module from the kept bytes.</summary>
internal static class OnnxSource
{
    /// <summary>Imports <paramref name="path"/> once: its description (input size, class names, suggested layers) and its files.</summary>
    /// <exception cref="ArgumentException">The file is missing or cannot be imported (the message says why).</exception>
    public static (ModelDescription Description, OnnxFiles Files, SuggestedLayers Suggested) Read(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new ArgumentException($"ONNX model not found: '{path}' (full path '{full}'). Set OnnxModelPath to an .onnx file.", "options");
        OnnxModel model;
        try
        {
            model = OnnxModel.Load(full);
        }
        catch (OnnxImportException e)
        {
            throw new ArgumentException($"The ONNX model '{path}' cannot be used: {e.Message}", "options", e);
        }
        using (model)
        {
            var shape = model.InputShape;
            if (shape.Count != 4)
                throw new ArgumentException(
                    $"The ONNX model '{path}' takes input '{model.InputName}' of shape [{string.Join(", ", shape)}]; the saliency stage needs an image input [N, C, H, W].", "options");
            var folder = Path.GetDirectoryName(full)!;
            var files = new Dictionary<string, byte[]>(StringComparer.Ordinal) { [Path.GetFileName(full)] = File.ReadAllBytes(full) };
            foreach (var name in model.ExternalDataFiles)
                files[name] = File.ReadAllBytes(Path.Combine(folder, name));
            var description = new ModelDescription
            {
                ClassNames = model.ClassNames?.ToArray(),
                ImageHeight = checked((int)shape[2]),
                ImageWidth = checked((int)shape[3]),
                SaliencyLayer = model.Suggested.SaliencyLayer,
            };
            return (description, new OnnxFiles(Path.GetFileName(full), files), model.Suggested);
        }
    }

    /// <summary>
    /// Builds the module from the kept bytes: they are written to a fresh private temporary folder (the importer reads
    /// files, and external data must sit next to the model), imported, and the folder is deleted.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Create(OnnxFiles files)
    {
        var folder = Path.Combine(Path.GetTempPath(), "ebp-onnx-" + Guid.NewGuid().ToString("N"));
        var root = folder + Path.DirectorySeparatorChar;
        Directory.CreateDirectory(folder);
        try
        {
            foreach (var (name, bytes) in files.Files)
            {
                var target = Path.GetFullPath(Path.Combine(folder, name));
                if (Path.IsPathRooted(name) || !target.StartsWith(root, StringComparison.Ordinal))
                    throw new InvalidDataException($"The ONNX file name '{name}' points outside the model's folder.");
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.WriteAllBytes(target, bytes);
            }
            var model = OnnxModel.Load(Path.Combine(folder, files.ModelFileName));
            return model.Module;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
