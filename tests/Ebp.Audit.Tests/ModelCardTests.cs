using System.Text.Json.Nodes;

namespace Ebp.Audit.Tests;

/// <summary>The audit reads model cards with the same checks as every other reader (Ebp.Models.ModelCard).</summary>
[TestClass]
public sealed class ModelCardTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Ebp.Audit.Program.Run(args, o, e, _ => null);
        return (code, o.ToString(), e.ToString());
    }

    [TestMethod]
    public void ACardWhoseWeightsLieOutsideItsFolderIsAUsageError()
    {
        var folder = TestSet.NewFolder("card-escape");
        var cards = Path.Combine(folder, "cards");
        Directory.CreateDirectory(cards);
        File.Copy(TestSet.Weights, Path.Combine(folder, "escaped.safetensors"));
        var card = JsonNode.Parse(File.ReadAllText(TestSet.Card))!.AsObject();
        card["weights"] = "../escaped.safetensors"; // a real file, one folder up
        card.Remove("weights_sha256");
        var path = Path.Combine(cards, "card.json");
        File.WriteAllText(path, card.ToJsonString());

        var (code, _, err) = Run("--manifest", TestSet.Manifest, "--out", Path.Combine(folder, "out"), "--model", path,
                                 "--threads", "1", "--progress", "none");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "must be a file name in the card's folder");
        StringAssert.Contains(err, "../escaped.safetensors");
    }
}
