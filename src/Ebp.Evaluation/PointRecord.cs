using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;

namespace Ebp.Evaluation;

/// <summary>One pointing-game trial: where a method's map peaked for a class of an image, and whether that hit.</summary>
/// <param name="Image">The image (file name; "scene N" for cluttered MNIST).</param>
/// <param name="Class">The class name.</param>
/// <param name="Method">The method's short name (<see cref="PointingMethod.Name"/>).</param>
/// <param name="X">Column of the peak, in image pixels.</param>
/// <param name="Y">Row of the peak.</param>
/// <param name="Hit">Whether the peak lies closer than the tolerance to the class's region.</param>
public sealed record PointRecord(string Image, string Class, string Method, int X, int Y, bool Hit);

/// <summary>Writes <see cref="PointRecord"/>s as CSV (header <c>image,class,method,x,y,hit</c>).</summary>
public sealed class PointsCsvWriter : IDisposable
{
    private readonly StreamWriter _stream;
    private readonly CsvWriter _csv;

    /// <summary>Creates (or overwrites) <paramref name="path"/> and writes the header.</summary>
    public PointsCsvWriter(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        _stream = new StreamWriter(path);
        _csv = new CsvWriter(_stream, new CsvConfiguration(CultureInfo.InvariantCulture));
        _csv.Context.RegisterClassMap<Map>();
        _csv.WriteHeader<PointRecord>();
        _csv.NextRecord();
    }

    /// <summary>Appends one row.</summary>
    public void Write(PointRecord record)
    {
        _csv.WriteRecord(record);
        _csv.NextRecord();
    }

    /// <summary>Flushes and closes the CSV file.</summary>
    public void Dispose()
    {
        _csv.Dispose();
        _stream.Dispose();
    }

    private sealed class Map : ClassMap<PointRecord>
    {
        public Map()
        {
            Map(r => r.Image).Name("image");
            Map(r => r.Class).Name("class");
            Map(r => r.Method).Name("method");
            Map(r => r.X).Name("x");
            Map(r => r.Y).Name("y");
            Map(r => r.Hit).Name("hit");
        }
    }
}
