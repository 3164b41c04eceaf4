using System.Text.Json.Nodes;
using Ebp.Models;
using TorchSharp;

namespace Ebp.Core.Tests.Models;

/// <summary>The one reader of model cards: the checks every consumer (ML.NET stage, audit, pointing game) relies on.</summary>
[TestClass]
public sealed class ModelCardTests
{
    private const string Spec = """{"kind":"vgg","cfg":[4,"M"],"in_channels":1,"hidden":8,"num_classes":3,"pool_size":1}""";

    private static JsonObject Card()
    {
        var card = JsonNode.Parse("""{"name":"tiny","weights":"tiny.safetensors","class_names":["a","b","c"],"input":{"channels":1,"height":8,"width":6}}""")!.AsObject();
        card["model"] = JsonNode.Parse(Spec);
        return card;
    }

    [TestMethod]
    public void ACardIsReadWithItsFieldsAndWeightsNextToIt()
    {
        var dir = Path.Combine(Path.GetTempPath(), "ebp-card-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var path = Path.Combine(dir, "tiny.json");
            File.WriteAllText(path, Card().ToJsonString());
            var card = ModelCard.Load(path);
            Assert.AreEqual("tiny", card.Name);
            CollectionAssert.AreEqual(new[] { "a", "b", "c" }, card.ClassNames);
            Assert.AreEqual((1, 6, 8), (card.Input.Channels, card.Input.Width, card.Input.Height));
            Assert.AreEqual(Path.Combine(dir, "tiny.safetensors"), card.WeightsPathNextTo(path));
            Assert.IsNull(card.Input.Normalization);
            using var model = card.BuildModel();
            using var y = model.call(torch.zeros(1, 1, 8, 6));
            CollectionAssert.AreEqual(new long[] { 1, 3 }, y.shape);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    [DataRow("../tiny.safetensors")]
    [DataRow("/etc/passwd")]
    [DataRow("sub/tiny.safetensors")]
    [DataRow("..")]
    public void AWeightFileOutsideTheCardsFolderIsRefused(string weights)
    {
        var card = Card();
        card["weights"] = weights;
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCard.Parse(card.ToJsonString(), "card.json"));
        StringAssert.Contains(e.Message, "must be a file name in the card's folder");
        StringAssert.Contains(e.Message, weights);
    }

    [TestMethod]
    public void ACardRoundTrips_InTheBytesOfEarlierVersions_AndDeepNestingIsRefused()
    {
        var card = ModelCard.Parse(Card().ToJsonString(), "card");
        card.ClassNames = ["zéro", "一", "<b>"];
        card.Training = new JsonObject { ["steps"] = 3, ["note"] = "a \"quoted\" word" };
        var path = Path.Combine(Path.GetTempPath(), "ebp-card-rt-" + Guid.NewGuid().ToString("N") + ".json");
        try
        {
            card.Save(path);
            var text = File.ReadAllText(path);
            // Earlier versions wrote cards by reflection with these options; the bytes are the same.
            var reflection = new System.Text.Json.JsonSerializerOptions(ModelCard.JsonOptions)
            {
                TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
            };
            Assert.AreEqual(System.Text.Json.JsonSerializer.Serialize(card, reflection) + "\n", text);
            StringAssert.Contains(text, "\"zéro\"", "non-ASCII names stay readable");
            Assert.DoesNotContain("\"evaluation\"", text, "nulls are left out");
            var back = ModelCard.Load(path);
            CollectionAssert.AreEqual(card.ClassNames, back.ClassNames);
            Assert.AreEqual(card.Model.ToJsonString(), back.Model.ToJsonString());
            Assert.AreEqual(3, (int)back.Training!["steps"]!);
            Assert.AreEqual(card.Input.Width, back.Input.Width);
        }
        finally
        {
            File.Delete(path);
        }

        // An untrusted card cannot nest deeper than 64 levels.
        var deep = string.Concat(Enumerable.Repeat("{\"a\":", 70)) + "1" + new string('}', 70);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCard.Parse("{\"name\":\"x\",\"model\":{\"kind\":\"vgg\",\"x\":" + deep + "}}", "deep.json"));
        StringAssert.Contains(e.Message, "'deep.json' is not a valid model card");
        StringAssert.Contains(e.Message, "depth");
    }

    [TestMethod]
    public void BadCardsAreClearErrors()
    {
        foreach (var (edit, expected) in new (Action<JsonObject>, string)[]
                 {
                     (c => c.Remove("model"), "needs a \"model\" object"),
                     (c => c["class_names"] = new JsonArray("a", "b", "a"), "lists a class name twice"),
                     (c => c["input"]!["mean"] = new JsonArray(0.5, 0.5), "input.mean has 2 values, but the input has 1 channel(s)"),
                     (c => c["input"]!["std"] = new JsonArray(-1.0), "input.std must hold finite numbers > 0"),
                     (c => c["input"]!["width"] = -6, "must not be negative"),
                 })
        {
            var card = Card();
            edit(card);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCard.Parse(card.ToJsonString(), "my-card.json"), expected);
            StringAssert.Contains(e.Message, expected);
            StringAssert.Contains(e.Message, "my-card.json");
        }
        Assert.ThrowsExactly<InvalidDataException>(() => ModelCard.Parse("{not json", "x.json"));
        Assert.ThrowsExactly<FileNotFoundException>(() => ModelCard.Load(Path.Combine(Path.GetTempPath(), Guid.NewGuid() + ".json")));
    }

    [TestMethod]
    public void ACardLargerThanTheLimitIsRefusedBeforeItIsParsed()
    {
        var path = Path.Combine(Path.GetTempPath(), "ebp-big-card-" + Guid.NewGuid().ToString("N") + ".json");
        try
        {
            using (var f = File.Create(path)) f.SetLength(ModelCard.MaxBytes + 1);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCard.Load(path));
            StringAssert.Contains(e.Message, "larger than");
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void NormalisationWithoutAChannelCountTakesTheLengthGiven()
    {
        var card = Card();
        card["input"]!.AsObject().Remove("channels");
        card["input"]!["mean"] = new JsonArray(0.1, 0.2, 0.3);
        var norm = ModelCard.Parse(card.ToJsonString(), "c.json").Input.Normalization!;
        CollectionAssert.AreEqual(new[] { 0.1f, 0.2f, 0.3f }, norm.Mean);
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f }, norm.Std);
    }
}
