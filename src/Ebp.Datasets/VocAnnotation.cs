using System.Globalization;
using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Ebp.Datasets;

/// <summary>
/// A PASCAL VOC bounding box exactly as written in the XML: 1-based pixel indices, both ends inclusive
/// (the top-left pixel of an image is (1,1); a box covering only that pixel is xmin=xmax=1).
/// Conversion to 0-based <see cref="BoundingBox"/>: X = xmin-1, Y = ymin-1, Width = xmax-xmin+1,
/// Height = ymax-ymin+1 (so the exclusive Right equals xmax); <see cref="FromPixelBox"/> is the inverse.
/// </summary>
public readonly record struct VocBox(int XMin, int YMin, int XMax, int YMax)
{
    /// <summary>The same pixels as a 0-based box with exclusive right/bottom ends.</summary>
    public BoundingBox ToPixelBox() => new(XMin - 1, YMin - 1, XMax - XMin + 1, YMax - YMin + 1);

    /// <summary>The VOC box covering the pixels of a 0-based box.</summary>
    public static VocBox FromPixelBox(BoundingBox box) => new(box.X + 1, box.Y + 1, box.Right, box.Bottom);
}

/// <summary>One &lt;object&gt; of a VOC annotation.</summary>
/// <param name="Name">Class name (&lt;name&gt;).</param>
/// <param name="Box">The &lt;bndbox&gt;, 1-based inclusive.</param>
/// <param name="Difficult">&lt;difficult&gt;1&lt;/difficult&gt; (false when absent).</param>
/// <param name="Truncated">&lt;truncated&gt;1&lt;/truncated&gt; (false when absent).</param>
/// <param name="Pose">&lt;pose&gt; text, or null when absent.</param>
public sealed record VocObject(string Name, VocBox Box, bool Difficult = false, bool Truncated = false, string? Pose = null);

/// <summary>
/// Reads and writes PASCAL VOC-style annotation XML:
/// <c>&lt;annotation&gt;&lt;filename/&gt;&lt;size&gt;&lt;width/&gt;&lt;height/&gt;&lt;depth/&gt;&lt;/size&gt;&lt;object&gt;&lt;name/&gt;&lt;bndbox&gt;&lt;xmin/&gt;&lt;ymin/&gt;&lt;xmax/&gt;&lt;ymax/&gt;&lt;/bndbox&gt;&lt;/object&gt;…&lt;/annotation&gt;</c>.
/// Coordinates are read as numbers in the invariant culture; a fractional value (a few VOC2012 files
/// have them) is rounded to the nearest integer, halves away from zero. Boxes must have
/// xmin &lt;= xmax and ymin &lt;= ymax; parts of a box outside the image are clipped when masks are built.
/// Malformed input throws <see cref="InvalidDataException"/> naming the file and the element.
/// </summary>
public sealed class VocAnnotation
{
    /// <summary>Builds an annotation in memory.</summary>
    public VocAnnotation(string? fileName, int width, int height, int depth, IReadOnlyList<VocObject> objects, string? folder = null)
    {
        ArgumentNullException.ThrowIfNull(objects);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        FileName = fileName;
        Folder = folder;
        Width = width;
        Height = height;
        Depth = depth;
        Objects = objects;
    }

    /// <summary>&lt;folder&gt;, or null.</summary>
    public string? Folder { get; }

    /// <summary>&lt;filename&gt; (the image's file name), or null.</summary>
    public string? FileName { get; }

    /// <summary>Image width in pixels (&lt;size&gt;&lt;width&gt;).</summary>
    public int Width { get; }

    /// <summary>Image height in pixels (&lt;size&gt;&lt;height&gt;).</summary>
    public int Height { get; }

    /// <summary>Number of channels (&lt;size&gt;&lt;depth&gt;; 0 when absent).</summary>
    public int Depth { get; }

    /// <summary>The objects in file order.</summary>
    public IReadOnlyList<VocObject> Objects { get; }

    /// <summary>Distinct class names in order of first appearance.</summary>
    public IReadOnlyList<string> ClassNames => Objects.Select(o => o.Name).Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>The objects of class <paramref name="name"/> (ordinal comparison).</summary>
    public IEnumerable<VocObject> ObjectsOf(string name) => Objects.Where(o => string.Equals(o.Name, name, StringComparison.Ordinal));

