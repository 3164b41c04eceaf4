using Ebp.MLNet;
using Microsoft.ML;

namespace Ebp.MLNet.Tests;

/// <summary>
/// The test assembly is also a console program, used as the fresh process of the save/load test:
/// <c>dotnet Ebp.MLNet.Tests.dll apply-saved MODEL.zip OUT.bin IMAGE...</c> loads a pipeline saved with
/// <see cref="SaliencyModel.Save(MLContext, ITransformer, DataViewSchema?, string)"/>, runs it on the image paths and
/// writes, per row, the predicted class and the saliency map as little-endian binary.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length < 3 || args[0] != "apply-saved")
        {
            Console.Error.WriteLine("usage: Ebp.MLNet.Tests apply-saved MODEL.zip OUT.bin IMAGE...");
            return 2;
        }
        var ml = new MLContext(seed: 1);
        using var model = (IDisposable)SaliencyModel.Load(ml, args[1], out var schema);
        if (schema is null) throw new InvalidOperationException("The saved pipeline has no input schema.");
        var data = ml.Data.LoadFromEnumerable(args.Skip(3).Select(p => new ImageRow { Path = p }));
        var rows = TestData.Read(ml, ((ITransformer)model).Transform(data));
        using var writer = new BinaryWriter(File.Create(args[2]));
        writer.Write(rows.Count);
        foreach (var r in rows)
        {
            writer.Write(r.PredictedLabel);
            writer.Write(r.Saliency.Length);
            foreach (var v in r.Saliency) writer.Write(v);
        }
        return 0;
    }
}
