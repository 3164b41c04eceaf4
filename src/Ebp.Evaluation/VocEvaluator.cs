using System.Diagnostics;
using Ebp.Datasets;
using Ebp.Models;
using Ebp.Visualization;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Evaluation;

/// <summary>One image of a VOC-style folder with its annotation.</summary>
public sealed record VocItem(string AnnotationPath, string ImagePath, VocAnnotation Annotation);

/// <summary>
/// The pointing game on a PASCAL VOC-style folder: images plus one annotation XML per image. The region of a class
/// in an image is the union of that class's boxes (<see cref="VocAnnotation.ClassMask"/>).
/// </summary>
/// <remarks>
/// Layouts accepted: the VOC layout <c>&lt;folder&gt;/Annotations/*.xml</c> with images in <c>JPEGImages/</c> (or
/// <c>images/</c>, <c>PNGImages/</c>), or a flat folder with each XML next to its image. The image is the annotation's
/// <c>&lt;filename&gt;</c>, else the XML's base name with one of <see cref="ImageFormats.Extensions"/>.
/// </remarks>
public static class VocEvaluator
{
    private static readonly string[] ImageFolders = ["JPEGImages", "images", "PNGImages", "JPEG", "img"];
    private static readonly string[] AnnotationFolders = ["Annotations", "Annotation", "xml"];