    /// <summary>
    /// Width*Height flags, row-major: true on every pixel covered by at least one box of class
    /// <paramref name="name"/> (the union of its boxes, clipped to the image). All false if the class is absent.
    /// </summary>
    public bool[] ClassMask(string name, bool includeDifficult = true)
    {
        ArgumentNullException.ThrowIfNull(name);
        var mask = new bool[Width * Height];
        foreach (VocObject o in ObjectsOf(name))
        {
            if (o.Difficult && !includeDifficult) continue;
            BoundingBox b = o.Box.ToPixelBox().ClipTo(Width, Height);
            for (int y = b.Y; y < b.Bottom; y++) mask.AsSpan(y * Width + b.X, b.Width).Fill(true);
        }

        return mask;
    }

    /// <summary>Reads an annotation file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The XML is malformed or lacks a required element.</exception>
    public static VocAnnotation Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"VOC annotation not found: '{path}'.", path);
        using FileStream stream = File.OpenRead(path);
        return Load(stream, path);
    }

    /// <summary>Reads an annotation from a stream; <paramref name="sourceName"/> names it in errors.</summary>
    public static VocAnnotation Load(Stream stream, string sourceName = "<stream>")
    {
        ArgumentNullException.ThrowIfNull(stream);
        XDocument doc;
        try
        {
            var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, XmlResolver = null };
            using var reader = XmlReader.Create(stream, settings);
            doc = XDocument.Load(reader, LoadOptions.SetLineInfo);
        }
        catch (XmlException e)
        {
            throw new InvalidDataException($"{sourceName}: malformed XML at line {e.LineNumber}, position {e.LinePosition}: {e.Message}", e);
        }

        return FromXDocument(doc, sourceName);
    }

    /// <summary>Parses annotation XML text; <paramref name="sourceName"/> names it in errors.</summary>
    public static VocAnnotation Parse(string xml, string sourceName = "<string>")
    {
        ArgumentNullException.ThrowIfNull(xml);
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(xml));
        return Load(stream, sourceName);
    }

    private static VocAnnotation FromXDocument(XDocument doc, string source)
    {
        XElement root = doc.Root ?? throw new InvalidDataException($"{source}: the document has no root element.");
        if (root.Name.LocalName != "annotation")
            throw new InvalidDataException($"{source}: the root element is <{root.Name.LocalName}>, expected <annotation>.");

        const string rootPath = "<annotation>";
        XElement size = Required(root, "size", source, rootPath);
        string sizePath = rootPath + "/<size>";
        int width = ParseInt(Required(size, "width", source, sizePath), source, sizePath + "/<width>");
        int height = ParseInt(Required(size, "height", source, sizePath), source, sizePath + "/<height>");
        if (width <= 0 || height <= 0)
            throw new InvalidDataException($"{source}: {sizePath}: image size {width}x{height} is not positive.");
        XElement? depthElement = size.Element("depth");
        int depth = depthElement is null ? 0 : ParseInt(depthElement, source, sizePath + "/<depth>");

        var objects = new List<VocObject>();
        int k = 0;
        foreach (XElement obj in root.Elements("object"))
        {
            k++;
            string objPath = $"{rootPath}/<object>[{k}]";
            string name = Required(obj, "name", source, objPath).Value.Trim();
            if (name.Length == 0) throw new InvalidDataException($"{source}: {objPath}/<name>{Line(obj)}: the class name is empty.");
            XElement bnd = Required(obj, "bndbox", source, objPath);
            string bndPath = objPath + "/<bndbox>";
            int xmin = ParseInt(Required(bnd, "xmin", source, bndPath), source, bndPath + "/<xmin>");
            int ymin = ParseInt(Required(bnd, "ymin", source, bndPath), source, bndPath + "/<ymin>");
            int xmax = ParseInt(Required(bnd, "xmax", source, bndPath), source, bndPath + "/<xmax>");
            int ymax = ParseInt(Required(bnd, "ymax", source, bndPath), source, bndPath + "/<ymax>");
            if (xmin > xmax || ymin > ymax)
            {
                throw new InvalidDataException(
                    $"{source}: {bndPath}{Line(bnd)}: empty box (xmin={xmin}, xmax={xmax}, ymin={ymin}, ymax={ymax}); need xmin <= xmax and ymin <= ymax.");
            }

            bool difficult = ParseFlag(obj.Element("difficult"), source, objPath + "/<difficult>");
            bool truncated = ParseFlag(obj.Element("truncated"), source, objPath + "/<truncated>");
            string? pose = obj.Element("pose")?.Value.Trim();
            objects.Add(new VocObject(name, new VocBox(xmin, ymin, xmax, ymax), difficult, truncated, pose));
        }

        return new VocAnnotation(
            root.Element("filename")?.Value.Trim(), width, height, depth, objects, root.Element("folder")?.Value.Trim());
    }

    private static XElement Required(XElement parent, string name, string source, string parentPath) =>
        parent.Element(name)
        ?? throw new InvalidDataException($"{source}: {parentPath}{Line(parent)}: required element <{name}> is missing.");

    private static int ParseInt(XElement e, string source, string path)
    {
        string text = e.Value.Trim();
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v)
            || Math.Abs(v) > int.MaxValue / 2)
        {
            throw new InvalidDataException($"{source}: {path}{Line(e)}: '{text}' is not a number.");
        }

        return (int)Math.Round(v, MidpointRounding.AwayFromZero);
    }

    private static bool ParseFlag(XElement? e, string source, string path)
    {
        if (e is null) return false;
        return ParseInt(e, source, path) != 0;
    }

    private static string Line(XElement e) =>
        e is IXmlLineInfo info && info.HasLineInfo() ? $" (line {info.LineNumber})" : string.Empty;

    /// <summary>
    /// The annotation of a generated scene: one object per digit, named by <paramref name="className"/>
    /// (default: the digit, "0".."9"), box = the digit's tight box converted to VOC's 1-based inclusive form,
    /// depth 1.
    /// </summary>
    public static VocAnnotation FromScene(ClutteredScene scene, string fileName, Func<int, string>? className = null)
    {
        ArgumentNullException.ThrowIfNull(scene);
        Func<int, string> nameOf = className ?? (c => c.ToString(CultureInfo.InvariantCulture));
        VocObject[] objects = scene.Digits
            .Select(d => new VocObject(nameOf(d.ClassId), VocBox.FromPixelBox(d.Box), Pose: "Unspecified"))
            .ToArray();
        return new VocAnnotation(fileName, scene.Width, scene.Height, 1, objects);
    }

    /// <summary>The annotation as a VOC-layout XML tree.</summary>
    public XDocument ToXDocument()
    {
        static XElement Int(string name, int v) => new(name, v.ToString(CultureInfo.InvariantCulture));
        var root = new XElement("annotation");
        if (Folder is not null) root.Add(new XElement("folder", Folder));
        if (FileName is not null) root.Add(new XElement("filename", FileName));
        root.Add(new XElement("size", Int("width", Width), Int("height", Height), Int("depth", Depth)));
        root.Add(Int("segmented", 0));
        foreach (VocObject o in Objects)
        {
            root.Add(new XElement(
                "object",
                new XElement("name", o.Name),
                new XElement("pose", o.Pose ?? "Unspecified"),
                Int("truncated", o.Truncated ? 1 : 0),
                Int("difficult", o.Difficult ? 1 : 0),
                new XElement(
                    "bndbox",
                    Int("xmin", o.Box.XMin),
                    Int("ymin", o.Box.YMin),
                    Int("xmax", o.Box.XMax),
                    Int("ymax", o.Box.YMax))));
        }

        return new XDocument(root);
    }

    /// <summary>The annotation as indented XML text (no XML declaration, like the VOC files).</summary>
    public string ToXml()
    {
        var sb = new StringBuilder();
        using (var writer = XmlWriter.Create(sb, WriterSettings())) ToXDocument().Save(writer);
        return sb.ToString();
    }

    /// <summary>Writes the annotation to <paramref name="path"/> (UTF-8 without BOM, indented, '\n' line ends).</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        using var writer = XmlWriter.Create(stream, WriterSettings());
        ToXDocument().Save(writer);
    }

    private static XmlWriterSettings WriterSettings() => new()
    {
        Indent = true,
        IndentChars = "\t",
        NewLineChars = "\n",
        OmitXmlDeclaration = true,
        Encoding = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false),
    };
}