    /// <summary>
    /// The annotated images of <paramref name="folder"/>, sorted by annotation file name. Layouts as found in the
    /// wild are accepted: <c>VOCdevkit/VOC2007/{Annotations,JPEGImages}</c> (or <c>VOC2007/…</c>) below the folder,
    /// folder names in any case (<c>annotations</c>, <c>jpegimages</c>, <c>images</c>), and XML files next to the images.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">No annotations, or an annotation whose image cannot be found.</exception>
    public static IReadOnlyList<VocItem> Scan(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"VOC folder not found: '{folder}'.");
        folder = DatasetRoot(folder);
        string xmlDir = Child(folder, AnnotationFolders) ?? folder;
        var items = new List<VocItem>();
        foreach (var xml in Directory.GetFiles(xmlDir, "*.xml").Order(StringComparer.Ordinal))
        {
            var annotation = VocAnnotation.Load(xml);
            items.Add(new VocItem(xml, FindImage(folder, xmlDir, xml, annotation), annotation));
        }
        if (items.Count == 0)
            throw new FileNotFoundException(
                $"No annotation (*.xml) in '{xmlDir}': expected an Annotations folder (any case), XML files next to the images, or VOCdevkit/VOC20xx below it.");
        return items;
    }

    /// <summary>Descends through <c>VOCdevkit</c> and a single <c>VOC*</c> folder when the folder itself holds no annotations.</summary>
    private static string DatasetRoot(string folder)
    {
        for (int depth = 0; depth < 3; depth++)
        {
            if (Child(folder, AnnotationFolders) is not null || Directory.EnumerateFiles(folder, "*.xml").Any()) return folder;
            var voc = Directory.GetDirectories(folder)
                .Where(d => Path.GetFileName(d).StartsWith("VOC", StringComparison.OrdinalIgnoreCase))
                .Order(StringComparer.Ordinal).ToList();
            if (voc.Count == 0) return folder;
            if (voc.Count > 1)
                throw new ArgumentException(
                    $"'{folder}' holds several VOC datasets ({string.Join(", ", voc.Select(Path.GetFileName))}); pass one of them with --voc.");
            folder = voc[0];
        }
        return folder;
    }

    /// <summary>The first subfolder whose name is one of <paramref name="names"/>, ignoring case.</summary>
    private static string? Child(string folder, IEnumerable<string> names)
    {
        var dirs = Directory.GetDirectories(folder);
        foreach (var n in names)
            foreach (var d in dirs)
                if (string.Equals(Path.GetFileName(d), n, StringComparison.OrdinalIgnoreCase)) return d;
        return null;
    }

    private static string FindImage(string folder, string xmlDir, string xml, VocAnnotation annotation)
    {
        var names = new List<string>();
        if (!string.IsNullOrWhiteSpace(annotation.FileName)) names.Add(annotation.FileName);
        names.AddRange(ImageFormats.Extensions.Select(e => Path.GetFileNameWithoutExtension(xml) + e));
        var dirs = ImageFolders.Select(f => Child(folder, [f])).OfType<string>().Append(folder).Append(xmlDir).Distinct();
        foreach (var dir in dirs)
            foreach (var name in names)
            {
                var path = Path.Combine(dir, name);
                if (File.Exists(path)) return path;
            }
        throw new FileNotFoundException(
            $"No image for '{xml}': looked for {string.Join(", ", names)} in {string.Join(", ", ImageFolders)} of '{folder}'.");
    }

    /// <summary>
    /// Reads an image as <c>[1, channels, H, W]</c> with values pixel/255: one channel = grey (ITU-R BT.601 luma), three = RGB.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not an image SkiaSharp can decode.</exception>
    public static Tensor LoadImage(string path, int channels)
    {
        if (channels is not (1 or 3)) throw new ArgumentException($"Only 1 (grey) or 3 (RGB) input channels are supported, got {channels}.");
        using var bitmap = SKBitmap.Decode(path) ?? throw new InvalidDataException($"'{path}' is not an image SkiaSharp can read.");
        int w = bitmap.Width, h = bitmap.Height, plane = w * h;
        var data = new float[channels * plane];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = bitmap.GetPixel(x, y);
                int i = y * w + x;
                if (channels == 1)
                {
                    data[i] = c.Red == c.Green && c.Green == c.Blue
                        ? c.Red / 255f
                        : (float)((0.299 * c.Red + 0.587 * c.Green + 0.114 * c.Blue) / 255.0);
                }
                else
                {
                    data[i] = c.Red / 255f;
                    data[plane + i] = c.Green / 255f;
                    data[2 * plane + i] = c.Blue / 255f;
                }
            }
        return torch.tensor(data, new long[] { 1, channels, h, w });
    }

    /// <summary>
    /// The default "difficult" trials of the paper for VOC: the class's boxes cover less than a quarter of the image,
    /// and at least one other class (of the evaluated classes, <paramref name="classesPresent"/>) is present.
    /// </summary>
    public static bool IsDifficult(VocAnnotation annotation, string className, bool[] mask, IEnumerable<string> classesPresent)
    {
        int area = mask.Count(b => b);
        bool small = 4L * area < (long)annotation.Width * annotation.Height;
        bool distractor = classesPresent.Any(n => n != className);
        return small && distractor;
    }

    /// <summary>
    /// Plays the pointing game on every (image, class of the model present in it) pair. Images are fed at their own
    /// size, one at a time, all classes of an image from one forward pass. Annotated classes that the model does not
    /// know are skipped and counted in <paramref name="skippedObjects"/>.
    /// </summary>
    /// <param name="model">The classifier, eval mode (borrowed; restored after every image).</param>
    /// <param name="classNames">The model's class names in class-index order; annotations are matched to them by name.</param>
    /// <param name="inChannels">The model's input channels (1: images are read as grey, 3: as RGB).</param>
    /// <param name="items">The annotated images (<see cref="Scan"/>).</param>
    /// <param name="methods">The saliency methods (and baselines) to compare.</param>
    /// <param name="tolerancePx">Hit tolerance in pixels of the image (the paper: 15 px on the original image).</param>
    /// <param name="skippedObjects">Set to the number of annotated objects whose class the model does not know.</param>
    /// <param name="progress">Called after each image with (method, images done).</param>
    /// <param name="normalization">The model card's input normalisation (null: pixel/255 as is).</param>
    /// <param name="onPoint">Called with every (image, class, method) point and whether it hit.</param>
    public static IReadOnlyList<MethodResult> Run(
        nn.Module<Tensor, Tensor> model, IReadOnlyList<string> classNames, int inChannels, IReadOnlyList<VocItem> items,
        IReadOnlyList<PointingMethod> methods, double tolerancePx, out int skippedObjects, Action<PointingMethod, int>? progress = null,
        InputNormalization? normalization = null, Action<PointRecord>? onPoint = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(methods);
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int c = 0; c < classNames.Count; c++) index.TryAdd(classNames[c], c);
        skippedObjects = items.Sum(i => i.Annotation.Objects.Count(o => !index.ContainsKey(o.Name)));

        model.eval();
        var explainer = new SaliencyExplainer(model);
        var results = new List<MethodResult>();
        foreach (var method in methods)
        {
            var acc = new PointingGameAccumulator(classNames.Count);
            double ms = 0;
            bool warm = method.IsCenter;
            int done = 0;
            foreach (var item in items)
            {
                var a = item.Annotation;
                var present = a.ClassNames.Where(index.ContainsKey).ToList();
                done++;
                if (present.Count == 0) continue;
                using var scope = torch.NewDisposeScope();
                var image = LoadImage(item.ImagePath, inChannels);
                if (normalization is not null) image = normalization.Apply(image);
                int h = (int)image.shape[2], w = (int)image.shape[3];
                if (w != a.Width || h != a.Height)
                    throw new InvalidDataException(
                        $"'{item.ImagePath}' is {w}×{h} but its annotation '{item.AnnotationPath}' says {a.Width}×{a.Height}.");

                if (!warm)
                {
                    Points(explainer, method, image, present.Select(n => index[n]).ToArray());
                    warm = true;
                }
                var clock = Stopwatch.StartNew();
                var points = Points(explainer, method, image, present.Select(n => index[n]).ToArray());
                ms += clock.Elapsed.TotalMilliseconds;
                for (int k = 0; k < present.Count; k++)
                {
                    var mask = a.ClassMask(present[k]);
                    bool hit = Datasets.PointingGame.IsHit(mask, a.Width, a.Height, points[k].X, points[k].Y, tolerancePx);
                    acc.Record(index[present[k]], hit, IsDifficult(a, present[k], mask, present));
                    onPoint?.Invoke(new PointRecord(Path.GetFileName(item.ImagePath), present[k], method.Name, points[k].X, points[k].Y, hit));
                }
                progress?.Invoke(method, done);
            }
            results.Add(new MethodResult(method, acc.All, acc.Difficult, items.Count, ms, 1));
        }
        return results;
    }

    private static (int X, int Y)[] Points(SaliencyExplainer explainer, PointingMethod method, Tensor image, int[] classes)
    {
        int h = (int)image.shape[2], w = (int)image.shape[3];
        if (method.IsCenter) return classes.Select(_ => (w / 2, h / 2)).ToArray();
        var targets = classes.Select(c => SaliencyTarget.Pointing(c)).ToList();
        var maps = explainer.ExplainEach(image, targets, method.Options);
        try
        {
            return maps.Select(r =>
            {
                var values = r.Map.contiguous().cpu().data<float>().ToArray();
                return Datasets.PointingGame.ArgMax(values, w, h);
            }).ToArray();
        }
        finally
        {
            foreach (var r in maps) r.Dispose();
        }
    }
}
